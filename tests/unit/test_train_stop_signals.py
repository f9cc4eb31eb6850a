"""rmsd.train.preempt: signal names, the flag-only handler, and every rank agreeing to stop."""

from __future__ import annotations

import os
import signal
import socket

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from rmsd.errors import ConfigError
from rmsd.train import preempt
from rmsd.train.__main__ import make_parser
from rmsd.train.dist import Runtime


@pytest.fixture(autouse=True)
def clean_state():
    saved = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGTERM, signal.SIGURG)}
    preempt.reset()
    yield
    preempt.reset()
    for s, h in saved.items():
        signal.signal(s, h)


def test_parse_signals():
    assert preempt.parse_signals("USR1,TERM") == [signal.SIGUSR1, signal.SIGTERM]
    assert preempt.parse_signals(" sigurg , USR1,URG") == [signal.SIGURG, signal.SIGUSR1]
    assert preempt.parse_signals("10") == [signal.Signals(10)]
    assert preempt.parse_signals("none") == preempt.parse_signals("") == []
    with pytest.raises(ConfigError, match="unknown signal 'USR9'"):
        preempt.parse_signals("USR1,USR9")
    with pytest.raises(ConfigError, match="SIGKILL cannot be caught"):
        preempt.parse_signals("KILL")
    assert make_parser().parse_args(["--config", "c", "--out", "o"]).stop_signals == "USR1,TERM"


def test_handler_only_records_the_first_signal():
    rt = Runtime()
    assert preempt.poll(rt) is None  # nothing installed: never stops
    preempt.install(preempt.parse_signals("USR1,TERM"))
    assert preempt.poll(rt) is None
    os.kill(os.getpid(), signal.SIGTERM)  # would end the test process without the handler
    os.kill(os.getpid(), signal.SIGUSR1)
    assert preempt.received() == "SIGTERM" and preempt.poll(rt) == "SIGTERM"


def _rank(rank: int, port: int, q) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    rt = Runtime(rank=rank, world_size=2, backend="gloo")
    preempt.install(preempt.parse_signals("USR1,URG"))
    seen = [preempt.poll(rt)]
    if rank == 1:
        os.kill(os.getpid(), signal.SIGURG)  # only rank 1 gets the signal
    seen.append(preempt.poll(rt))
    q.put((rank, seen))
    dist.destroy_process_group()


def test_every_rank_stops_when_one_rank_got_the_signal():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(r, port, q)) for r in range(2)]
    for p in procs:
        p.start()
    got = dict(q.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert got == {0: [None, "SIGURG"], 1: [None, "SIGURG"]}
    assert [p.exitcode for p in procs] == [0, 0]


def test_same_job_guard_holds_for_the_limit_signal_not_for_sigterm(tmp_path, monkeypatch):
    """A stop on the Slurm limit signal blocks a restart inside the same allocation; a SIGTERM stop
    (scontrol requeue, preemption, cancel) does not: the job comes back as a new run and resumes."""
    import json

    from rmsd.train import preempt

    monkeypatch.setattr(preempt, "slurm_run_id", lambda: "80.0")
    tmp = tmp_path / "m.tmp"
    tmp.mkdir()
    for sig, blocked in (("SIGURG", True), ("SIGUSR1", True), ("SIGTERM", False)):
        (tmp / preempt.MARKER).write_text(json.dumps({"slurm_run": "80.0", "stage": "stage1", "step": 5,
                                                      "signal": sig}))
        why = preempt.stopped_in_this_job(tmp_path / "m")
        assert (why is not None) == blocked, (sig, why)
        if blocked:
            assert why.startswith(f"Slurm job 80 already stopped on {sig} (stage1 step 5")
