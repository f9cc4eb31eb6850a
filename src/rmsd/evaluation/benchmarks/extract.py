"""Answer extraction for benchmark responses (benchmarks.md sections 2.6 and 2.9).

MCQ answers go through the one shared extractor :func:`rmsd.scoring.mcq.extract_mcq_letter`
(re-exported here). This module adds the V-STaR span and box parsers, exactly as the benchmark
defines them, and the math answer check through math-verify.

Model output is data: nothing here evaluates it, every scan is linear (no backtracking regular
expressions over unbounded text), and no parser raises on any text.
"""

from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import dataclass
from typing import Any

from rmsd.errors import ConfigError
from rmsd.scoring.mcq import extract_mcq_letter
from rmsd.scoring.metrics import box_iou

__all__ = [
    "MathResult",
    "MathVerifier",
    "extract_mcq_letter",
    "final_answer_text",
    "is_text_answer",
    "parse_vstar_boxes",
    "parse_vstar_span",
    "strip_reasoning",
    "vstar_spatial",
]

_TAG_RE = re.compile(r"<(/?)(think|answer)>", re.IGNORECASE)


def strip_reasoning(text: Any) -> str:
    """The answer part of a response: the content of the last complete ``<answer>...</answer>``
    block when there is one; otherwise the text without ``<think>...</think>`` blocks (text before
    a lone ``</think>`` and after a lone ``<think>`` is dropped, as unfinished reasoning).

    lmms-eval strips reasoning tags the same way by default (benchmarks.md section 2). Tags are
    case-insensitive. Non-text gives "".

    >>> strip_reasoning("<think>2 or 3</think><answer>[1, 4]</answer>")
    '[1, 4]'
    >>> strip_reasoning("<think>hmm</think> It is 5.")
    ' It is 5.'
    """
    if not isinstance(text, str):
        return ""
    tags = list(_TAG_RE.finditer(text))
    last_answer, open_at = None, None
    for m in tags:
        if m.group(2).lower() != "answer":
            continue
        if not m.group(1):
            open_at = m
        elif open_at is not None:
            last_answer = (open_at.end(), m.start())
            open_at = None
    if last_answer is not None:
        return text[last_answer[0]:last_answer[1]]
    out, pos, think_open = [], 0, None
    for m in tags:
        if m.group(2).lower() != "think":
            continue
        if not m.group(1):
            if think_open is None:
                out.append(text[pos:m.start()])
                think_open = m
        else:
            if think_open is None:  # lone </think>: everything before is reasoning
                out = []
            think_open = None
            pos = m.end()
    if think_open is None:
        out.append(text[pos:])
    return "".join(out)


# --------------------------------------------------------------------------------------------------
# V-STaR
# --------------------------------------------------------------------------------------------------

_VSTAR_NUM_RE = re.compile(r"\b\d+(?:\.\d+)?\b")


def parse_vstar_span(text: Any) -> list[float] | None:
    """V-STaR "When" answer: all numbers ``\\b\\d+(?:\\.\\d+)?\\b``; valid only when exactly two are
    found (official ``extract_timestamps``), else None (scored tIoU 0).

    The reasoning is stripped first (:func:`strip_reasoning`), so numbers inside ``<think>`` do not
    count. Signs are not part of the pattern (``-3`` reads as 3, as in the official code).

    >>> parse_vstar_span("From 3.5 to 7 seconds."), parse_vstar_span("At 3 s"), parse_vstar_span("1, 2, 3")
    ([3.5, 7.0], None, None)
    """
    s = strip_reasoning(text)
    nums = []
    for m in _VSTAR_NUM_RE.finditer(s):
        nums.append(m.group(0))
        if len(nums) > 2:
            return None
    if len(nums) != 2:
        return None
    vals = [float(x) for x in nums]
    return vals if all(math.isfinite(v) for v in vals) else None


_MD_JSON_RE = re.compile(r"```json\s*\n")


def _first_bracketed(s: str) -> str | None:
    """The official ``(\\[[\\s\\S]*\\]|\\{[\\s\\S]*\\})`` match, computed in linear time: from the
    first ``[`` (``{``) that has a ``]`` (``}``) after it, to the last such closing bracket."""
    last = {"[": s.rfind("]"), "{": s.rfind("}")}
    for i, c in enumerate(s):
        if c in last and last[c] > i:
            return s[i:last[c] + 1]
    return None


