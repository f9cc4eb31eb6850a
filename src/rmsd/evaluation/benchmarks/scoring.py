"""Prompts and per-item scoring of benchmark responses.

Scoring by item type (benchmarks.md section 2):

============================ ========================================== =======================
item                         answer extraction                          item score
============================ ========================================== =======================
mcq (all benchmarks)         shared :func:`extract_mcq_letter`          exact match (0/1)
numeric / open (MathVista,   math-verify on the reasoning-stripped      0/1 (judge verdict when
MathVerse, Video-MMMU)       response (fallback only if configured)     ``judge_mode`` says)
temporal (V-STaR When)       exactly two numbers (official)             tIoU
spatial (V-STaR Where)       JSON boxes per second (official)           vIoU over GT frames
open (V-STaR What)           the judge (0-3, >= 2 correct)              0/1
============================ ========================================== =======================

An answer that cannot be extracted scores 0, is marked ``valid: False`` and counted as unparsed;
nothing is guessed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rmsd.errors import ConfigError
from rmsd.evaluation.benchmarks import settings as S
from rmsd.evaluation.benchmarks.extract import (
    MathVerifier,
    final_answer_text,
    extract_mcq_letter,
    parse_vstar_boxes,
    parse_vstar_span,
    strip_reasoning,
    vstar_spatial,
)
from rmsd.evaluation.benchmarks.judge import Judge, JudgeRequest
from rmsd.scoring.formats import n_options_of
from rmsd.scoring.metrics import temporal_iou
from rmsd.tasks import OPTION_LETTERS

__all__ = ["CATEGORY_KEYS", "BenchmarkScorer", "build_prompt_text", "prompt_fields"]

CATEGORY_KEYS: dict[str, tuple[str, ...]] = {
    S.VIDEOMME: ("duration", "domain", "sub_category", "task_type"),
    S.LVB: ("duration_group", "question_category", "topic_category"),
    S.MLVU: ("task_type",),
    S.WORLDSENSE: ("domain", "task_domain", "task_type", "audio_class", "duration_bucket"),
    S.VIDEOMMMU: ("track", "discipline", "subject", "question_type", "source_id"),
    S.VSTAR: ("step", "chain", "domain", "length", "source_id"),
    S.MATHVISTA: ("question_type", "answer_type", "language", "source", "category", "task",
                  "context", "grade", "skills"),
    S.MATHVERSE: ("problem_version", "question_type", "subject", "subfield"),
}
"""Item ``meta`` keys copied into every sample record (``categories``) for the breakdowns."""

MATH_BENCHMARKS = frozenset({S.MATHVISTA, S.MATHVERSE, S.VIDEOMMMU})
ANSWER_WRAP = {
    "answer_only": "Put it in <answer></answer>.",
    "think_answer": "Think in <think></think>, then put it in <answer></answer>.",
}


def _letters_prose(n: int) -> str:
    letters = list(OPTION_LETTERS[:n])
    if n <= 1:
        return "".join(letters)
    if n == 2:
        return f"{letters[0]} or {letters[1]}"
    return ", ".join(letters[:-1]) + f", or {letters[-1]}"


def prompt_fields(item: dict) -> dict[str, str]:
    """The fields a prompt template can use (see rmsd.evaluation.benchmarks.settings)."""
    opts = item.get("options") or []
    d = item.get("duration_s")
    return {
        "question": str(item.get("question", "")).strip(),
        "options": "\n".join(f"{L}. {o}" for L, o in zip(OPTION_LETTERS, opts)),
        "options_paren": "\n".join(f"({L}) {o}" for L, o in zip(OPTION_LETTERS, opts)),
        "letters": _letters_prose(len(opts)),
        "duration_s": "" if d is None else (str(int(d)) if float(d).is_integer() else str(d)),
    }


def build_prompt_text(item: dict, settings: dict, template: str) -> str:
    """The user text of a benchmark item: its prompt template filled in (plus the answer-tag
    instruction when ``settings.answer_tags``).

    Raises:
        ConfigError: the template uses an unknown field (names the benchmark's prompt).
    """
    p = settings["prompt"]
    if isinstance(p, dict):
        key = (item.get("meta") or {}).get("prompt_key", "default")
        tmpl = p.get(key, p.get("default"))
        if tmpl is None:
            raise ConfigError(f"prompt mapping has neither {key!r} nor 'default'")
    else:
        tmpl = p
    try:
        text = tmpl.format_map(prompt_fields(item))
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(f"prompt template {tmpl[:60]!r}... cannot be filled: {e!r} (fields: "
                          f"{sorted(prompt_fields(item))})") from None
    if settings.get("answer_tags"):
        text = text.rstrip() + "\n" + ANSWER_WRAP[template]
    return text


_LETTER_TOKEN = re.compile(r"(?<![A-Za-z0-9])\(?([A-N])\)?(?![A-Za-z0-9])")


def _score_multi_letter(text: str, item: dict, meta: dict) -> dict:
    """A several-letter answer (MathVerse ``C\nD``): the set of option letters in the final
    answer (:func:`final_answer_text`; full-width forms read via NFKC) must equal the gold set.
    The official MathVerse scorer judges such answers with GPT; this is our rule, labelled
    ``method: multi_letter``."""
    import unicodedata

    allowed = set(OPTION_LETTERS[:n_options_of(item)])
    final = unicodedata.normalize("NFKC", final_answer_text(text))
    got = {m.group(1) for m in _LETTER_TOKEN.finditer(final)} & allowed
    ok = bool(got)
    return {"parsed": ", ".join(sorted(got)) if ok else None, "valid": ok,
            "score": float(got == set(meta["answer_letters"])),
            "reason": None if ok else "no option letters", "method": "multi_letter"}


def _score_vstar_when(text: str, gold: list[float]) -> dict:
    """A V-STaR "When" answer scored two ways (both reported, labelled in metrics.json):

    * ``score`` -- the official rule (V-STaR ``extract_timestamps``: the regex
      ``\\b\\d+(?:\\.\\d+)?\\b`` must find exactly two numbers; a reversed span overlaps nothing):
      ``"2.0s to 5.5s"`` reads [2, 5] there (the ``s`` glued to ``2.0`` defeats ``\\b``);
    * ``extra.score_robust`` -- our parse (:func:`rmsd.scoring.formats.find_span`: the pool-scoring
      path's :func:`~rmsd.scoring.formats.parse_span`, also found inside prose: ``2.0s to 5.5s`` -> [2.0, 5.5], mm:ss, ``between 4 and 9``), with a
      swapped span (``from 6 to 2``) put in order and flagged ``extra.swapped`` (counted as
      ``n_swapped``), never scored as a silent 0.
    """
    from rmsd.scoring.formats import find_span

    body = strip_reasoning(text).strip()
    span = parse_vstar_span(text)
    official = 0.0 if span is None or span[1] < span[0] else temporal_iou(span, gold)
    robust = find_span(final_answer_text(body)) or find_span(body)
    swapped = robust is not None and robust[1] < robust[0]
    if swapped:
        robust = [robust[1], robust[0]]
    extra = {"official_span": span, "robust_span": robust, "swapped": swapped,
             "score_robust": 0.0 if robust is None else temporal_iou(robust, gold)}
    return {"parsed": span, "valid": span is not None, "score": official,
            "reason": None if span is not None else "not exactly two numbers",
            "method": "vstar_span", "extra": extra}


class BenchmarkScorer:
    """Scores responses to the items of one benchmark.

    Args:
        name: the benchmark (a key of ``settings.DEFAULTS``).
        settings: its resolved settings.
        math: the math checker (required for MathVista, MathVerse, Video-MMMU).
        judge: the judge (required for V-STaR "what" items and ``judge_mode`` != "off").
    """

    def __init__(self, name: str, settings: dict, math: MathVerifier | None = None,
                 judge: Judge | None = None):
        self.name = name
        self.settings = settings
        self.math = math
        self.judge = judge
        self.judge_mode = settings.get("judge_mode", "off")
        self.n_judged = 0
        self.n_judge_invalid = 0
        if name in MATH_BENCHMARKS and math is None:
            raise ConfigError(f"{name}: a math checker is needed")
        if self.judge_mode != "off" and judge is None:
            raise ConfigError(f"evaluation.benchmark_settings.{name}.judge_mode "
                              f"{self.judge_mode!r} needs evaluation.judge")

    def categories(self, item: dict) -> dict[str, Any]:
        meta = item.get("meta") or {}
        return {k: meta[k] for k in CATEGORY_KEYS.get(self.name, ()) if meta.get(k) is not None}

    def _score_one(self, text: str, item: dict, frame_size: tuple[float, float] | None
                   ) -> tuple[dict, JudgeRequest | None]:
        task = item["task_type"]
        meta = item.get("meta") or {}
        if task == "mcq":
            if meta.get("multi_letter"):
                return _score_multi_letter(text, item, meta), None
            letter = extract_mcq_letter(text, n_options_of(item))
            ok = letter is not None
            gold = str(item["answer"]).strip().upper()
            letters = meta.get("answer_letters") or [gold]
            any_ok = ok and letter in letters
            # The benchmark's official rule: MathVista compares option texts (any duplicate
            # letter is right); MLVU keeps the last matching letter only.
            official = any_ok if meta.get("duplicate_rule") == "any" else (ok and letter == gold)
            out = {"parsed": letter, "valid": ok, "score": float(official),
                   "reason": None if ok else "no single option letter", "method": "mcq"}
            if len(letters) > 1:
                out["extra"] = {"score_any_letter": float(any_ok)}
            return out, None
        if self.name == S.VSTAR:
            return self._score_vstar(text, item, meta, frame_size)
        if task in ("numeric", "open") and self.name in MATH_BENCHMARKS:
            r = self.math.check(text, item["answer"], meta.get("precision"))
            out = {"parsed": r.parsed, "valid": r.parsed is not None, "score": float(r.correct),
                   "reason": None if r.parsed is not None else "no final answer",
                   "method": r.method}
            req = None
            if self.judge_mode == "always" or (self.judge_mode == "unparsed" and not out["valid"]):
                req = JudgeRequest(item["id"], "math", item["question"], str(item["answer"]),
                                   strip_reasoning(text).strip())
            return out, req
        raise ConfigError(f"{self.name}: no scorer for task_type {task!r} (item {item['id']})")

    def _score_vstar(self, text: str, item: dict, meta: dict,
                     frame_size: tuple[float, float] | None) -> tuple[dict, JudgeRequest | None]:
        task = item["task_type"]
        if task == "temporal":
            return _score_vstar_when(text, item["answer"]), None
        if task == "spatial":
            pred = parse_vstar_boxes(text)
            coords = self.settings["box_coords"]
            size = frame_size if coords == "input_pixels" else (
                (meta.get("width"), meta.get("height")) if coords == "original_pixels" else None)
            r = vstar_spatial(pred, item["answer"], coords, size)
            return ({"parsed": pred, "valid": pred is not None, "score": r["viou"],
                     "reason": None if pred is not None else "no JSON boxes",
                     "method": "vstar_boxes", "extra": {"ap": r["ap"]}}, None)
        if task == "open":  # "what": judged
            if self.judge is None:
                raise ConfigError("V-STaR 'what' items need evaluation.judge")
            return ({"parsed": strip_reasoning(text).strip(), "valid": True, "score": 0.0,
                     "reason": None, "method": "judge"},
                    JudgeRequest(item["id"], "vstar_what", str(meta.get("question_raw")
                                                                 or item["question"]),
                                 str(item["answer"]), strip_reasoning(text).strip()))
        raise ConfigError(f"{self.name}: no scorer for task_type {task!r} (item {item['id']})")

    def score_batch(self, texts: Sequence[str], items: Sequence[dict],
                    frame_sizes: Sequence[tuple[float, float] | None] | None = None) -> list[dict]:
        """Score ``texts[i]`` against ``items[i]``; judge requests are sent in one call.

        Returns:
            Per response: ``parsed``, ``valid``, ``score`` (in [0, 1]), ``reason``, ``method``,
            optional ``extra`` and ``judge`` (``{"raw", "score", "correct"}``).
        """
        sizes = frame_sizes or [None] * len(items)
        outs, reqs = [], []
        for t, it, sz in zip(texts, items, sizes):
            o, r = self._score_one(t, it, sz)
            outs.append(o)
            reqs.append(r)
        pending = [(i, r) for i, r in enumerate(reqs) if r is not None]
        if pending:
            verdicts = self.judge([r for _, r in pending])
            if len(verdicts) != len(pending):
                raise ConfigError(f"judge returned {len(verdicts)} verdicts for {len(pending)} requests")
            for (i, _), v in zip(pending, verdicts):
                self.n_judged += 1
                self.n_judge_invalid += int(not v.valid)
                o = outs[i]
                o["judge"] = {"raw": v.raw, "score": v.score, "correct": v.correct, "valid": v.valid}
                if o["method"] != "judge":
                    o.setdefault("extra", {})["rule_score"] = o["score"]
                o["score"] = float(v.correct)
                o["valid"] = bool(v.valid)
                o["reason"] = None if v.valid else "judge output unreadable"
                o["method"] = "judge"
        return outs
