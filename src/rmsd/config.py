"""Experiment configuration: variant resolution and cross-reference checks.

The JSON schema (config/schema.yaml) checks shapes and types at parse time; this module checks
what a schema cannot (names that must refer to each other) and resolves each variant into the
full recipe it runs.
"""

from __future__ import annotations

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
    return resolved


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
