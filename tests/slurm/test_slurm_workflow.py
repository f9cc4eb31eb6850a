"""The workflow test config on a real Slurm cluster through ``--profile slurm``: every job is a Slurm
job (its id recorded by Slurm in the log file name and kept by slurmctld), outputs are complete, the
GPU rule's request reaches Slurm, and a second run has nothing to do.

Target: one trained variant and seed evaluated on the test split (the whole chain data -> frames ->
teachers -> sampling -> scoring -> selection -> training -> evaluation), on a smaller data split,
so it fits in a few minutes on 2 cores; the training job asks for the CI node's (fake) GPU.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from slurmlib import (ROOT, cancel, job_env, make_workspace, scontrol_job, slurm_logs, snakemake_cmd,
                      squeue_all, submitted, wait_for)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

TARGET = "results/eval/rmsd/seed0/synth-test/metrics.json"
OVERLAY = """\
# Slurm test overlay on tests/workflow/config.yaml: smaller splits, K=2, one sampling shard per
# teacher; the training job asks for the CI node's one (fake, File=/dev/null) GPU, --gpus=1, and
# starts one torchrun process per allocated GPU.
data:
  n_per_task: {train: 20, distill: 6, test: 5}
sampling: {K: 2, shards: 1}
recipe:
  selection: {K: 2}
resources:
  train_student: {gpu: 1, launcher: torchrun}
