"""What a training stage shares with the run around it: process layout, logs, checkpoints, resume.

:class:`StepLogger` writes one JSON line per step to ``train_log.jsonl`` and the numeric fields to
TensorBoard (``<out>/tb/``), on rank 0 only. :class:`TrainContext` carries it together with the
:class:`~rmsd.train.checkpoint.Checkpointer`, the checkpoint being resumed (if any) and the step
numbering over both stages. ``STEP_HOOKS`` are called after every finished step (tests use them to
interrupt a run at a known point).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from rmsd.train.checkpoint import Checkpoint, Checkpointer
from rmsd.train.dist import Runtime
from rmsd.utils import get_logger

log = get_logger(__name__)

STEP_HOOKS: list[Callable[[str, int], None]] = []
"""Functions ``(stage, step)`` called on every rank after each finished step (and its checkpoint)."""


def run_step_hooks(stage: str, step: int) -> None:
    for fn in list(STEP_HOOKS):
        fn(stage, step)


def _plain(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class StepLogger:
    """Per-step records: JSONL (always, rank 0) and TensorBoard scalars (rank 0, when ``tb_dir``).

    Args:
        log_path: JSONL file (appended to; truncated to ``truncate_to`` bytes first when resuming).
        tb_dir: TensorBoard directory or None.
        rt: process layout (other ranks write nothing).
        truncate_to: byte length of the log at the checkpoint being resumed (drops records of steps
            that will be redone).
        purge_step: TensorBoard events at or after this global step are dropped (resume).
    """

    def __init__(self, log_path: Path | None, tb_dir: Path | None = None, rt: Runtime | None = None,
                 truncate_to: int | None = None, purge_step: int | None = None):
        self.enabled = log_path is not None and (rt is None or rt.is_main)
        self.log_path = Path(log_path) if log_path is not None else None
        self._f = None
        self._tb = None
        if not self.enabled:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if truncate_to is not None and self.log_path.exists():
            with open(self.log_path, "r+b") as f:
                f.truncate(truncate_to)
        self._f = open(self.log_path, "a", encoding="utf-8")
        if tb_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(tb_dir), purge_step=purge_step, flush_secs=30)
            except ImportError as e:  # tensorboard is a dependency; say so if it is missing
                log.warning("TensorBoard logging off: %s", e)

    def write(self, rec: dict, global_step: int | None = None, tb_prefix: str | None = None) -> None:
        """Append ``rec`` as a JSON line; numeric fields go to TensorBoard as ``<prefix>/<key>``."""
        if not self.enabled:
            return
        rec = {k: _plain(v) for k, v in rec.items()}
        self._f.write(json.dumps(rec) + "\n")
        self._f.flush()
        if self._tb is not None and global_step is not None:
            prefix = tb_prefix or str(rec.get("stage", "train"))
            for k, v in rec.items():
                if k in ("step", "global_step", "seconds") or isinstance(v, bool):
                    continue
                if isinstance(v, (int, float)):
                    self._tb.add_scalar(f"{prefix}/{k}", v, global_step)

    def offset(self) -> int:
        """Bytes written so far (the position a checkpoint records)."""
        if not self.enabled:
            return 0
        self._f.flush()
        return os.path.getsize(self.log_path)

    def close(self) -> None:
        if self._f is not None:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
            self._f = None
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None


@dataclass
class TrainContext:
    """Shared by both stages of one run.

    ``global_offset`` is the number of iterations before the current stage (Stage 1's steps when
    Stage 2 runs), so checkpoint names and TensorBoard steps count over the whole run.
    """

    rt: Runtime
    logger: StepLogger
    checkpointer: Checkpointer | None = None
    resume: Checkpoint | None = None
    global_offset: int = 0
    base_state: dict = field(default_factory=dict)
    """Extra JSON state to store in each checkpoint (summaries of finished stages)."""
    engines: dict = field(default_factory=dict)
    """Filled by the stage: name -> Engine, so the caller can save the trained weights."""

    def resume_for(self, stage: str) -> Checkpoint | None:
        """The checkpoint to resume if it belongs to ``stage``."""
        if self.resume is not None and self.resume.stage == stage:
            return self.resume
        return None
