"""Per-benchmark settings: where the data lives, prompts, generation limits, scoring options.

Every benchmark has code defaults (below, with their sources); ``evaluation.benchmark_settings.
<name>`` in the config overrides them key by key. Paths are relative to ``evaluation.data_root``.

Prompt templates are Python format strings over these fields:

========== ===============================================================
field      value
========== ===============================================================
question   the item's question text
options    lettered option lines ``A. text`` (empty for non-MCQ items)
options_paren  lettered option lines ``(A) text``
letters    the allowed letters as prose, e.g. ``A, B, C, or D``
duration_s the video duration in seconds (empty when unknown)
========== ===============================================================

``prompt`` is one template, or a mapping from the item's ``meta.prompt_key`` (set by the importer,
e.g. ``adaptation_mcq``) to templates, with ``default`` as the fallback.
"""

from __future__ import annotations

import copy
from typing import Any

from rmsd.errors import ConfigError

# Canonical benchmark names (paper section 4.2 column names; MLVU_MCQ as in VLMEvalKit).
VIDEOMME = "VideoMME"
LVB = "LongVideoBench"
MLVU = "MLVU_MCQ"
WORLDSENSE = "WorldSense"
VIDEOMMMU = "Video-MMMU"
VSTAR = "V-STaR"
MATHVISTA = "MathVista"
MATHVERSE = "MathVerse"
BENCHMARK_NAMES: tuple[str, ...] = (VIDEOMME, LVB, MLVU, WORLDSENSE, VIDEOMMMU, VSTAR, MATHVISTA,
                                    MATHVERSE)

JUDGE_MODES = ("off", "unparsed", "always")
MLVU_MCQ_TYPES = ("plotQA", "findNeedle", "ego", "count", "order", "anomaly_reco",
                  "topic_reasoning")
"""MLVU's seven MCQ task types with the official release's names (``question_type`` of
``json/1_plotQA.json`` ... ``7_topic_reasoning.json``); M-Avg is their macro mean."""
BOX_COORDS = ("norm1000", "unit", "input_pixels", "original_pixels")
VMMMU_TRACKS = ("Perception", "Comprehension", "Adaptation")
VSTAR_STEPS = ("what", "when", "where")

_MCQ_VLMEVAL = ("These are the frames of a video. Select the best answer to the following "
                "multiple-choice question based on the video. Respond with only the letter "
                "({letters}) of the correct option.\n")
_CAREFUL = ("Carefully watch this video and pay attention to every detail. Based on your "
            "observations, select the best option that accurately addresses the question.")
_ADAPT = ("You should watch and learn the video content. Then apply what you learned to answer "
          "the following {kind} question. The image for this question is at the end of the "
          "video.\n")
_IGNORE_QUIZ = "\nPlease ignore the Quiz question in last frame of the video."

COMMON_KEYS = frozenset({
    "annotations", "media", "split", "limit", "max_new_tokens", "batch_size", "system_prompt",
    "prompt", "answer_tags", "judge_mode", "pass_k_samples",
})
"""Settings every benchmark accepts."""

