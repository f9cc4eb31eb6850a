"""vLLM offline engine: teacher sampling and evaluation through one ``vllm.LLM`` per job.

One :class:`VLLMEngine` is built per job and serves all of the shard's items: teacher sampling
(:class:`VLLMTeacher`, one request per item with ``SamplingParams(n=K)``, so the K samples share one
prefill) and evaluation (:class:`rmsd.evaluation.run.VLLMGenerator`: greedy ``n=1`` and pass@k with
``n``). Videos go in as ``(frames, metadata)``, the metadata built from the item's frame-manifest
record by :func:`rmsd.frames.metadata.video_metadata` (Qwen3-VL needs it for its timestamps and
raises ``Video metadata is required`` without it; Qwen2/2.5-VL take ``fps`` from it for their
temporal positions).

Works with the vLLM releases whose offline API this uses (``LLM.generate(prompts, sampling_params)``
with ``{"prompt", "multi_modal_data"}`` dicts): checked with 0.26 (on the GPU) and 0.33 (the extra's
resolver check). vLLM is an optional environment (``envs/vllm.yaml`` / ``bash setup.sh --vllm``);
it is imported when an engine is built, never at package import.

Sizes that fit one 80 GB card for a 4B-8B model at 16-64 frames of 448 px (defaults below):
``max_model_len`` 32768 (64 frames x 196 merged tokens + prompt + 1024 new tokens stays below
16K; the margin serves 128-frame benchmarks), ``gpu_memory_utilization`` 0.85, one video and no
images per prompt. The 235B teacher needs ``tensor_parallel_size: 8`` (470 GB of bf16 weights).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from rmsd.errors import ConfigError
from rmsd.teachers.base import SamplingParams, derive_seed, path_revision, register_backend

log = logging.getLogger(__name__)

INSTALL_HINT = "bash setup.sh --vllm (a second environment, .venv-vllm) or envs/vllm.yaml"

#: Engine settings of :class:`VLLMEngine` and their defaults (config keys of the ``vllm`` backend
#: and of ``evaluation.vllm``).
ENGINE_DEFAULTS: dict = {
    "tensor_parallel_size": 1,
    "data_parallel_size": 1,
    "dtype": "auto",
    "gpu_memory_utilization": 0.85,
    "max_model_len": 32768,
    "max_num_seqs": 256,
    "limit_mm_per_prompt": {"image": 0, "video": 1},
    "enforce_eager": False,
    "engine_args": None,
}


def import_vllm():
    """The ``vllm`` module, or :class:`ConfigError` with the install line."""
    try:
        import vllm
    except ImportError as e:
        raise ConfigError(f"backend 'vllm' needs vLLM, which is not importable in this interpreter "
                          f"({e}); build its environment with `{INSTALL_HINT}` and point "
                          "`envs.vllm_python` at it, or use backend 'hf'") from None
    return vllm


def check_engine_config(cfg: dict, where: str) -> dict:
    """Validate and complete engine settings (the keys of :data:`ENGINE_DEFAULTS`).

    Raises:
        ConfigError: unknown key, a value out of range, or ``data_parallel_size`` > 1 (vLLM's
            offline ``LLM`` runs one data-parallel rank per process: data parallelism is
            ``sampling.shards`` / one job per GPU group); names ``where``.
    """
    if bad := sorted(set(cfg) - set(ENGINE_DEFAULTS)):
        raise ConfigError(f"{where}: unknown vllm engine key(s) {bad}; valid: {sorted(ENGINE_DEFAULTS)}")
    out = {**ENGINE_DEFAULTS, **cfg}
    for k in ("tensor_parallel_size", "data_parallel_size", "max_num_seqs"):
        if not isinstance(out[k], int) or out[k] < 1:
            raise ConfigError(f"{where}.{k}: must be an integer >= 1, got {out[k]!r}")
    if out["max_model_len"] is not None and (not isinstance(out["max_model_len"], int)
                                             or out["max_model_len"] < 256):
        raise ConfigError(f"{where}.max_model_len: must be an integer >= 256 or null, got "
                          f"{out['max_model_len']!r}")
    g = out["gpu_memory_utilization"]
    if not isinstance(g, (int, float)) or not 0 < g <= 1:
        raise ConfigError(f"{where}.gpu_memory_utilization: must be in (0, 1], got {g!r}")
    lim = out["limit_mm_per_prompt"]
    counts = {k: v.get("count", 1) if isinstance(v, dict) else v for k, v in (lim or {}).items()} \
        if isinstance(lim, dict) else None
    if (counts is None or set(counts) - {"image", "video"}
            or not all(isinstance(c, int) for c in counts.values()) or counts.get("video", 0) < 1):
        raise ConfigError(f"{where}.limit_mm_per_prompt: a mapping of image/video counts (or vLLM's "
                          "{count, num_frames, width, height} profiling options) with video >= 1, "
                          f"got {lim!r}")
    if out["data_parallel_size"] > 1:
        raise ConfigError(f"{where}.data_parallel_size = {out['data_parallel_size']}: vLLM's offline "
                          "engine serves one data-parallel rank per process; run data-parallel "
                          "copies as separate jobs instead (sampling.shards: one engine per shard, "
                          "each on tensor_parallel_size GPUs)")
    return out


class VLLMEngine:
    """One ``vllm.LLM`` serving every generate call of a job, with token and throughput counters.

    Args:
        model_path: model directory (or hub id resolved offline from the HF cache).
        tensor_parallel_size: GPUs the engine shards the model over.
        dtype: vLLM ``dtype`` ("auto" = the checkpoint's, "bfloat16", ...).
        gpu_memory_utilization: share of each GPU's memory the engine may take (weights + KV cache).
        max_model_len: context limit in tokens (prompt + generation); None = the model's.
        max_num_seqs: sequences decoded together at most.
        limit_mm_per_prompt: images / videos per prompt the engine reserves memory for.
        enforce_eager: no CUDA graphs / torch.compile (faster start, slower decode).
        engine_args: further ``vllm.LLM`` keyword arguments.
        seed: the engine's seed (requests carry their own seeds as well).
        llm: an already built engine (anything with vLLM's ``generate``); skips building one.
    """

    def __init__(self, model_path: str, *, tensor_parallel_size: int = 1, data_parallel_size: int = 1,
                 dtype: str = "auto", gpu_memory_utilization: float = 0.85,
                 max_model_len: int | None = 32768, max_num_seqs: int = 256,
                 limit_mm_per_prompt: dict | None = None, enforce_eager: bool = False,
                 engine_args: dict | None = None, seed: int = 0, llm=None):
        cfg = check_engine_config(
            {"tensor_parallel_size": tensor_parallel_size, "data_parallel_size": data_parallel_size,
             "dtype": dtype, "gpu_memory_utilization": gpu_memory_utilization,
             "max_model_len": max_model_len, "max_num_seqs": max_num_seqs,
             "limit_mm_per_prompt": limit_mm_per_prompt or ENGINE_DEFAULTS["limit_mm_per_prompt"],
             "enforce_eager": enforce_eager, "engine_args": engine_args}, "vllm")
        self.model_path = str(model_path)
        self.engine_kwargs = dict(
            model=self.model_path, tensor_parallel_size=cfg["tensor_parallel_size"],
            dtype=cfg["dtype"], gpu_memory_utilization=float(cfg["gpu_memory_utilization"]),
            max_num_seqs=cfg["max_num_seqs"], limit_mm_per_prompt=dict(cfg["limit_mm_per_prompt"]),
            enforce_eager=bool(cfg["enforce_eager"]), seed=int(seed), load_format="safetensors")
        if cfg["max_model_len"] is not None:
            self.engine_kwargs["max_model_len"] = cfg["max_model_len"]
        self.engine_kwargs.update(cfg["engine_args"] or {})
        if llm is None:
            vllm = import_vllm()
            t0 = time.perf_counter()
            llm = vllm.LLM(**self.engine_kwargs)
            log.info("vllm %s engine for %s up in %.1f s (%s)", getattr(vllm, "__version__", "?"),
                     self.model_path, time.perf_counter() - t0,
                     {k: v for k, v in self.engine_kwargs.items() if k != "model"})
        self.llm = llm
        self.n_requests = self.n_prompt_tokens = self.n_generated_tokens = 0
        self.seconds = 0.0

    @staticmethod
    def sampling_params(n: int, temperature: float, top_p: float = 1.0, top_k: int = 0,
                        max_tokens: int = 1024, seed: int | None = None):
        """vLLM ``SamplingParams``: ``n`` samples sharing the prefill; ``temperature`` 0 is greedy;
        ``top_k`` 0 = off (vLLM's own convention since 0.10)."""
        vllm = import_vllm()
        return vllm.SamplingParams(n=int(n), temperature=float(temperature), top_p=float(top_p),
                                   top_k=max(0, int(top_k)),
                                   max_tokens=int(max_tokens), seed=seed)

    @staticmethod
    def request(prompt: str, frames: np.ndarray, metadata: dict) -> dict:
        """One engine prompt: chat text with one video placeholder, and the video as
        ``(frames (F, H, W, 3) uint8, metadata)`` (metadata from
        :func:`rmsd.frames.metadata.video_metadata`)."""
        return {"prompt": prompt,
                "multi_modal_data": {"video": (np.ascontiguousarray(frames, dtype=np.uint8),
                                               dict(metadata))}}

    def generate(self, requests: list[dict], sampling_params: list) -> list[list[dict]]:
        """Run ``requests`` (one per item) through the engine in one call (it batches them).

        Returns:
            Per request, its ``n`` outputs as ``{"text", "finish_reason", "n_tokens"}``.
        """
        t0 = time.perf_counter()
        outs = self.llm.generate(requests, sampling_params, use_tqdm=False)
        secs = time.perf_counter() - t0
        res = [[{"text": o.text, "finish_reason": o.finish_reason, "n_tokens": len(o.token_ids)}
                for o in r.outputs] for r in outs]
        n_prompt = sum(len(getattr(r, "prompt_token_ids", None) or []) for r in outs)
        n_gen = sum(g["n_tokens"] for r in res for g in r)
        self.n_requests += len(requests)
        self.n_prompt_tokens += n_prompt
        self.n_generated_tokens += n_gen
        self.seconds += secs
        log.info("vllm: %d requests, %d samples, %d prompt + %d generated tokens in %.2f s "
                 "(%.0f generated tokens/s; job so far %d requests, %.0f tokens/s)",
                 len(requests), sum(len(r) for r in res), n_prompt, n_gen, secs,
                 n_gen / max(secs, 1e-9), self.n_requests,
                 self.n_generated_tokens / max(self.seconds, 1e-9))
        return res

    def stats(self) -> dict:
        return {"n_requests": self.n_requests, "n_prompt_tokens": self.n_prompt_tokens,
                "n_generated_tokens": self.n_generated_tokens,
                "generate_seconds": round(self.seconds, 3),
                "generated_tokens_per_s": round(self.n_generated_tokens / self.seconds, 1)
                if self.seconds else None}


def _records(items: list[dict], frames: list[np.ndarray], metadata: list[dict | None] | None
             ) -> list[dict]:
    from rmsd.frames.metadata import video_metadata

    if metadata is None or len(metadata) != len(items) or any(m is None for m in metadata):
        missing = [it["id"] for it, m in zip(items, metadata or [None] * len(items)) if m is None]
        raise ConfigError(f"vllm: item(s) {missing[:3]} have no frame-manifest record; the engine "
                          "needs each video's metadata (fps, frame times)")
    return [video_metadata(m, num_frames=len(f)) for m, f in zip(metadata, frames)]


@register_backend("vllm")
class VLLMTeacher:
    """A model served by ``vllm.LLM`` in this process (one engine per job).

    Args:
        model_path: model directory (or hub id resolved offline from the HF cache).
        template: response template named in the prompt.
        tensor_parallel_size, data_parallel_size, dtype, gpu_memory_utilization, max_model_len,
            max_num_seqs, limit_mm_per_prompt, enforce_eager, engine_args: see :class:`VLLMEngine`.
        llm: an already built engine (anything with vLLM's ``generate``); skips building one.
    """

    def __init__(self, model_path: str, template: str = "answer_only", tensor_parallel_size: int = 1,
                 data_parallel_size: int = 1, dtype: str = "auto",
                 gpu_memory_utilization: float = 0.85, max_model_len: int | None = 32768,
                 max_num_seqs: int = 256, limit_mm_per_prompt: dict | None = None,
                 enforce_eager: bool = False, engine_args: dict | None = None, llm=None):
        from transformers import AutoProcessor

        from rmsd.models.inputs import VideoPromptEncoder

        kw = dict(tensor_parallel_size=tensor_parallel_size, data_parallel_size=data_parallel_size,
                  dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                  max_model_len=max_model_len, max_num_seqs=max_num_seqs,
                  limit_mm_per_prompt=limit_mm_per_prompt, enforce_eager=enforce_eager,
                  engine_args=engine_args)
        self.encoder = VideoPromptEncoder(
            AutoProcessor.from_pretrained(model_path, local_files_only=True), template)
        self.engine = VLLMEngine(model_path, llm=llm, **kw)  # one per job: the pool builds one backend
        self.engine_kwargs = self.engine.engine_kwargs

    @property
    def llm(self):
        return self.engine.llm

    @staticmethod
    def revision_of(model_path: str, **_) -> str:
        return path_revision(model_path)

    def build_requests(self, items: list[dict], frames: list[np.ndarray], k: int,
                       params: SamplingParams, seed: int,
                       metadata: list[dict | None] | None = None) -> tuple[list[dict], list]:
        """The engine's prompts (chat text + the item's frames and video metadata) and one
        ``SamplingParams`` per item.

        Each item gets ``n=k`` and its own seed ``derive_seed(seed, item id)``, so its samples do
        not depend on the other items of the call.

        Raises:
            ConfigError: an item without its frame-manifest record.
            DataError: a record whose frame times are unusable (names the item).
        """
        metas = _records(items, frames, metadata)
        prompts = [self.engine.request(self.encoder.prompt_text(it), fr, md)
                   for it, fr, md in zip(items, frames, metas)]
        sps = [self.engine.sampling_params(k, params.temperature, params.top_p, params.top_k,
                                           params.max_new_tokens, derive_seed(seed, it["id"]))
               for it in items]
        return prompts, sps

    def generate(self, items: list[dict], frames: list[np.ndarray], k: int, params: SamplingParams,
                 seed: int, metadata: list[dict | None] | None = None) -> list[list[dict]]:
        prompts, sps = self.build_requests(items, frames, k, params, seed, metadata)
        return self.engine.generate(prompts, sps)

    @property
    def n_requests(self) -> int:
        return self.engine.n_requests

    def engine_stats(self) -> dict:
        """Requests, prompt and generated tokens, generate seconds and tokens/s of this job."""
        return self.engine.stats()
