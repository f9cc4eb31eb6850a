"""Format checkers R_outer and R_task (paper section 3.7).

The MCQ check uses the shared extractor :func:`rmsd.scoring.mcq.extract_mcq_letter` (re-exported).

Model output is data: it is only matched with regular expressions (no eval, no JSON of arbitrary
text), and no function here raises on any response text. Problems with the *item* (missing options,
missing duration) raise :class:`rmsd.errors.DataError` naming the item id.

Reason strings are short fixed categories (no response text inside), so they can be counted.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Any, NamedTuple

from rmsd.errors import ConfigError, DataError
from rmsd.scoring.mcq import extract_mcq_letter
from rmsd.tasks import OPTION_LETTERS, RESPONSE_TEMPLATES, TASK_TYPES

__all__ = [
    "OuterCheck",
    "TaskCheck",
    "check_outer",
    "check_task",
    "duration_of",
    "extract_mcq_letter",
    "n_options_of",
    "parse_box",
    "parse_number",
    "parse_span",
    "parse_time_s",
]

SPAN_TOLERANCE_S: float = 1e-6
"""Slack (seconds) allowed when checking ``e <= duration_s`` of a temporal answer."""
BOX_SCALE: float = 1000.0
"""Boxes live on the 0-1000 normalised scale (Qwen-VL convention, see rmsd.tasks)."""


class OuterCheck(NamedTuple):
    """Result of the outer format check R_outer."""

    valid: bool
    answer_text: str | None
    """Stripped text inside ``<answer>...</answer>`` when ``valid``, else None."""
    reason: str | None
    """Why the check failed (None when valid)."""


class TaskCheck(NamedTuple):
    """Result of the task-specific format check R_task."""

    valid: bool
    parsed: Any
    """JSON-serialisable parsed answer when ``valid`` (letter, float, string, list), else None."""
    reason: str | None


_ANSWER_ONLY_RE = re.compile(r"<answer>(.*)</answer>", re.DOTALL)
_THINK_ANSWER_RE = re.compile(r"<think>(.*?)</think>\s*<answer>(.*)</answer>", re.DOTALL)


def check_outer(text: str, template: str) -> OuterCheck:
    """R_outer: does the whole response follow the response template (paper section 3.7)?

    The response is stripped of surrounding whitespace, then must be, in full (DOTALL):

    * ``answer_only``: ``<answer>...</answer>`` and nothing else;
    * ``think_answer``: ``<think>...</think>\\s*<answer>...</answer>`` and nothing else.

    Exactly one ``<answer>`` and one ``</answer>`` tag (and, for ``think_answer``, one ``<think>``
    and one ``</think>``) may occur, so nested or repeated tags are invalid. Tags are case
    sensitive. A truncated response lacks its closing tag and is therefore invalid.

    >>> check_outer(" <answer> B </answer>\\n", "answer_only")
    OuterCheck(valid=True, answer_text='B', reason=None)
    >>> check_outer("<answer></answer>", "answer_only").reason
    'empty answer'

    Args:
        text: the response text (already decoded).
        template: one of ``rmsd.tasks.RESPONSE_TEMPLATES``.

    Returns:
        OuterCheck; ``answer_text`` is the stripped content of the answer tags.

    Raises:
        ConfigError: unknown template.
    """
    if template not in RESPONSE_TEMPLATES:
        raise ConfigError(
            f"unknown response template {template!r}; valid: {list(RESPONSE_TEMPLATES)}"
        )
    if not isinstance(text, str):
        return OuterCheck(False, None, "not text")
    s = text.strip()
    if not s:
        return OuterCheck(False, None, "empty response")
    n_open, n_close = s.count("<answer>"), s.count("</answer>")
    if n_open == 0:
        return OuterCheck(False, None, "missing <answer>")
    if n_close == 0:
        return OuterCheck(False, None, "missing </answer> (truncated?)")
    if n_open > 1 or n_close > 1:
        return OuterCheck(False, None, "multiple or nested <answer> tags")
    if template == "answer_only":
        m = _ANSWER_ONLY_RE.fullmatch(s)
        if m is None:
            return OuterCheck(False, None, "text outside <answer>")
        inner = m.group(1)
    else:
        if s.count("<think>") != 1 or s.count("</think>") != 1:
            return OuterCheck(False, None, "missing or repeated <think> block")
        m = _THINK_ANSWER_RE.fullmatch(s)
        if m is None:
            return OuterCheck(False, None, "not <think>...</think><answer>...</answer>")
        inner = m.group(2)
    inner = inner.strip()
    if not inner:
        return OuterCheck(False, None, "empty answer")
    return OuterCheck(True, inner, None)


# ----------------------------------------------------------------------------------------------
# Task-specific checks
# ----------------------------------------------------------------------------------------------

_NUM = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_NUM_RE = re.compile(_NUM)
_PAIR_RE = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*\]")
_QUAD_RE = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]")


def parse_number(s: str) -> float | None:
    """Parse a plain decimal number (ASCII digits, optional sign, decimal point and exponent).

    ``"3"``, ``"3.0"``, ``"-2.5"``, ``"1e3"`` parse; thousands separators (``"1,000"``),
    underscores, ``inf``/``nan``, hex and non-ASCII digits do not. Non-finite results (``1e999``)
    give None.

    >>> parse_number(" -2.5 "), parse_number("1e3"), parse_number("1,000")
    (-2.5, 1000.0, None)
    """
    s = s.strip()
    if not _NUM_RE.fullmatch(s):
        return None
    x = float(s)
    return x if math.isfinite(x) else None


_TIME = rf"(?:\d+:)?\d+:\d+(?:\.\d+)?|{_NUM}"
_TIME_RE = re.compile(_TIME)
_SPAN_FILLER_RE = re.compile(
    r"(?:from|to|and|between|until|till|start|end|begins?|ends?|at|seconds?|secs?|s|\s|[\[\](){}:=,;\-\u2013\u2014\"'])*",
    re.IGNORECASE)
_BOX_RE = re.compile(rf"[\[(]?\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*[\])]?")


def parse_time_s(token: str) -> float | None:
    """Seconds from ``"83.5"``, ``"1:23.5"`` (mm:ss) or ``"0:01:23.5"`` (hh:mm:ss); None if invalid.

    >>> parse_time_s("1:23.5"), parse_time_s("0:01:02"), parse_time_s("4.25"), parse_time_s("1:75")
    (83.5, 62.0, 4.25, None)
    """
    parts = token.strip().split(":")
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        return None
    if any(not math.isfinite(v) for v in vals) or len(vals) > 3:
        return None
    if len(vals) > 1 and (vals[-1] >= 60 or (len(vals) == 3 and vals[1] >= 60)):
        return None
    total = 0.0
    for v in vals:
        total = total * 60 + v
    return total


def parse_span(text: str) -> list[float] | None:
    """A ``[start_s, end_s]`` span from the usual written forms, or None.

    Accepted: ``[1.0, 3.0]``, ``(1, 3)``, ``1.0-3.0``, ``1.0 to 3.0``, ``from 1s to 3s``,
    ``00:01-00:03`` (mm:ss), ``0:00:01 - 0:00:03`` and JSON ``{"start": 1, "end": 3}``. Exactly two
    times must appear and nothing but brackets, separators and the words from/to/and/until/start/end/
    s/sec/seconds may surround them. A leading sign is not a separator: ``-1`` stays a number only
    inside brackets.

    >>> parse_span("[1.0, 3.0]"), parse_span("from 00:01 to 00:03"), parse_span('{"start": 1, "end": 2.5}')
    ([1.0, 3.0], [1.0, 3.0], [1.0, 2.5])
    >>> parse_span("1.0-3.0"), parse_span("about 1 to 3"), parse_span("[1, 2, 3]")
    ([1.0, 3.0], None, None)
    """
    s = text.strip()
    if s.startswith("{"):
        try:
            obj = json.loads(s)
        except (ValueError, RecursionError):
            return None
        if isinstance(obj, dict) and {"start", "end"} <= set(obj):
            vals = [obj["start"], obj["end"]]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
                out = [float(v) for v in vals]
                return out if all(math.isfinite(v) for v in out) else None
        return None
    m = _PAIR_RE.fullmatch(s)
    if m:
        return _floats(m.groups())
    tokens = [(t.start(), t.end()) for t in re.finditer(r"(?:\d+:)?\d+:\d+(?:\.\d+)?|\d+(?:\.\d+)?", s)]
    if len(tokens) != 2:
        return None
    rest = s[:tokens[0][0]] + " " + s[tokens[0][1]:tokens[1][0]] + " " + s[tokens[1][1]:]
    if not _SPAN_FILLER_RE.fullmatch(rest):
        return None
    vals = [parse_time_s(s[a:b]) for a, b in tokens]
    return None if any(v is None for v in vals) else vals


_TOKEN = r"(?:\d+:)?\d+:\d+(?:\.\d+)?|\d+(?:\.\d+)?"
_SPAN_IN_TEXT_RE = re.compile(
    rf"(?:between\s+|from\s+)?({_TOKEN})\s*(?:s|secs?|seconds?)?\s*(?:-|\u2013|\u2014|to|and|until|till)"
    rf"\s*({_TOKEN})(?![\d:]|\.\d)", re.IGNORECASE)


def find_span(text: str) -> list[float] | None:
    """A span written inside prose: :func:`parse_span` on the whole text first, else the last
    ``<time> [s] (-|to|and|until) <time>`` in it (``The event happens from 6 to 2 seconds.`` ->
    [6.0, 2.0]; the order is kept, so a swapped span stays visible to the caller).

    >>> find_span("It happens between 4 and 9 seconds."), find_span("From 0:05 to 1:02.")
    ([4.0, 9.0], [5.0, 62.0])
    """
    whole = parse_span(text)
    if whole is not None:
        return whole
    last = None
    for m in _SPAN_IN_TEXT_RE.finditer(text):
        last = m
    if last is None:
        return None
    vals = [parse_time_s(last.group(1)), parse_time_s(last.group(2))]
    return None if any(v is None for v in vals) else vals


def parse_box(text: str) -> list[float] | None:
    """Four numbers ``x1, y1, x2, y2`` in ``[...]``, ``(...)`` or bare, or ``[[...]]``; else None.

    >>> parse_box("[10, 20, 30, 40]"), parse_box("(10,20,30,40)"), parse_box("[[1, 2, 3, 4]]")
    ([10.0, 20.0, 30.0, 40.0], [10.0, 20.0, 30.0, 40.0], [1.0, 2.0, 3.0, 4.0])
    """
    s = text.strip()
    if s.startswith("[[") and s.endswith("]]"):
        s = s[1:-1].strip()
    m = _BOX_RE.fullmatch(s)
    return _floats(m.groups()) if m else None


def _floats(groups: tuple[str, ...]) -> list[float] | None:
    vals = [float(g) for g in groups]
    return vals if all(math.isfinite(v) for v in vals) else None


def _item_id(item: dict) -> str:
    return str(item.get("id", item.get("item_id", "<no id>")))


def n_options_of(item: dict) -> int:
    """Number of options of an MCQ item.

    Raises:
        DataError: options missing, not a list, or more than 10 (names the item id).
    """
    opts = item.get("options")
    if not isinstance(opts, list) or not 1 <= len(opts) <= len(OPTION_LETTERS):
        raise DataError(
            f"item {_item_id(item)}: mcq needs a list of 1..{len(OPTION_LETTERS)} options, "
            f"got {opts!r}"
        )
    return len(opts)


def duration_of(item: dict) -> float:
    """``duration_s`` of a temporal item (seconds).

    Raises:
        DataError: missing, non-numeric, non-finite or non-positive (names the item id).
    """
    d = item.get("duration_s")
    if isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d) or d <= 0:
        raise DataError(f"item {_item_id(item)}: temporal needs a positive duration_s, got {d!r}")
    return float(d)


def check_task(answer_text: str, item: dict, open_max_words: int = 64) -> TaskCheck:
    """R_task: does the extracted answer have the task's answer format (paper section 3.7)?

    ========= ======================================================= ==========================
    task_type rule                                                    parsed
    ========= ======================================================= ==========================
    mcq       :func:`extract_mcq_letter` finds one allowed letter       ``"B"``
    numeric   :func:`parse_number` gives a finite number              float
    ocr       non-empty after stripping                                stripped string
    temporal  :func:`parse_span` (seconds, mm:ss, JSON), then          ``[s, e]`` floats
              ``0 <= s < e <= duration_s + 1e-6``
    spatial   :func:`parse_box`, ``x1 < x2``, ``y1 < y2``, all in       list of 4 floats
              ``[0, 1000]``
    open      non-empty, at most ``open_max_words`` words             stripped string
    ========= ======================================================= ==========================

    >>> check_task("[1.0, 3.0]", {"id": "x", "task_type": "temporal", "duration_s": 5})
    TaskCheck(valid=True, parsed=[1.0, 3.0], reason=None)

    Args:
        answer_text: text inside the answer tags.
        item: the item (needs ``task_type``; ``options`` for mcq; ``duration_s`` for temporal).
        open_max_words: word limit of open-ended answers.

    Returns:
        TaskCheck.

    Raises:
        DataError: the item is malformed (unknown task type, missing options or duration).
    """
    task = item.get("task_type")
    if task not in TASK_TYPES:
        raise DataError(
            f"item {_item_id(item)}: unknown task_type {task!r}; valid: {list(TASK_TYPES)}"
        )
    if not isinstance(answer_text, str):
        return TaskCheck(False, None, "no answer text")
    # full-width digits, letters and brackets (and other compatibility forms) read as ASCII
    s = unicodedata.normalize("NFKC", answer_text).strip()
    if task == "mcq":
        n = n_options_of(item)
        letter = extract_mcq_letter(s, n)
        if letter is None:
            return TaskCheck(False, None, "no single option letter")
        return TaskCheck(True, letter, None)
    if task == "numeric":
        x = parse_number(s)
        return TaskCheck(True, x, None) if x is not None else TaskCheck(False, None, "not a number")
    if task == "ocr":
        return TaskCheck(True, s, None) if s else TaskCheck(False, None, "empty text")
    if task == "temporal":
        duration_s = duration_of(item)
        vals = parse_span(s)
        if vals is None:
            return TaskCheck(False, None, "not a [start, end] pair")
        start, end = vals
        if not start < end:
            return TaskCheck(False, None, "start >= end")
        if start < 0 or end > duration_s + SPAN_TOLERANCE_S:
            return TaskCheck(False, None, "span outside [0, duration_s]")
        return TaskCheck(True, [start, end], None)
    if task == "spatial":
        vals = parse_box(s)
        if vals is None:
            return TaskCheck(False, None, "not a [x1, y1, x2, y2] box")
        x1, y1, x2, y2 = vals
        if not (x1 < x2 and y1 < y2):
            return TaskCheck(False, None, "box with x1 >= x2 or y1 >= y2")
        if min(vals) < 0 or max(vals) > BOX_SCALE:
            return TaskCheck(False, None, "box outside [0, 1000]")
        return TaskCheck(True, vals, None)
    # open
    if not s:
        return TaskCheck(False, None, "empty text")
    if len(s.split()) > open_max_words:
        return TaskCheck(False, None, "too many words")
    return TaskCheck(True, s, None)