DEFAULTS: dict[str, dict[str, Any]] = {
    # benchmarks.md 2.1; VLMEvalKit prompt (paper.md section 6 row 21), lmms-eval max_new_tokens.
    VIDEOMME: {
        "annotations": "Video-MME/videomme/test-00000-of-00001.parquet",
        "media": "Video-MME/data/{videoID}.mp4",
        "split": "test",
        "max_new_tokens": 16,
        "prompt": _MCQ_VLMEVAL + "Question: {question}\n{options}\nAnswer: ",
    },
    # benchmarks.md 2.2 (validation split; lmms-eval / VLMEvalKit post-prompt).
    LVB: {
        "annotations": "LongVideoBench/lvb_val.json",
        "media": "LongVideoBench/videos/{video_path}",
        "split": "val",
        "max_new_tokens": 32,
        "prompt": "{question}\n{options}\nAnswer with the option's letter from the given choices "
                  "directly.\n",
    },
    # benchmarks.md 2.3 (dev MCQ task types; VLMEvalKit MLVU_MCQ system prompt).
    MLVU: {
        "annotations": "MLVU/json/*.json",
        "media": "MLVU/video/{_stem}/{video}",
        "split": "dev",
        "max_new_tokens": 16,
        "system_prompt": _CAREFUL,
        "prompt": "Question: {question}\nOptions:\n{options_paren}\nOnly give the best option.",
        # The release's names (json/*.json question_type); "needle" is read as "findNeedle".
        "task_types": list(MLVU_MCQ_TYPES),
    },
    # benchmarks.md 2.8; vision + text only (paper.md section 6 row 20), so "and the corresponding
    # audio" is left out of the prompt.
    WORLDSENSE: {
        "annotations": "WorldSense/worldsense_qa.json",
        "media": "WorldSense/videos/{video_path}",
        "split": "test",
        "max_new_tokens": 1024,
        "system_prompt": _CAREFUL,
        "prompt": _MCQ_VLMEVAL + "{question}\n{options}\n",
    },
    # benchmarks.md 2.7 (lmms-eval protocol: the Adaptation image becomes the last frame).
    VIDEOMMMU: {
        # The GitHub release (data/{perception,comprehension,adaptation}_video.json); the Hugging
        # Face parquet is "VideoMMMU/{track}/test-00000-of-00001.parquet" (has the Adaptation image).
        "annotations": "VideoMMMU/data/{track_lower}_video.json",
        "media": "VideoMMMU/videos/{discipline}/{id}.mp4",
        "split": "test",
        "max_new_tokens": 1024,
        "prompt": {
            "default": "{question}\n{options}",
            "perception_mcq": "{question}\n{options}" + _IGNORE_QUIZ,
            "comprehension_mcq": "{question}\n{options}" + _IGNORE_QUIZ,
            "perception_open": "{question}" + _IGNORE_QUIZ,
            "comprehension_open": "{question}" + _IGNORE_QUIZ,
            "adaptation_mcq": _ADAPT.format(kind="multi-choice") + "{question}\n{options}",
            "adaptation_open": _ADAPT.format(kind="open-ended") + "{question}",
            "question_only_mcq": _ADAPT.format(kind="multi-choice") + "{question}\n{options}",
            "question_only_open": _ADAPT.format(kind="open-ended") + "{question}",
        },
        "tracks": list(VMMMU_TRACKS),
        "question_only": True,
        "question_only_media": "VideoMMMU/question_only/{id}_image.mp4",
        "image_media": "VideoMMMU/images/{image}",
        "adaptation_image": "last_frame",
    },
    # benchmarks.md 2.6 (official V-STaR prompts are built into the question by the importer).
    VSTAR: {
        "annotations": "V-STaR/V_STaR_test.json",
        "media": "V-STaR/videos/{vid}.mp4",
        "split": "test",
        "max_new_tokens": 2048,
        "prompt": "{question}",
        "steps": ["when", "where"],
        "chains": [1, 2],
        "box_coords": "norm1000",
    },
    # benchmarks.md 2.4 (testmini; the `query` field carries lmms-eval's format-prompt hint).
    MATHVISTA: {
        # The GitHub release: data/testmini.json (pid -> problem) + data/query.json (pid -> query).
        "annotations": "MathVista/testmini.json",
        "query_file": "MathVista/query.json",
        "media": "MathVista/{image}",
        "split": "testmini",
        "max_new_tokens": 16384,
        "prompt": "{question}",
        "prompt_field": "query",
    },
    # benchmarks.md 2.5 (testmini; lmms-eval prompts with `query_wo`).
    MATHVERSE: {
        "annotations": "MathVerse/testmini.json",
        "media": "MathVerse/images/{image}",
        "split": "testmini",
        "max_new_tokens": 16384,
        "prompt": "{question}",
        "prompt_field": "query_wo",
        "image_options": 5,
    },
}

SPECIFIC_KEYS: dict[str, frozenset[str]] = {
    name: frozenset(d) - COMMON_KEYS for name, d in DEFAULTS.items()
}
"""Benchmark-specific settings (any other non-common key is rejected)."""

_COMMON_DEFAULTS: dict[str, Any] = {
    "limit": None, "batch_size": None, "system_prompt": None, "answer_tags": False,
    "judge_mode": "off", "pass_k_samples": None,
}