def _markdown_json(s: str) -> str | None:
    """Content of the first markdown json block whose body starts with ``[`` or ``{`` and ends
    with the matching bracket, newline and fence (the official markdown pattern, non-greedy)."""
    for m in _MD_JSON_RE.finditer(s):
        body_start = m.end()
        end = s.find("```", body_start)
        while end != -1:
            body = s[body_start:end].rstrip()
            if body and body[0] in "[{" and body[-1] == ("]" if body[0] == "[" else "}") and \
                    s[body_start + len(body):end].endswith("\n"):
                return body
            end = s.find("```", end + 3)
    return None


def _fix_incomplete_json(s: str) -> str:
    """Balance brackets as the official ``fix_incomplete_json``: missing closers are appended,
    missing openers prepended (square brackets, then curly)."""
    o, c = s.count("["), s.count("]")
    s = s + "]" * (o - c) if o > c else "[" * (c - o) + s
    o, c = s.count("{"), s.count("}")
    return s + "}" * (o - c) if o > c else "{" * (c - o) + s


def _loads(s: str) -> Any:
    try:
        return json.loads(s)
    except (ValueError, RecursionError):
        return None


def _as_time_dict(obj: Any) -> dict[str, Any] | None:
    """Official post-processing: a list of dicts is merged into one dict; a list of
    ``[t, box]`` pairs becomes ``{str(t): box}``; a dict stays."""
    if isinstance(obj, dict):
        return obj
    if isinstance(obj, list):
        if obj and all(isinstance(x, dict) for x in obj):
            out: dict = {}
            for x in obj:
                out.update(x)
            return out
        out = {}
        for x in obj:
            if isinstance(x, (list, tuple)) and len(x) >= 2:
                out[str(x[0])] = x[1]
            else:
                return None
        return out
    return None


def parse_vstar_boxes(text: Any) -> dict[str, Any] | None:
    """V-STaR "Where" answer as the official ``extract_bounding_boxes`` defines it: a markdown
    ```json block, else the first ``[...]``/``{...}`` span; single quotes become double quotes;
    on a JSON error the brackets are balanced and it is tried again.

    Returns:
        The raw ``{time key: value}`` mapping (values not yet checked; see
        :func:`vstar_spatial`), or None when no JSON object could be read. A list of ``[t, box]``
        pairs is converted to a mapping in both paths (the official code forgets to convert after
        its bracket repair, which then scores 0).
    """
    s = strip_reasoning(text)
    body = _markdown_json(s) or _first_bracketed(s)
    if body is None:
        return None
    body = body.strip().replace("'", '"')
    obj = _loads(body)
    if obj is None:
        obj = _loads(_fix_incomplete_json(body))
    return _as_time_dict(obj) if obj is not None else None


def _unwrap_box(v: Any) -> Any:
    """A ``[t, box]`` pair -> box (the pair form the official post-processing also accepts)."""
    if (isinstance(v, (list, tuple)) and len(v) == 2 and isinstance(v[0], (int, float))
            and isinstance(v[1], (list, tuple))):
        return v[1]
    return v


def _box4(v: Any) -> list[float] | None:
    if isinstance(v, (list, tuple)) and len(v) == 4 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        vals = [float(x) for x in v]
        if all(math.isfinite(x) for x in vals):
            return vals
    return None


def _to_norm1000(box: list[float], coords: str, size: tuple[float, float] | None) -> list[float] | None:
    if coords == "norm1000":
        return box
    if coords == "unit":
        return [1000.0 * x for x in box]
    if size is None or not (size[0] > 0 and size[1] > 0):
        return None
    w, h = size
    return [1000.0 * box[0] / w, 1000.0 * box[1] / h, 1000.0 * box[2] / w, 1000.0 * box[3] / h]


