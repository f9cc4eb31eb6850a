"""The teacher interface, the backend registry and the per-teacher configuration.

A backend turns (items, frames) into K sampled responses per item. Only text leaves the teacher
(black-box distillation, paper section 1.1). Built-in backends (``hf``, ``vllm``, ``openai``) are
imported on first use, so asking for ``openai`` never imports torch and ``vllm`` need not be
installed unless it is used.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rmsd.errors import ConfigError
from rmsd.errors import check_known_keys
from rmsd.io import stable_hash


@dataclass(frozen=True)
class SamplingParams:
    """Teacher sampling parameters (paper section 3.2 defaults: T 0.7, top-p 0.8, top-k 20)."""

    temperature: float = 0.7
    """0 means greedy decoding."""
    top_p: float = 0.8
    top_k: int = 20
    """0 disables top-k."""
    max_new_tokens: int = 1024
    """Generation limit in tokens."""
    seed: int = 0
    """Base seed; the seed of each backend call is derived from it, the item id and the first k."""

    @classmethod
    def from_dict(cls, d: dict) -> "SamplingParams":
        """Strict constructor: unknown keys raise :class:`ConfigError`."""
        check_known_keys(cls, d, "sampling")
        return cls(**d)

    def as_dict(self) -> dict:
        return asdict(self)


SAMPLING_KEYS: frozenset[str] = frozenset(f.name for f in fields(SamplingParams))


class TeacherBackend(Protocol):
    """What a backend provides.

    ``generate(items, frames, k, params, seed)`` returns, per item, ``k`` dicts with ``text``,
    ``finish_reason`` ("stop" | "length" | backend-specific) and ``n_tokens`` (generated tokens, or
    None where the backend cannot know). ``frames`` are uint8 arrays (F, H, W, 3), one per item.
    A backend whose ``generate`` takes a ``metadata`` keyword also gets, per item, its
    frame-manifest record (for the video metadata: real fps and frame times,
    :func:`rmsd.frames.metadata.video_metadata`).
    The K samples of an item share one prefill where the backend supports it (one request with
    ``num_return_sequences`` / ``n`` = k).

    Optionally a backend class has a static/class method ``revision_of(**constructor_kwargs)``
    returning a string that changes whenever the model does (it must not load the model); the
    sample cache is keyed by it.
    """

    name: str

    def generate(self, items: list[dict], frames: list[np.ndarray], k: int, params: SamplingParams,
                 seed: int) -> list[list[dict]]: ...


TEACHER_BACKENDS: dict[str, type] = {}
"""Registered backend classes by name (built-ins appear once imported)."""

BUILTIN_BACKENDS: dict[str, str] = {
    "hf": "rmsd.teachers.hf",
    "vllm": "rmsd.teachers.vllm_engine",
    "openai": "rmsd.teachers.openai_api",
}
"""Built-in backend name -> module that registers it (imported lazily)."""


def register_backend(name: str):
    """Class decorator adding a backend to :data:`TEACHER_BACKENDS` under ``name``."""

    def deco(cls):
        TEACHER_BACKENDS[name] = cls
        cls.name = name
        return cls

    return deco


def backend_names() -> list[str]:
    """Every valid backend name (built-in and registered)."""
    return sorted(set(TEACHER_BACKENDS) | set(BUILTIN_BACKENDS))


def get_backend_class(name: str) -> type:
    """The backend class ``name``, importing a built-in one on first use.

    Raises:
        ConfigError: unknown backend; the message lists the valid names.
    """
    if name not in TEACHER_BACKENDS and name in BUILTIN_BACKENDS:
        importlib.import_module(BUILTIN_BACKENDS[name])
    if name not in TEACHER_BACKENDS:
        raise ConfigError(f"unknown teacher backend {name!r}; valid: {backend_names()}")
    return TEACHER_BACKENDS[name]


def get_backend(name: str, **kwargs) -> TeacherBackend:
    """Instantiate the backend ``name`` with ``kwargs``.

    Raises:
        ConfigError: unknown backend; the message lists the valid names.
    """
    return get_backend_class(name)(**kwargs)


def derive_seed(*parts: Any) -> int:
    """A 31-bit seed derived from ``parts`` (stable across runs and machines)."""
    return int(stable_hash(list(parts), 8), 16) & 0x7FFFFFFF


# -------------------------------------------------------------------------------------- revisions

#: Files of a model directory that are not part of the model (run logs and summaries).
NON_MODEL_FILES = frozenset({"summary.json", "stats.json", "trainer_state.json", "training_args.bin"})
#: Suffixes of the files that define a model (weights, configs, tokenizer, processor, templates).
MODEL_SUFFIXES = frozenset({".json", ".safetensors", ".bin", ".model", ".txt", ".jinja", ".tiktoken",
                            ".py", ".pt", ".pth", ".gguf"})
#: Files larger than this are fingerprinted from sampled blocks instead of hashed in full.
FULL_HASH_MAX_BYTES = 256 << 20


def model_dir_revision(path: str | Path, full_hash_max_bytes: int = FULL_HASH_MAX_BYTES) -> str:
    """A content fingerprint of a model directory (16 hex chars), for cache keys.

    Covers every file with a suffix in :data:`MODEL_SUFFIXES` (recursively, hidden files and
    :data:`NON_MODEL_FILES` excepted): name, size and SHA-256 of its bytes. Files above
    ``full_hash_max_bytes`` are fingerprinted from their size and 16 evenly spaced 1 MiB blocks
    (first and last included), so a 470 GB checkpoint costs seconds, not minutes; set the teacher's
    ``revision`` in the config where that is not enough.

    Raises:
        ConfigError: ``path`` is not a directory.
    """
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"{path}: model path is not a directory")
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path)
        if (any(part.startswith(".") for part in rel.parts) or f.name in NON_MODEL_FILES
                or f.suffix not in MODEL_SUFFIXES):
            continue
        size = f.stat().st_size
        h.update(f"{rel.as_posix()}\0{size}\0".encode())
        with open(f, "rb") as fh:
            if size <= full_hash_max_bytes:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
            else:
                block = min(1 << 20, size)
                for i in range(16):
                    fh.seek((size - block) * i // 15)
                    h.update(fh.read(block))
    return h.hexdigest()[:16]


def path_revision(model_path: str) -> str:
    """Revision of a local model directory, or the string itself for a hub id (set ``revision``)."""
    p = Path(model_path)
    return model_dir_revision(p) if p.is_dir() else f"id:{model_path}"


# -------------------------------------------------------------------------------------- the config

#: Keys of a teacher's config entry that are not constructor arguments of its backend.
SPEC_KEYS = frozenset({"backend", "template", "revision", "path"}) | SAMPLING_KEYS

#: Config keys of the built-in backends (their constructor arguments; a unit test keeps the two
#: in sync), so a config can be checked without importing torch or vllm.
BACKEND_KEYS: dict[str, frozenset[str]] = {
    "hf": frozenset({"batch_size", "device", "dtype"}),
    "vllm": frozenset({"tensor_parallel_size", "data_parallel_size", "dtype", "gpu_memory_utilization",
                       "max_model_len", "max_num_seqs", "limit_mm_per_prompt", "enforce_eager",
                       "engine_args"}),
    "openai": frozenset({"endpoint", "model", "api_key_env", "max_retries", "timeout_s",
                         "max_concurrency", "video_mode", "video_metadata", "image_format",
                         "jpeg_quality", "send_n", "request_logprobs", "extra_body"}),
}
#: Keys a built-in backend cannot do without.
BACKEND_REQUIRED: dict[str, frozenset[str]] = {"openai": frozenset({"endpoint", "model"})}


def check_teacher_config(name: str, cfg: dict) -> None:
    """Check one ``sampling.teachers`` entry of a built-in backend without importing it.

    Raises:
        ConfigError: unknown backend, a key the backend does not take, a missing required key,
            or ``path`` with the ``openai`` backend / ``endpoint`` with another one.
    """
    backend = cfg.get("backend", "hf")
    if backend not in BUILTIN_BACKENDS:
        if backend not in TEACHER_BACKENDS:
            raise ConfigError(f"sampling.teachers.{name}: unknown backend {backend!r}; "
                              f"valid: {backend_names()}")
        return
    valid = BACKEND_KEYS[backend] | SPEC_KEYS
    if backend == "openai":
        valid = valid - {"path"}
    if bad := sorted(set(cfg) - valid):
        raise ConfigError(f"sampling.teachers.{name}: key(s) {bad} not valid for backend {backend!r}; "
                          f"valid: {sorted(valid)}")
    if missing := sorted(BACKEND_REQUIRED.get(backend, frozenset()) - set(cfg)):
        raise ConfigError(f"sampling.teachers.{name}: backend {backend!r} needs key(s) {missing}")


@dataclass(frozen=True)
class TeacherSpec:
    """One teacher of ``sampling.teachers``: backend, model, prompt template, sampling parameters.

    Build it with :meth:`from_config`.
    """

    name: str
    backend: str
    params: SamplingParams
    template: str = "answer_only"
    backend_args: dict = field(default_factory=dict)
    """Constructor keyword arguments of the backend (``model_path``, ``endpoint``, ...)."""
    revision: str | None = None
    """Explicit model revision for the cache key (default: computed by the backend)."""

    @classmethod
    def from_config(cls, name: str, cfg: dict, template: str = "answer_only",
                    model_path: str | None = None) -> "TeacherSpec":
        """Parse a ``sampling.teachers.<name>`` entry.

        Args:
            name: the teacher's name (recorded in every sample, part of the cache key).
            cfg: ``backend`` (default ``hf``), optional ``path`` (pretrained model directory or id),
                ``template``, ``revision``, the :class:`SamplingParams` keys, and the backend's own
                constructor arguments (e.g. ``batch_size``; ``endpoint``, ``model``, ``api_key_env``).
            template: default prompt template (the config's top-level ``template``).
            model_path: the model directory given by the workflow (a locally trained teacher);
                used when ``cfg`` has no ``path``.

        Raises:
            ConfigError: unknown backend or key (names the teacher), or a backend that needs a
                model path without one.
        """
        check_teacher_config(name, cfg)
        cfg = dict(cfg)
        backend = cfg.pop("backend", "hf")
        klass = get_backend_class(backend)
        params = SamplingParams.from_dict({k: cfg.pop(k) for k in list(cfg) if k in SAMPLING_KEYS})
        tmpl = cfg.pop("template", template)
        revision = cfg.pop("revision", None)
        cfg_path = cfg.pop("path", None)
        path = cfg_path or model_path
        accepted = inspect.signature(klass.__init__).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
        if cfg_path is not None and "model_path" not in accepted:
            raise ConfigError(f"sampling.teachers.{name}: backend {backend!r} takes no `path`")
        args = dict(cfg)
        if "template" in accepted or takes_any:
            args["template"] = tmpl
        if "teacher" in accepted:
            args["teacher"] = name
        if "model_path" in accepted:
            if path is None:
                raise ConfigError(f"sampling.teachers.{name}: backend {backend!r} needs a model: set "
                                  f"`path` or train the teacher locally (models.teachers.{name})")
            args["model_path"] = str(path)
        if not takes_any and (bad := sorted(set(args) - set(accepted))):
            valid = sorted((set(accepted) - {"self", "model_path", "teacher"}) | SPEC_KEYS)
            raise ConfigError(f"sampling.teachers.{name}: unknown key(s) {bad} for backend "
                              f"{backend!r}; valid: {valid}")
        missing = [p.name for p in accepted.values() if p.name != "self" and p.default is p.empty
                   and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in args]
        if missing:
            raise ConfigError(f"sampling.teachers.{name}: backend {backend!r} needs key(s) {missing}")
        return cls(name=name, backend=backend, params=params, template=tmpl, backend_args=args,
                   revision=None if revision is None else str(revision))

    def model_revision(self) -> str:
        """The model revision in the cache key: ``revision`` if set, else the backend's
        ``revision_of(**backend_args)``, else a hash of the backend arguments."""
        if self.revision is not None:
            return self.revision
        klass = get_backend_class(self.backend)
        if hasattr(klass, "revision_of"):
            return str(klass.revision_of(**self.backend_args))
        return stable_hash({"backend": self.backend, "args": self.backend_args})

    def build(self) -> TeacherBackend:
        """Instantiate the backend (loads the model / opens the connection settings)."""
        return get_backend(self.backend, **self.backend_args)