def _check_choice(name: str, key: str, v: Any, choices: tuple) -> None:
    if v not in choices:
        raise ConfigError(f"evaluation.benchmark_settings.{name}.{key}: {v!r} is not one of "
                          f"{list(choices)}")


def resolve_settings(name: str, overrides: dict | None = None) -> dict[str, Any]:
    """The settings of benchmark ``name``: code defaults overridden by ``overrides``.

    A ``prompt`` mapping override is merged into a default mapping (so one key can change).

    Raises:
        ConfigError: unknown benchmark, a key the benchmark does not take, or a bad value (the
            message names ``evaluation.benchmark_settings.<name>.<key>``).
    """
    if name not in DEFAULTS:
        raise ConfigError(f"unknown benchmark {name!r}; valid: {list(BENCHMARK_NAMES)}")
    overrides = dict(overrides or {})
    allowed = COMMON_KEYS | SPECIFIC_KEYS[name]
    if bad := sorted(set(overrides) - allowed):
        raise ConfigError(f"evaluation.benchmark_settings.{name}: unknown key(s) {bad}; "
                          f"valid: {sorted(allowed)}")
    out = {**copy.deepcopy(_COMMON_DEFAULTS), **copy.deepcopy(DEFAULTS[name])}
    for k, v in overrides.items():
        if k == "prompt" and isinstance(v, dict) and isinstance(out.get("prompt"), dict):
            out["prompt"] = {**out["prompt"], **v}
        else:
            out[k] = copy.deepcopy(v)
    where = f"evaluation.benchmark_settings.{name}"
    _check_choice(name, "judge_mode", out["judge_mode"], JUDGE_MODES)
    if out["judge_mode"] != "off" and name not in (MATHVISTA, MATHVERSE, VIDEOMMMU):
        raise ConfigError(f"{where}.judge_mode: applies to free-form math answers (MathVista, "
                          "MathVerse, Video-MMMU); MCQ answers are never judged")
    if out["limit"] is not None and (isinstance(out["limit"], bool) or not isinstance(
            out["limit"], int) or out["limit"] < 1):
        raise ConfigError(f"{where}.limit: expected a positive integer or null, got {out['limit']!r}")
    p = out["prompt"]
    if not (isinstance(p, str) or (isinstance(p, dict) and all(isinstance(x, str) for x in p.values()))):
        raise ConfigError(f"{where}.prompt: expected a string or a mapping of strings")
    if name == VSTAR:
        if not out["steps"] or any(s not in VSTAR_STEPS for s in out["steps"]):
            raise ConfigError(f"{where}.steps: {out['steps']!r} must be a non-empty subset of "
                              f"{list(VSTAR_STEPS)}")
        if not out["chains"] or any(c not in (1, 2) for c in out["chains"]):
            raise ConfigError(f"{where}.chains: {out['chains']!r} must be a non-empty subset of [1, 2]")
        _check_choice(name, "box_coords", out["box_coords"], BOX_COORDS)
    if name == VIDEOMMMU:
        if not out["tracks"] or any(t not in VMMMU_TRACKS for t in out["tracks"]):
            raise ConfigError(f"{where}.tracks: {out['tracks']!r} must be a non-empty subset of "
                              f"{list(VMMMU_TRACKS)}")
        _check_choice(name, "adaptation_image", out["adaptation_image"], ("last_frame", "none"))
    if name == MATHVISTA:
        _check_choice(name, "prompt_field", out["prompt_field"], ("query", "question"))
    if name == MATHVERSE:
        _check_choice(name, "prompt_field", out["prompt_field"],
                      ("query_wo", "query_cot", "question"))
    return out


GENERAL_EVAL_KEYS = ("max_new_tokens", "batch_size", "pass_k_samples", "pass_k_temperature",
                     "pass_k_threshold", "bootstrap")
"""Keys of ``evaluation`` that reach every evaluation job (benchmark-independent)."""
BENCHMARK_EVAL_KEYS = ("math_fallback", "judge")
"""Keys of ``evaluation`` that reach the paper's benchmarks' jobs only."""


