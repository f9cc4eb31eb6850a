"""Checkpoint-and-exit before the time limit on the real Slurm cluster, through the same chain as the
train_student rule: sbatch --signal=URG@50 (slurm_extra) -> the Slurm executor's batch script ->
jobstep Snakemake -> srun -> Snakemake -> bash -> python. The signal reaches the python process
while every process around it (which ignores SIGURG) lives on; the process exits with status 75;
Snakemake's retry inside the same allocation exits at once (its time is nearly up); Snakemake
resubmits the job, which resumes from the checkpoint. The python process is a stand-in
(preempt_worker.py) using the real rmsd.train.preempt, so the test takes about a minute.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from slurmlib import CI_PROFILE, ROOT, SNAKEMAKE, job_env, slurm_logs

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SNAKEFILE = """\
rule stop:
    output: "done.txt"
    log: "stop.log"
    retries: 1
    resources:
        mem_mb=300,
        runtime=lambda wc, attempt: attempt,   # minutes: a 1 min limit, then 2
        slurm_extra="--signal=URG@50",
    shell: "{PY} {WORKER} {output} URG,USR1,TERM > {log} 2>&1"
"""


def test_signal_before_the_limit_checkpoints_and_the_resubmitted_job_resumes(slurm_cluster, tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE.replace("{PY}", sys.executable).replace(
        "{WORKER}", str(Path(__file__).with_name("preempt_worker.py"))))
    (tmp_path / "slurm").symlink_to(ROOT / "slurm")
    env = {**job_env(), "PYTHONPATH": str(ROOT / "src")}
    p = subprocess.run([SNAKEMAKE, "done.txt", "--cores", "all", "--profile", "slurm", "--profile",
                        str(CI_PROFILE)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    out = p.stdout + p.stderr
    trace = (tmp_path / "done.txt.trace").read_text().splitlines() if (tmp_path / "done.txt.trace").exists() else []
    assert p.returncode == 0, "\n".join(trace) + out[-4000:]
    k = int(trace[1].split(" step ")[1].split(" ")[0])
    # the rule's retries restart it inside the allocation (the jobstep Snakemake in the batch script
    # and the one srun starts each retry once): each of those attempts exits at once
    assert trace[:2] == ["start 0", f"stage1: stopped at step {k} on SIGURG: checkpoint written, resubmit "
                                    f"to resume ({Path('done.txt.tmp') / 'checkpoint'})"], trace
    assert 1 <= len(trace[2:-1]) <= 2 and set(trace[2:-1]) == {"same-allocation retry: exit"}, trace
    assert trace[-1] == f"start {k}", trace
    assert (tmp_path / "done.txt").read_text() == f"resumed at step {k}\n"
    jobs = sorted(slurm_logs(tmp_path)["stop"], key=lambda j: int(j[0]))
    assert len(jobs) == 2, jobs  # the first stopped, the resubmitted one resumed
    first = jobs[0][1].read_text()
    # the step's task (Snakemake) ended with the rule's failure, not killed by the signal
    assert "srun: error: localhost: task 0: Exited with exit code 1" in first, first[-3000:]
