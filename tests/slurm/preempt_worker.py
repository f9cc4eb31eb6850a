"""A stand-in for ``python -m rmsd.train`` in the Slurm preemption test: one "optimizer step" every
0.2 s, the real stop-signal handling of :mod:`rmsd.train.preempt` (flag, poll, exit 75, the
same-allocation marker), and a one-line "checkpoint". Resuming finishes at once.

usage: python preempt_worker.py OUT SIGNALS   (appends what happens to OUT.trace)
"""

import sys
import time
from pathlib import Path

from rmsd.train import preempt
from rmsd.train.dist import Runtime

out, signals = Path(sys.argv[1]), sys.argv[2]
tmp, trace = Path(str(out) + ".tmp"), Path(str(out) + ".trace")


def note(line: str) -> None:
    with open(trace, "a") as f:
        f.write(line + "\n")


if why := preempt.stopped_in_this_job(out):
    note("same-allocation retry: exit")
    sys.exit(preempt.EXIT_PREEMPTED)
preempt.install(preempt.parse_signals(signals))
tmp.mkdir(exist_ok=True)
ckpt = tmp / "checkpoint"
start = int(ckpt.read_text()) if ckpt.exists() else 0
note(f"start {start}")
if start:
    out.write_text(f"resumed at step {start}\n")
    sys.exit(0)
for step in range(3000):  # 600 s: longer than the test's time limit
    time.sleep(0.2)
    if sig := preempt.poll(Runtime()):
        ckpt.write_text(str(step + 1))
        e = preempt.Preempted("stage1", step + 1, sig, ckpt)
        preempt.mark_stopped(out, e)
        note(str(e))
        sys.exit(preempt.EXIT_PREEMPTED)
note("no signal before the end")
sys.exit(3)