def eval_params(evaluation: dict, dataset: str) -> dict[str, Any]:
    """The evaluation config of one dataset's jobs (what rule eval_run passes as ``params.cfg``).

    General keys as configured; for a registered benchmark also ``math_fallback``, ``judge``,
    ``benchmark`` (its name) and ``settings`` (resolved). Other datasets (the embedded ``synth-*``)
    get exactly the general keys, so editing one benchmark's settings reruns only that benchmark.
    """
    out = {k: copy.deepcopy(evaluation[k]) for k in GENERAL_EVAL_KEYS if k in evaluation}
    if dataset in DEFAULTS:
        out.update({k: copy.deepcopy(evaluation[k]) for k in BENCHMARK_EVAL_KEYS if k in evaluation})
        out["benchmark"] = dataset
        out["settings"] = resolve_settings(
            dataset, (evaluation.get("benchmark_settings") or {}).get(dataset))
        if out["settings"]["pass_k_samples"] is not None:
            # per-benchmark pass@k: opt in (or out) benchmark by benchmark
            out["pass_k_samples"] = int(out["settings"]["pass_k_samples"])
    return out


IMPORT_KEYS = frozenset({
    "annotations", "media", "split", "limit", "task_types", "tracks", "question_only",
    "question_only_media", "image_media", "steps", "chains", "prompt_field", "image_options",
    "query_file",
})
"""Settings that change the imported items (the rest only affect prompting and scoring)."""


def import_params(evaluation: dict, benchmark: str) -> dict[str, Any]:
    """What rule data_import passes: ``data_root`` and the import-relevant settings of
    ``benchmark`` (:data:`IMPORT_KEYS`, resolved), so a prompt edit does not re-import the data
    and re-extract its frames."""
    s = resolve_settings(benchmark, (evaluation.get("benchmark_settings") or {}).get(benchmark))
    return {
        "data_root": str(evaluation.get("data_root", "data/benchmarks")),
        "settings": {k: v for k, v in s.items() if k in IMPORT_KEYS},
        "on_record_error": str(evaluation.get("on_record_error", "skip")),
        "min_import_share": float(evaluation.get("min_import_share", 0.9)),
    }


def check_evaluation_config(evaluation: dict) -> None:
    """Cross-checks the schema cannot express (run when the workflow is parsed).

    Raises:
        ConfigError: bad per-benchmark settings; V-STaR "what" without a judge; a judge without a
            ``factory``.
    """
    bs = evaluation.get("benchmark_settings") or {}
    for name in bs:
        if name not in DEFAULTS:
            raise ConfigError(f"evaluation.benchmark_settings: unknown benchmark {name!r}; "
                              f"valid: {list(BENCHMARK_NAMES)}")
    for name in evaluation.get("benchmarks", []):
        if name not in DEFAULTS:
            continue
        s = resolve_settings(name, bs.get(name))
        needs_judge = (name == VSTAR and "what" in s["steps"]) or s["judge_mode"] != "off"
        if needs_judge and not evaluation.get("judge"):
            raise ConfigError(f"evaluation.benchmark_settings.{name}: needs evaluation.judge "
                              f"(V-STaR 'what' step or judge_mode {s['judge_mode']!r})")
    judge = evaluation.get("judge")
    if judge is not None and (not isinstance(judge, dict) or ":" not in str(judge.get("factory", ""))):
        raise ConfigError("evaluation.judge.factory: expected 'module:function'")


def annotation_files(evaluation: dict, benchmark: str) -> list[str]:
    """The annotation files rule data_import reads (its ``input``), without raising.

    Glob patterns are expanded; a pattern or path that matches nothing is returned as is, so
    Snakemake reports it as the missing input (naming the expected file).
    """
    import glob
    from pathlib import Path

    p = import_params(evaluation, benchmark)
    pattern = p["settings"]["annotations"]
    fills = ([{"track": t, "track_lower": t.lower()} for t in p["settings"]["tracks"]]
             if "{track" in pattern else [{}])
    out = []
    for f in fills:
        full = str(Path(p["data_root"]) / pattern.format(**f))
        matches = sorted(glob.glob(full)) if any(c in full for c in "*?[") else []
        out.extend(matches or [full])
    return out