def _time_key(k: Any) -> float | None:
    try:
        x = float(str(k).strip())
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def vstar_spatial(pred: dict[str, Any] | None, gt: list[dict], coords: str = "norm1000",
                  size: tuple[float, float] | None = None,
                  thresholds: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)) -> dict[str, Any]:
    """V-STaR "Where" scores of one answer (official ``calculate_spatial_metrics``).

    For each annotated frame ``{"t", "box"}`` (0-1000 scale): the predicted value at the same
    second (keys compared as numbers, so ``"3"`` matches ``3``) is one box or a list of boxes; the
    frame's IoU is the maximum over them, 0 when the second is missing or the value is not a box.

    Args:
        pred: from :func:`parse_vstar_boxes`.
        gt: the item's answer.
        coords: the coordinate convention of predicted boxes: ``norm1000`` (Qwen3-VL, like the
            ground truth), ``unit`` (0-1), ``input_pixels`` or ``original_pixels`` (rescaled by
            ``size`` = (width, height) of the model input or of the original video).
        thresholds: AP thresholds.

    Returns:
        ``viou`` (mean IoU over annotated frames), ``ap`` (per threshold, the fraction of frames
        with IoU >= it), ``frame_ious``.
    """
    by_t: dict[float, list[list[float]]] = {}
    for k, v in (pred or {}).items():
        t = _time_key(k)
        if t is None:
            continue
        v = _unwrap_box(v)
        one = _box4(v)
        if one is not None:
            cands = [one]
        elif isinstance(v, (list, tuple)):  # several boxes at one second: the best counts
            cands = [b for b in (_box4(x) for x in v) if b is not None]
        else:
            cands = []
        boxes = [b for b in (_to_norm1000(c, coords, size) for c in cands) if b is not None]
        by_t.setdefault(t, []).extend(boxes)
    ious = []
    for f in gt:
        cands = next((b for t, b in by_t.items() if abs(t - float(f["t"])) < 1e-6), [])
        best = 0.0
        for b in cands:
            try:
                best = max(best, box_iou(b, f["box"]))
            except ValueError:  # x2 < x1 etc.: not a box, IoU 0 (official: negative area)
                continue
        ious.append(best)
    viou = sum(ious) / len(ious) if ious else 0.0
    ap = {str(t): (sum(i >= t for i in ious) / len(ious) if ious else 0.0) for t in thresholds}
    return {"viou": viou, "ap": ap, "frame_ious": ious}


# --------------------------------------------------------------------------------------------------
# Math answers (math-verify)
# --------------------------------------------------------------------------------------------------

_BOXED_RE = re.compile(r"\\boxed\s*\{")
_ANSWER_PHRASE_RE = re.compile(r"(?i)(?:final\s+answer|answer)\s*(?:is|:)?\s*")
_NUMBER_RE = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][+-]?\d+)?|[+-]?\.\d+")


def _last_boxed(s: str) -> str | None:
    """Content of the last ``\\boxed{...}`` whose braces balance (one linear pass)."""
    starts = {m.end() - 1 for m in _BOXED_RE.finditer(s)}  # index of each boxed "{"
    if not starts:
        return None
    stack, best = [], None
    for i, c in enumerate(s):
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            j = stack.pop()
            if j in starts and (best is None or j > best[0]):
                best = (j, i)
    return s[best[0] + 1:best[1]] if best else None


