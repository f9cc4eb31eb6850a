"""Checkpoint and exit on a signal, so a job stopped before its time limit resumes when resubmitted.

``python -m rmsd.train --stop-signals USR1,TERM`` (the default) installs :func:`install`'s handlers:
they only record the first signal received. The step loops of both stages call :func:`poll` after
every optimizer step; it returns the signal's name on every rank as soon as any rank got one
(under ``torch.distributed`` the flag is all-reduced, so every rank stops after the same step). The
loop then writes a step checkpoint through the existing checkpoint code and calls :func:`stop`,
which raises :class:`Preempted`; the entry point logs
``stage1: stopped at step N on SIGUSR1: checkpoint written, resubmit to resume (...)`` and exits with
:data:`EXIT_PREEMPTED`. A rerun with the same ``--out`` resumes from that checkpoint.

On Slurm the signal comes from ``sbatch --signal=SIG@SECONDS`` (resources.train_student.
preempt_signal / preempt_seconds; slurm/README.md explains why the workflow sends SIGURG there).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from rmsd.errors import ConfigError
from rmsd.utils import get_logger

if TYPE_CHECKING:
    from rmsd.train.dist import Runtime

log = get_logger(__name__)

EXIT_PREEMPTED = 75
"""Exit status after a checkpoint-and-exit (sysexits.h EX_TEMPFAIL: a temporary failure, retry)."""
DEFAULT_SIGNALS = "USR1,TERM"

_received: int = 0
"""Number of the first stop signal received by this process (0: none)."""
_installed: bool = False


class Preempted(Exception):
    """Training stopped on a signal after writing a checkpoint.

    Attributes:
        stage: the stage that stopped ("stage1", "stage2").
        step: steps of that stage done (the checkpoint resumes at this step).
        signal_name: e.g. "SIGUSR1".
        checkpoint: the checkpoint directory written, or None (no checkpointer).
    """

    def __init__(self, stage: str, step: int, signal_name: str, checkpoint: Path | None):
        self.stage, self.step, self.signal_name, self.checkpoint = stage, step, signal_name, checkpoint
        what = (f"checkpoint written, resubmit to resume ({checkpoint})" if checkpoint is not None
                else "no checkpoint (this run has no checkpointer)")
        super().__init__(f"{stage}: stopped at step {step} on {signal_name}: {what}")


def parse_signals(text: str | None) -> list[signal.Signals]:
    """``"USR1,TERM"`` (names with or without ``SIG``, or numbers) -> signals; ``""``/``"none"`` -> [].

    Raises:
        ConfigError: an unknown name, or SIGKILL/SIGSTOP (cannot be caught).
    """
    out = []
    for part in (text or "").split(","):
        name = part.strip().upper()
        if not name or name == "NONE":
            continue
        try:
            sig = signal.Signals(int(name)) if name.isdigit() else signal.Signals[
                name if name.startswith("SIG") else "SIG" + name]
        except (KeyError, ValueError):
            raise ConfigError(f"--stop-signals: unknown signal {part.strip()!r} (e.g. USR1, TERM, URG)") from None
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            raise ConfigError(f"--stop-signals: {sig.name} cannot be caught")
        if sig not in out:
            out.append(sig)
    return out


def _handler(signum, frame) -> None:  # only sets the flag: the step loop does the rest
    global _received
    if not _received:
        _received = signum


def install(signals: list[signal.Signals]) -> None:
    """Make each of ``signals`` set the stop flag instead of its default action (main thread only).

    Every rank of a launch must call it with the same list (or none call it): :func:`poll` is a
    collective exactly when it was called.
    """
    global _installed
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("stop-signal handlers can only be installed from the main thread")
    for sig in signals:
        signal.signal(sig, _handler)
    _installed = bool(signals)
    if signals:
        log.info("checkpoint-and-exit on %s", ", ".join(s.name for s in signals))


def reset() -> None:
    """Forget a received signal and the installed state (tests; handlers stay in place)."""
    global _received, _installed
    _received, _installed = 0, False


def received() -> str | None:
    """This process's first stop signal (name), or None."""
    return signal.Signals(_received).name if _received else None


def poll(rt: "Runtime") -> str | None:
    """The stop signal's name when any rank received one, else None; the same on every rank.

    Collective under ``torch.distributed`` when handlers are installed (one all-reduce of one
    number: every rank must call it after the same step); free otherwise.
    """
    if not _installed:
        return None
    if not rt.distributed:
        return received()
    import torch

    dev = rt.device if rt.backend == "nccl" else torch.device("cpu")
    t = torch.tensor([float(_received)], dtype=torch.float64, device=dev)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    num = int(t.item())
    return signal.Signals(num).name if num else None


MARKER = "stopped_on_signal.json"


def slurm_run_id() -> str | None:
    """``<SLURM_JOB_ID>.<restarts>`` of the Slurm job this process runs in, None outside Slurm or
    when the restart count cannot be read.

    A requeued job (``sbatch --requeue``, ``scontrol requeue``) keeps its id; its restart count,
    read from ``scontrol show job`` (``SLURM_RESTART_COUNT`` is not passed to every job step),
    tells it apart from the run that stopped.
    """
    import os
    import re
    import subprocess

    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return None
    try:
        p = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"\bRestarts=(\d+)", p.stdout)
    return f"{job}.{m.group(1)}" if p.returncode == 0 and m else None


def mark_stopped(out_dir: str | Path, e: Preempted) -> None:
    """Record the stop in ``<out>.tmp/stopped_on_signal.json`` with this Slurm run's id (rank 0)."""
    import json

    tmp = Path(str(out_dir) + ".tmp")
    if tmp.is_dir():
        (tmp / MARKER).write_text(json.dumps({"slurm_run": slurm_run_id(), "stage": e.stage, "step": e.step,
                                              "signal": e.signal_name}))


def stopped_in_this_job(out_dir: str | Path) -> str | None:
    """Why not to train now: this Slurm job (same id and restart count) already stopped on a signal.

    Snakemake's ``retries`` also restart a failed job inside the same allocation; that attempt would
    have only what is left of the limit (less than the signal's lead) and no signal before it, so it
    exits at once and the job fails and is resubmitted. None outside Slurm, in another job, in the
    same job requeued, or after a SIGTERM stop (Slurm's requeue, preemption or cancel: the job ends
    or comes back as a new run, so a later start in it resumes).
    """
    import json

    p = Path(str(out_dir) + ".tmp") / MARKER
    if not p.exists():
        return None
    try:
        m = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    run = m.get("slurm_run")
    if m.get("signal") == "SIGTERM" or not run or run != slurm_run_id():
        return None
    return (f"Slurm job {run.split('.')[0]} already stopped on {m.get('signal')} ({m.get('stage')} step "
            f"{m.get('step')}, checkpoint in {p.parent}): not resuming inside the same allocation; "
            "resubmit to resume")


def stop(stage: str, step: int, signal_name: str, checkpoint: Path | None) -> None:
    """Raise :class:`Preempted` (called by the step loops after the checkpoint is written)."""
    raise Preempted(stage, step, signal_name, checkpoint)
