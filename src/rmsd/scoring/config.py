"""Configuration dataclasses of the scoring and selection stage, with strict ``from_dict``.

Every key is documented as an attribute docstring; unknown keys, wrong types and out-of-range values
raise :class:`rmsd.errors.ConfigError` naming the offending key.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from rmsd.errors import ConfigError
from rmsd.tasks import RESPONSE_TEMPLATES

ASSIGNMENTS: tuple[str, ...] = ("per_item", "union")
WEIGHTINGS: tuple[str, ...] = ("quality", "uniform")
SFT_TARGETS_CLOSED: tuple[str, ...] = ("best", "random", "first", "all", "ground_truth")
SFT_TARGETS_OPEN: tuple[str, ...] = ("random", "first", "all", "ground_truth")


def _check_keys(d: Any, allowed: set[str], where: str) -> None:
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(d).__name__}")
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid: {sorted(allowed)}")


def _num(name: str, v: Any, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ConfigError(f"{name}: expected a finite number, got {v!r}")
    if not lo <= v <= hi:
        raise ConfigError(f"{name}: {v!r} outside [{lo}, {hi}]")
    return float(v)


def _int(name: str, v: Any, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{name}: expected an integer, got {v!r}")
    if v < lo:
        raise ConfigError(f"{name}: {v!r} must be >= {lo}")
    return v


def _choice(name: str, v: Any, choices: tuple[str, ...]) -> str:
    if v not in choices:
        raise ConfigError(f"{name}: {v!r} is not one of {list(choices)}")
    return v


@dataclass(frozen=True)
class ScoringConfig:
    """How teacher responses are checked and scored (paper sections 3.4 and 3.7)."""

    template: str = "answer_only"
    """Response template the outer format check enforces: ``answer_only`` or ``think_answer``."""
    numeric_eps: float = 0.05
    """Relative tolerance of numeric epsilon-accuracy for non-integer ground truth (paper section 6
    row 3); absolute tolerance when the ground truth is 0.0. Dimensionless."""
    ocr_threshold: float = 0.5
    """ANLS threshold: similarities below it score 0 (paper section 6 row 3). In [0, 1]."""
    open_max_words: int = 64
    """Maximum number of whitespace-separated words of a valid open-ended answer (paper 3.7)."""

    def validate(self) -> "ScoringConfig":
        """Check every field; returns ``self``. Raises ConfigError naming the bad key."""
        _choice("scoring.template", self.template, RESPONSE_TEMPLATES)
        _num("scoring.numeric_eps", self.numeric_eps, 0.0, math.inf)
        _num("scoring.ocr_threshold", self.ocr_threshold, 0.0, 1.0)
        _int("scoring.open_max_words", self.open_max_words, 1)
        return self

    @classmethod
    def from_dict(cls, d: dict | None) -> "ScoringConfig":
        """Build from a mapping; missing keys take the defaults.

        Raises:
            ConfigError: unknown key, wrong type or out-of-range value (the message names the key).
        """
        d = {} if d is None else d
        _check_keys(d, {f.name for f in dataclasses.fields(cls)}, "scoring")
        return cls(**d).validate()

    def to_dict(self) -> dict:
        """Plain-dict form (for manifests and stats files)."""
        return dataclasses.asdict(self)


def _default_weighting() -> dict[str, str]:
    return {"closed": "quality", "open": "uniform"}


def _default_sft_target() -> dict[str, str]:
    return {"closed": "best", "open": "random"}


@dataclass(frozen=True)
class SelectionConfig:
    """How the scored pool becomes a training pool (paper sections 3.5, 3.6 and 3.8 Stage 1).

    The defaults are the full R-MSD recipe with a single teacher per item.
    """

    teachers: tuple[str, ...]
    """Teacher names whose samples may enter the pool (required, non-empty, no duplicates)."""
    assignment: str = "per_item"
    """``per_item``: each item gets ONE teacher of ``teachers``, picked by a stable hash of
    (item_id, seed), simulating a teacher whose reliability varies across items; ``union``: the pool
    pools all listed teachers."""
    K: int = 4
    """Samples per teacher used: those with sample index ``k < K`` (paper section 3.10, K = 4)."""
    tau: float = 0.3
    """Quality threshold, closed-ended only: responses with ``q < tau`` are dropped (paper 3.5)."""
    format_filter: bool = True
    """Drop responses with ``valid = 0`` for every task type (paper 3.5 "format filtering")."""
    weighting: dict = field(default_factory=_default_weighting)
    """Matching distribution per task family: ``{"closed": "quality"|"uniform",
    "open": "uniform"|"quality"}``; quality means ``p_k = q_k / sum(q)`` over the kept pool. For
    open-ended items q is only the validity flag, so open ``quality`` weights by ``valid x ROUGE-L``
    against the reference instead (the "GT-quality weighting" of paper 5.6's open-ended row)."""
    sft_target: dict = field(default_factory=_default_sft_target)
    """Stage-1 target per family:
    ``{"closed": "best"|"random"|"first"|"ground_truth", "open": "random"|"first"|"ground_truth"}``.
    ``ground_truth`` trains on the rendered ground-truth answer instead of a teacher sample (the
    oracle upper bound); the matching pool is still built from the teachers."""

    def validate(self) -> "SelectionConfig":
        """Check every field; returns ``self``. Raises ConfigError naming the bad key."""
        t = self.teachers
        if isinstance(t, str) or not isinstance(t, (list, tuple)) or not t:
            raise ConfigError(f"selection.teachers: expected a non-empty list of names, got {t!r}")
        if not all(isinstance(x, str) and x for x in t):
            raise ConfigError(
                f"selection.teachers: every name must be a non-empty string, got {t!r}"
            )
        if len(set(t)) != len(t):
            raise ConfigError(f"selection.teachers: duplicate names in {list(t)}")
        _choice("selection.assignment", self.assignment, ASSIGNMENTS)
        _int("selection.K", self.K, 1)
        _num("selection.tau", self.tau, 0.0, 1.0)
        if not isinstance(self.format_filter, bool):
            raise ConfigError(
                f"selection.format_filter: expected true/false, got {self.format_filter!r}"
            )
        _check_keys(self.weighting, {"closed", "open"}, "selection.weighting")
        _check_keys(self.sft_target, {"closed", "open"}, "selection.sft_target")
        for fam in ("closed", "open"):
            if fam not in self.weighting or fam not in self.sft_target:
                raise ConfigError(f"selection: weighting and sft_target need a {fam!r} entry")
            _choice(f"selection.weighting.{fam}", self.weighting[fam], WEIGHTINGS)
        _choice("selection.sft_target.closed", self.sft_target["closed"], SFT_TARGETS_CLOSED)
        _choice("selection.sft_target.open", self.sft_target["open"], SFT_TARGETS_OPEN)
        return self

    @classmethod
    def from_dict(cls, d: dict) -> "SelectionConfig":
        """Build from a mapping; ``teachers`` is required, other keys take the defaults.

        ``weighting`` and ``sft_target`` may be given partially (e.g. ``{"closed": "uniform"}``);
        the missing family keeps its default.

        Raises:
            ConfigError: missing ``teachers``, unknown key (also inside the nested mappings), wrong
                type or out-of-range value; the message names the key.
        """
        _check_keys(d, {f.name for f in dataclasses.fields(cls)}, "selection")
        if "teachers" not in d:
            raise ConfigError("selection.teachers: required key is missing")
        kw = dict(d)
        t = kw["teachers"]
        kw["teachers"] = tuple(t) if isinstance(t, list) else t
        defaults = (("weighting", _default_weighting), ("sft_target", _default_sft_target))
        for name, default in defaults:
            if name in kw:
                _check_keys(kw[name], {"closed", "open"}, f"selection.{name}")
                kw[name] = {**default(), **kw[name]}
        return cls(**kw).validate()

    def to_dict(self) -> dict:
        """Plain-dict form (for manifests and stats files)."""
        out = dataclasses.asdict(self)
        out["teachers"] = list(self.teachers)
        return out
