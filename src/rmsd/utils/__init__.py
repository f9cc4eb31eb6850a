"""Small shared utilities: seeding, threads, logging, config merging."""

from __future__ import annotations

import copy
import logging
import os
import random
import sys
from collections.abc import Mapping

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch RNGs."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def set_threads(n: int) -> None:
    """Use ``n`` intra-op CPU threads in torch (Snakemake's ``threads``)."""
    import torch

    torch.set_num_threads(max(1, int(n)))


def deep_merge(base: Mapping, override: Mapping) -> dict:
    """Recursively merge ``override`` into a copy of ``base`` (dicts merge, other values replace).

    >>> deep_merge({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"y": 3}})
    {'a': {'x': 1, 'y': 3}, 'b': 1}
    """
    out = copy.deepcopy(dict(base))
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def get_logger(name: str = "rmsd") -> logging.Logger:
    """A logger under ``rmsd``; the ``rmsd`` root writes to stderr (Snakemake's log file)."""
    root = logging.getLogger("rmsd")
    if not root.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(h)
        root.setLevel(os.environ.get("RMSD_LOG_LEVEL", "INFO"))
        root.propagate = False
    return logging.getLogger(name) if name.startswith("rmsd") else root


class log_to:  # noqa: N801  (used as a context manager, like open)
    """Send stdout, stderr and the ``rmsd`` loggers to ``path`` (a rule's ``log:`` file)."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        from pathlib import Path

        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", encoding="utf-8", buffering=1)
        self._old = (sys.stdout, sys.stderr)
        sys.stdout = sys.stderr = self._f
        for h in get_logger().handlers:
            h.setStream(self._f)
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            import traceback

            traceback.print_exception(*exc, file=self._f)
        sys.stdout, sys.stderr = self._old
        for h in get_logger().handlers:
            h.setStream(sys.stderr)
        self._f.close()
        return False