def final_answer_text(text: Any) -> str:
    """The final-answer span of a free-form response, deterministically: the last ``\\boxed{}``,
    else the text after the last "answer is"/"Answer:", else the last non-empty line; reasoning
    stripped first. Used by the fallback checker and for display."""
    s = strip_reasoning(text).strip()
    boxed = _last_boxed(s)
    if boxed is not None:
        return boxed.strip()
    last = None
    for m in _ANSWER_PHRASE_RE.finditer(s):
        last = m
    if last is not None and s[last.end():].strip():
        return s[last.end():].strip().rstrip(".").strip()
    lines = [ln.strip() for ln in s.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _norm_str(s: str) -> str:
    s = s.casefold().replace("$", "").replace("\\text", "")
    return "".join(c for c in s if c.isalnum() or c in ".-/+()[],=")


@dataclass
class MathResult:
    """Outcome of a math answer check."""

    correct: bool
    parsed: str | None
    """The extracted answer (string form), None when nothing could be extracted (unparsed)."""
    method: str
    """"math_verify", "string" (gold is not math: normalised string equality) or "fallback"."""


class MathVerifier:
    """Checks free-form and numeric answers with math-verify (``pip install math-verify``).

    Without math-verify it raises ConfigError unless ``allow_fallback`` is set; then a
    deterministic fallback compares the final answer's last number (or normalised text) and every
    use is counted in ``n_fallback``.

    Args:
        allow_fallback: use the fallback when math-verify is not importable.
        timeout_s: math-verify's parse/verify time limit (SIGALRM; main thread only).
    """

    def __init__(self, allow_fallback: bool = False, timeout_s: int = 5):
        self.allow_fallback = allow_fallback
        self.timeout_s = timeout_s
        self.n_fallback = 0
        self.n_checked = 0
        try:
            import math_verify  # noqa: F401
            from importlib.metadata import version

            self._mv = math_verify
            self.version: str | None = version("math-verify")
        except ImportError:
            self._mv = None
            self.version = None
            if not allow_fallback:
                raise ConfigError(
                    "math answers need math-verify (`pip install math-verify==0.9.0`), or set "
                    "evaluation.math_fallback: true to use the counted deterministic fallback"
                ) from None

    @property
    def available(self) -> bool:
        """True when math-verify is used."""
        return self._mv is not None

    def _timeout(self) -> int | None:
        return self.timeout_s if threading.current_thread() is threading.main_thread() else None

    def _parse(self, s: str) -> list:
        try:
            return self._mv.parse(s, parsing_timeout=self._timeout())
        except Exception:  # noqa: BLE001  (math-verify/sympy may raise anything on odd input)
            return []

    def check(self, response: Any, gold: Any, precision: float | None = None) -> MathResult:
        """Is the response's final answer equal to ``gold``?

        Args:
            response: the raw response (reasoning is stripped first).
            gold: the ground truth (number or string).
            precision: decimals to compare floats at (MathVista ``precision``), else 6.

        Never raises on the response.
        """
        self.n_checked += 1
        text = strip_reasoning(response)
        if self._mv is None:
            self.n_fallback += 1
            return self._fallback(text, gold, precision)
        gold_s = _gold_text(gold)
        gold_p = [] if is_text_answer(gold_s) else (self._parse(f"${gold_s}$")
                                                     or self._parse(gold_s))
        if not gold_p:  # not a math expression: normalised string equality
            ans = final_answer_text(text)
            return MathResult(bool(ans) and _norm_str(ans) == _norm_str(gold_s), ans or None,
                              "string")
        pred_p = self._parse(text)
        if not pred_p:
            return MathResult(False, None, "math_verify")
        rounding = int(precision) if precision is not None else 6
        try:
            ok = bool(self._mv.verify(gold_p, pred_p, float_rounding=rounding,
                                      timeout_seconds=self._timeout()))
        except Exception:  # noqa: BLE001
            ok = False
        parsed = str(pred_p[-1]) if len(pred_p) > 1 else str(pred_p[0])
        return MathResult(ok, parsed, "math_verify")

    @staticmethod
    def _fallback(text: str, gold: Any, precision: float | None) -> MathResult:
        ans = final_answer_text(text)
        if not ans:
            return MathResult(False, None, "fallback")
        g = _gold_number(gold)
        if g is not None:
            nums = _NUMBER_RE.findall(ans)
            if not nums:
                return MathResult(False, None, "fallback")
            try:
                p = float(nums[-1].replace(",", ""))
            except ValueError:
                return MathResult(False, None, "fallback")
            if not math.isfinite(p):
                return MathResult(False, None, "fallback")
            if precision is not None:
                ok = round(p, int(precision)) == round(g, int(precision))
            else:
                ok = abs(p - g) <= 1e-6 * max(1.0, abs(g))
            return MathResult(ok, nums[-1], "fallback")
        return MathResult(_norm_str(ans) == _norm_str(str(gold)), ans, "fallback")


_WORD_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")
_MATH_WORDS = frozenset({"sin", "cos", "tan", "cot", "sec", "csc", "log", "exp", "sqrt", "frac",
                         "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "max", "min", "deg",
                         "mod", "gcd", "lcm", "det", "dfrac", "tfrac", "infty", "circ", "cdot",
                         "times", "div", "left", "right", "text", "mathrm", "pm", "degree",
                         "degrees"})


def is_text_answer(gold: str) -> bool:
    r"""True when a ground truth is prose ("Yes", "increasing") rather than math: it has a word of
    three or more letters that is not a LaTeX command or a function name. Such answers are compared
    as normalised strings (math-verify would read "Yes" as the product E*s*y).

    >>> is_text_answer("Yes"), is_text_answer(r"\frac{\pi}{3}"), is_text_answer(r"2\sin x + 1")
    (True, False, False)
    """
    return any(m.group(0).lower() not in _MATH_WORDS for m in _WORD_RE.finditer(gold))


def _gold_text(gold: Any) -> str:
    if isinstance(gold, float) and gold.is_integer():
        return str(int(gold))
    return str(gold).strip()


def _gold_number(gold: Any) -> float | None:
    if isinstance(gold, bool):
        return None
    if isinstance(gold, (int, float)):
        return float(gold) if math.isfinite(gold) else None
    try:
        x = float(str(gold).strip().replace(",", ""))
    except ValueError:
        return None
    return x if math.isfinite(x) else None
