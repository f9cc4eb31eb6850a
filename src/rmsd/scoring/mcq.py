"""The MCQ option-letter extractor shared by pool scoring and benchmark evaluation.

Model output is data: it is only matched with linear-time regular expressions and string scans, and
:func:`extract_mcq_letter` never raises on any text. See benchmarks.md section 2.9 for why the
extractor must be deterministic, prefer an explicit final answer, and never guess.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from rmsd.tasks import OPTION_LETTERS

__all__ = ["extract_mcq_letter"]
_TAG_RE = re.compile(r"<(/?)(think|answer)>", re.IGNORECASE)
_LOWER_END_RE = re.compile(r"\s*(?:[.,;:!?)\]]|$)")
_WORD_NEXT_RE = re.compile(r"\s+[a-z]")
_MARKUP_RE = re.compile(r"</?[A-Za-z][A-Za-z0-9_-]{0,20}(?:\s[^<>]{0,200})?/?>")
_EMPHASIS_RE = re.compile(r"[*_`]+")
_PHRASE = r"(?:final\s+answer|answer|correct\s+(?:option|choice)|best\s+(?:option|choice))"


@functools.lru_cache(maxsize=8)
def _letter_res(top: str) -> tuple[re.Pattern, re.Pattern, re.Pattern, re.Pattern, re.Pattern]:
    """The letter patterns for options ``A..top`` (``top`` is at least ``J``, so that questions
    with up to ten options read exactly as before; Video-MMMU has questions with up to 14)."""
    lo = top.lower()
    cls = f"A-{top}a-{lo}"
    whole = re.compile(rf"(?i:(?:option|choice)\s*)?[(\[]?([{cls}])[)\]]?\s*[.:)]?")
    leading = re.compile(rf"(?:[(\[]([{cls}])[)\]]|([{cls}])[.):])(?=\s*\S)")
    explicit = re.compile(
        rf"(?i:\b({_PHRASE})\b)"
        r"(?:\s*(?i:is|would\s+be|should\s+be|:|=|-))*\s*"
        r"(?i:(?:option|choice)\s*)?"
        rf"([(\[])?([{cls}])(?![A-Za-z0-9'\-])"
    )
    alternative = re.compile(
        rf"\s*(?:,|/|&|(?i:or|and)\b)\s*[(\[]?[A-{top}](?![A-Za-z0-9'\-])"
    )
    standalone = re.compile(rf"(?<![A-Za-z0-9'\-])([(\[])?([A-{top}])(?![A-Za-z0-9'\-])")
    return whole, leading, explicit, alternative, standalone


def _tag_blocks(text: str, name: str) -> list[tuple[int, int, int, int]]:
    """``<name>...</name>`` blocks, case-insensitive, leftmost opening tag with the nearest closing
    tag, like a non-greedy regex but in linear time.

    Returns:
        ``(inner_start, inner_end, block_start, block_end)`` per block.
    """
    out, pending = [], None
    for m in _TAG_RE.finditer(text):
        if m.group(2).lower() != name:
            continue
        if not m.group(1):
            if pending is None:
                pending = m
        elif pending is not None:
            out.append((pending.end(), m.start(), pending.start(), m.end()))
            pending = None
    return out


def _explicit_letters(s: str, top: str) -> tuple[list[str], list[str]]:
    """Letters after answer phrases, split into (after "final answer", after other phrases)."""
    final, other = [], []
    _, _, explicit, alternative, _ = _letter_res(top)
    for m in explicit.finditer(s):
        phrase, bracket, letter = m.group(1), m.group(2), m.group(3)
        if letter.islower() and not bracket:
            # "the answer is a circle": a lowercase bare letter counts only before punctuation/end.
            if not _LOWER_END_RE.match(s, m.end()):
                continue
        tier = final if phrase.lower().startswith("final") else other
        tier.append(letter.upper())
        if alternative.match(s, m.end()):
            tier.append("?")  # "the answer is A or B": ambiguous by construction
    return final, other


def _standalone_letters(s: str, top: str) -> list[str]:
    """Uppercase single-letter tokens; the pronoun "I" before a lowercase word is skipped."""
    out = []
    for m in _letter_res(top)[4].finditer(s):
        letter = m.group(2)
        if letter == "I" and not m.group(1) and _WORD_NEXT_RE.match(s, m.end()):
            continue
        out.append(letter)
    return out


def _decide(letters: list[str], allowed: str) -> tuple[bool, str | None]:
    """(decided, letter): decided when the tier had candidates; letter None when ambiguous."""
    distinct = set(letters)
    if not distinct:
        return False, None
    if len(distinct) == 1:
        (letter,) = distinct
        return True, letter if letter in allowed else None
    return True, None


def _extract_plain(s: str, allowed: str) -> str | None:
    top = max("J", allowed[-1])
    whole, leading = _letter_res(top)[:2]
    # NFKC: full-width letters and brackets ("（Ｂ）") read as their ASCII forms.
    s = unicodedata.normalize("NFKC", s)
    s = _EMPHASIS_RE.sub("", _MARKUP_RE.sub(" ", s))
    s = " ".join(s.split())
    if not s:
        return None
    m = whole.fullmatch(s)
    if m:
        return _decide([m.group(1).upper()], allowed)[1]
    final, other = _explicit_letters(s, top)
    for tier in (final, other):
        decided, letter = _decide(tier, allowed)
        if decided:
            return letter
    m = leading.match(s)
    if m:
        return _decide([(m.group(1) or m.group(2)).upper()], allowed)[1]
    return _decide(_standalone_letters(s, top), allowed)[1]


def extract_mcq_letter(text: str, n_options: int) -> str | None:
    """Extract the chosen option letter from a response; shared by scoring and evaluation.

    Deterministic and conservative: it returns None rather than guess (benchmarks.md section 2.9:
    prefer an explicit final answer over letters mentioned in passing; never fall back to a random
    or default letter). Rules, in order:

    1. If the text has ``<answer>...</answer>`` blocks, only their contents are read (each block by
       rules 2-6); different letters across blocks -> None. Otherwise ``<think>...</think>``
       blocks are removed, text before a lone ``</think>`` and after a lone ``<think>`` (unfinished
       reasoning) is dropped, and the rest is read.
    2. Markup tags (``<b>``, ``</answer>``...) become spaces; markdown ``*``, ``_``, backticks are
       removed; whitespace is collapsed.
    3. Whole string is a letter: ``B``, ``b``, ``B.``, ``(B)``, ``[B]``, ``B)``, ``Option B``.
    4. Explicit answer phrases, "final answer" first, then "answer", "correct option/choice",
       "best option/choice", followed by optional ``is``/``:``/``=``/"would be" and the letter
       (``Answer: B``, ``The answer is (B)``). A lowercase letter counts only when bracketed or
       followed by punctuation or the end ("the answer is a circle" is not A). All letters of the
       highest tier that has any must agree, else None; a letter followed by an alternative
       (``, C``, ``/ C``, ``or C``, ``and C``) makes the tier ambiguous.
    5. A leading letter with a marker followed by option text: ``B. circle``, ``B) circle``,
       ``(B) circle``.
    6. Otherwise every standalone uppercase letter A-J (not part of a word; the pronoun ``I``
       before a lowercase word is skipped) is a candidate; exactly one distinct letter is needed
       ("A or B" -> None, "I think C... no, D" -> None). An article "A" counts as a candidate,
       so "A circle, so B" -> None (conservative).

    At every step a unique letter outside ``A..(n_options)`` gives None. Option *texts* are not
    matched against the options.

    >>> [extract_mcq_letter(t, 4) for t in ["(B)", "The answer is C.", "B) circle", "A or B", "E"]]
    ['B', 'C', 'B', None, None]

    Args:
        text: response text (any content; never raises on it).
        n_options: number of options; letters ``A`` .. ``OPTION_LETTERS[n_options - 1]`` are
            allowed.

    Returns:
        An uppercase letter or None.

    Raises:
        ValueError: ``n_options`` not in 1..len(OPTION_LETTERS).
    """
    if isinstance(n_options, bool) or not isinstance(n_options, int) or not (
        1 <= n_options <= len(OPTION_LETTERS)
    ):
        raise ValueError(
            f"n_options must be an integer in 1..{len(OPTION_LETTERS)}, got {n_options!r}"
        )
    if not isinstance(text, str):
        return None
    allowed = OPTION_LETTERS[:n_options]
    blocks = _tag_blocks(text, "answer")
    if blocks:
        letters = [_extract_plain(text[a:b], allowed) for a, b, _, _ in blocks]
        found = {x for x in letters if x is not None}
        return found.pop() if len(found) == 1 else None
    kept, pos = [], 0
    for _, _, start, end in _tag_blocks(text, "think"):
        kept.append(text[pos:start])
        pos = end
    s = " ".join(kept + [text[pos:]])
    # Unpaired think tags left over: read after the last lone "</think>" (its opening tag is
    # missing) and stop at a later lone "<think>" (unfinished reasoning is not an answer).
    start, end = 0, len(s)
    for m in _TAG_RE.finditer(s):
        if m.group(2).lower() == "think" and m.group(1):
            start, end = m.end(), len(s)
        elif m.group(2).lower() == "think" and end == len(s):
            end = m.start()
    s = s[start:end]
    return _extract_plain(s, allowed)