"""
# Rules that must have run as Slurm jobs for TARGET (the gather rule sample_teacher is local).
SLURM_RULES = {"data_synth", "frames_extract", "models_processor", "models_teacher", "models_student_base",
               "sample_teacher_shard", "score_pool", "score_select", "train_config", "train_student",
               "eval_run"}
RUN_TIMEOUT = 1200


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory):
    """One run of TARGET through `snakemake --cores all --profile slurm --profile tests/slurm/profile`."""
    wd = make_workspace(tmp_path_factory.mktemp("slurm_wf"), OVERLAY)
    t0 = time.monotonic()
    try:
        p = subprocess.run(snakemake_cmd([TARGET]), cwd=wd, env=job_env(), capture_output=True, text=True,
                           timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        cancel({jid for jobs in slurm_logs(wd).values() for jid, _ in jobs})
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise AssertionError(f"Slurm run did not finish in {RUN_TIMEOUT} s:\n{err[-4000:]}")
    seconds = time.monotonic() - t0
    out = p.stdout + p.stderr
    if p.returncode != 0:
        cancel({jid for jobs in slurm_logs(wd).values() for jid, _ in jobs})
        failed = "\n".join(f"--- {log}\n{log.read_text()[-2000:]}"
                           for jobs in slurm_logs(wd).values() for _, log in jobs
                           if "Finished jobid" not in log.read_text())
        raise AssertionError(f"snakemake on Slurm failed (rc {p.returncode}):\n{out[-5000:]}\n{failed}")
    print(f"\nSlurm workflow run: {seconds:.1f} s, {len(submitted(out))} Slurm jobs")
    return SimpleNamespace(wd=wd, out=out, seconds=seconds)


def test_outputs_complete(slurm_run):
    wd = slurm_run.wd
    cfg = yaml.safe_load((wd / "test.yaml").read_text())
    metrics = json.loads((wd / TARGET).read_text())
    assert metrics["n_items"] == 5 * len(cfg["data"]["tasks"])
    model = wd / "results/models/rmsd/seed0"
    assert list(model.glob("*.safetensors")), sorted(p.name for p in model.iterdir())
    assert "1 of 1 steps" not in slurm_run.out  # the main process ran the whole DAG, not one job
    assert re.search(r"(\d+) of \1 steps \(100%\) done", slurm_run.out), slurm_run.out[-2000:]


def test_every_job_ran_inside_slurm(slurm_run):
    wd, out = slurm_run.wd, slurm_run.out
    logs = slurm_logs(wd)
    assert SLURM_RULES <= set(logs), (sorted(SLURM_RULES - set(logs)), sorted(logs))
    ids = {jid for jobs in logs.values() for jid, _ in jobs}
    # every submission Snakemake reports has its log named by Slurm's %j, and nothing else ran
    assert ids == set(submitted(out)), (sorted(ids), submitted(out))
    queue = squeue_all()
    run_names = {queue[jid]["name"] for jid in ids if jid in queue}
    assert len(run_names) == 1, run_names  # one Snakemake run (its uuid is the Slurm job name)
    for rule, jobs in logs.items():
        for jid, log in jobs:
            assert jid in queue, f"slurmctld does not know job {jid} ({rule})"
            assert queue[jid]["state"] == "COMPLETED", (rule, jid, queue[jid])
            assert queue[jid]["comment"].startswith(f"rule_{rule}"), (rule, jid, queue[jid])
            text = log.read_text()
            # the Snakemake inside the Slurm job ran exactly this rule and finished it
            assert "--executor slurm-jobstep" in text and "--mode remote" in text, (rule, text[:1500])
            assert re.search(rf"Finished jobid: \d+ \(Rule: {rule}\)", text), (rule, text[-1500:])


def test_gpu_request_reaches_slurm(slurm_run):
    logs = slurm_logs(slurm_run.wd)
    (train_id, train_log), = logs["train_student"]
    # the launcher ran inside the job with one process per allocated GPU
    assert "torchrun --standalone --nproc-per-node=1 -m rmsd.train" in train_log.read_text()
    summary = json.loads((slurm_run.wd / "results/models/rmsd/seed0/summary.json").read_text())
    assert summary.get("world_size", 1) == 1, summary
    train = scontrol_job(train_id)
    assert "gpu:1" in train.get("TresPerJob", "") + train.get("TresPerNode", ""), train
    data_id = logs["data_synth"][0][0]
    data = scontrol_job(data_id)
    assert "gpu" not in data.get("TresPerJob", "") + data.get("TresPerNode", ""), data
    # resources from config: 1 CPU, 1000 MB, 10 minutes for the training job
    assert train["NumCPUs"] == "1" and train["TimeLimit"] == "00:10:00", train
    assert train.get("MinMemoryNode") == "1000M", train


def test_second_run_has_nothing_to_do(slurm_run):
    p = subprocess.run(snakemake_cmd([TARGET], "-n"), cwd=slurm_run.wd, env=job_env(), capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    assert "Nothing to be done" in p.stdout + p.stderr, (p.stdout + p.stderr)[-3000:]


def test_profile_is_at_repo_root():
    """`--profile slurm` searches ./slurm, never profiles/slurm (environment notes, Part B)."""
    prof = yaml.safe_load((ROOT / "slurm" / "config.yaml").read_text())
    assert prof["executor"] == "slurm" and prof["jobs"] >= 1
    assert {"mem_mb", "runtime"} <= set(prof["default-resources"])
    ci = yaml.safe_load((ROOT / "tests" / "slurm" / "profile" / "config.yaml").read_text())
    assert ci["slurm-status-command"] == "squeue"
    conf = (ROOT / ".ci" / "slurm" / "slurm.conf").read_text()
    min_job_age = int(re.search(r"^MinJobAge=(\d+)", conf, re.M).group(1))
    assert min_job_age >= 3 * ci["slurm-init-seconds-before-status-checks"]


def _checkpoint(tmp: Path):
    """A finished training checkpoint under <out>.tmp/checkpoints (step_N or stage1_final)."""
    root = tmp / "checkpoints"
    if not root.is_dir():
        return None
    done = [p for p in root.iterdir() if re.fullmatch(r"step_\d+|stage1_final", p.name)]
    return sorted(done)[-1] if done else None


def test_requeued_training_job_resumes_from_its_checkpoint(slurm_run):
    """Preemption: `scontrol requeue` kills the running training job and queues it again under the
    same job id (sbatch --requeue from the profile's slurm-requeue); the restarted job continues from
    the last checkpoint in <out>.tmp/checkpoints instead of starting over, and Snakemake, polling
    squeue, simply waits for it."""
    wd = slurm_run.wd
    # longer than the test config's training, with an early checkpoint: the job is requeued after
    # the first one (step 5 of 40 Stage-1 steps) while plenty of training is left
    recipe = {"stage1": {"sft": {"steps": 40, "checkpoint_every": 5}},
              "stage2": {"rl": {"steps": 6, "checkpoint_every": 2}}}
    (wd / "requeue.yaml").write_text(yaml.safe_dump({"recipe": recipe}))
    before = {jid for jid, _ in slurm_logs(wd).get("train_student", [])}
    out_dir = wd / "results/models/rmsd/seed0"
    cmd = snakemake_cmd(["results/models/rmsd/seed0"],
                        configfiles=("test.yaml", "slurm.yaml", "requeue.yaml"))
    t0 = time.monotonic()
    log = wd / "requeue_run.log"
    proc = subprocess.Popen(cmd, cwd=wd, env=job_env(), stdout=log.open("w"), stderr=subprocess.STDOUT)
    jid = None
    try:
        def new_train_job():
            ids = {j for j, _ in slurm_logs(wd).get("train_student", [])} - before
            assert proc.poll() is None, f"snakemake ended before training started:\n{log.read_text()[-3000:]}"
            return ids.pop() if ids else None

        jid = wait_for(new_train_job, 600, "the training job to be submitted")
        ckpt = wait_for(lambda: _checkpoint(Path(str(out_dir) + ".tmp")), 600, "a training checkpoint")
        assert squeue_all()[jid]["state"] == "RUNNING", squeue_all()[jid]
        subprocess.run(["scontrol", "requeue", jid], check=True, capture_output=True, text=True)
        # A requeued job waits ~2 min (Slurm's BeginTime) before it may start again; skip the wait.
        wait_for(lambda: squeue_all()[jid]["state"] == "PENDING", 120, f"job {jid} to be pending again")
        subprocess.run(["scontrol", "update", f"JobId={jid}", "StartTime=now"], check=True,
                       capture_output=True, text=True)
        proc.wait(timeout=900)
    except BaseException:
        proc.kill()
        cancel({jid} if jid else set())
        raise
    out = log.read_text()
    print(f"\nrequeue run: {time.monotonic() - t0:.1f} s, requeued job {jid} after checkpoint {ckpt.name}")
    assert proc.returncode == 0, out[-5000:]
    job = scontrol_job(jid)
    assert job["Requeue"] == "1" and job["Restarts"] == "1", job  # sbatch --requeue; ran twice
    assert job["JobState"] == "COMPLETED", job
    # the same Slurm job (id) finished it: Snakemake submitted the training job once
    train_submissions = [j for j, path in submitted(out).items() if "/rule_train_student/" in path]
    assert train_submissions == [jid], (train_submissions, jid)
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary.get("resumed_from"), summary  # continued from a checkpoint, not from step 0
    assert list(out_dir.glob("*.safetensors")) and not Path(str(out_dir) + ".tmp").exists()
