"""The teacher interface and backend registry.

A backend turns (items, frames) into K sampled responses per item. Only text leaves the teacher
(black-box distillation, paper section 1.1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Protocol

import numpy as np

from rmsd.errors import ConfigError


@dataclass(frozen=True)
class SamplingParams:
    """Teacher sampling parameters (paper section 3.2 defaults: T 0.7, top-p 0.8, top-k 20)."""

    temperature: float = 0.7
    top_p: float = 0.8
    top_k: int = 20
    """0 disables top-k."""
    max_new_tokens: int = 1024
    """Generation limit in tokens."""
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> "SamplingParams":
        """Strict constructor: unknown keys raise :class:`ConfigError`."""
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(d) - known):
            raise ConfigError(f"unknown sampling key(s) {unknown}; valid: {sorted(known)}")
        return cls(**d)

    def as_dict(self) -> dict:
        return asdict(self)


class TeacherBackend(Protocol):
    """What a backend provides.

    ``generate(items, frames, k, params, seed)`` returns, per item, ``k`` dicts with ``text``,
    ``finish_reason`` ("stop" | "length" | backend-specific) and ``n_tokens`` (generated tokens).
    ``frames`` are uint8 arrays (F, H, W, 3), one per item. The K samples of an item share one
    prefill where the backend supports it.
    """

    name: str

    def generate(self, items: list[dict], frames: list[np.ndarray], k: int, params: SamplingParams,
                 seed: int) -> list[list[dict]]: ...


TEACHER_BACKENDS: dict[str, type] = {}


def register_backend(name: str):
    """Class decorator adding a backend to :data:`TEACHER_BACKENDS` under ``name``."""

    def deco(cls):
        TEACHER_BACKENDS[name] = cls
        cls.name = name
        return cls

    return deco


def get_backend(name: str, **kwargs) -> TeacherBackend:
    """Instantiate the backend ``name``.

    Raises:
        ConfigError: unknown backend; the message lists the valid names.
    """
    from rmsd.teachers import hf  # noqa: F401  (registers the built-in backends)

    if name not in TEACHER_BACKENDS:
        raise ConfigError(f"unknown teacher backend {name!r}; valid: {sorted(TEACHER_BACKENDS)}")
    return TEACHER_BACKENDS[name](**kwargs)
