"""From config `resources:` to the sbatch line, without a cluster: a dry run of the test config turns
`resources.train_student` into the rule's resources and launch command, and the Slurm executor
plugin's own submit-string builder turns those resources into sbatch options (one node with 8
H100s, 2 nodes x 4 GPUs through srun + torchrun, CPU only)."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest
import yaml
from snakemake_executor_plugin_slurm.submit_string import get_submit_command
from snakemake_executor_plugin_slurm.utils import set_gres_string

from slurmlib import ROOT, SNAKEMAKE, job_env, parse_jobs

CASES = {
    "accelerate-8": {"gpu": 8, "gpu_model": "h100", "cpus": 64, "mem_mb": 491520, "runtime": 2880,
                     "launcher": "accelerate"},
    "multinode": {"gpu": 4, "gpu_model": "h100", "cpus": 32, "mem_mb": 400000, "runtime": 2880,
                  "nodes": 2, "launcher": "torchrun"},
    "deepspeed-cpu": {"gpu": 0, "cpus": 2, "mem_mb": 3000, "runtime": 30, "launcher": "deepspeed"},
}


@pytest.fixture(scope="module")
def train_jobs(tmp_path_factory):
    """case -> the train_student job of a dry run with resources.train_student = CASES[case]."""
    jobs = {}
    for case, res in CASES.items():
        wd = tmp_path_factory.mktemp(case)
        for name in ("Snakefile", "rules", "scripts", "config", "slurm"):
            (wd / name).symlink_to(ROOT / name)
        (wd / "test.yaml").write_text((ROOT / "tests" / "workflow" / "config.yaml").read_text())
        (wd / "res.yaml").write_text(yaml.safe_dump({"resources": {"train_student": res}}))
        p = subprocess.run([SNAKEMAKE, "results/models/rmsd/seed0", "-n", "-p", "--cores", "all",
                            "--profile", "slurm", "--configfile", "test.yaml", "res.yaml"],
                           cwd=wd, env=job_env(), capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
        (job,) = [j for j in parse_jobs(p.stdout + p.stderr) if j["rule"] == "train_student"]
        jobs[case] = job
    return jobs


def sbatch_line(resources: dict) -> str:
    """What the plugin would submit for a job with these (dry-run printed) resources."""
    res = {k: int(v) if v.lstrip("-").isdigit() else v for k, v in resources.items()}

    class Resources(dict):
        __getattr__ = dict.get

    job = SimpleNamespace(resources=Resources(res), threads=1, name="train_student", is_group=lambda: False)
    params = {"run_uuid": "uuid", "slurm_logfile": "log/%j.log", "comment_str": "rule_train_student",
              "account": "", "partition": "-p gpu", "workdir": "/work"}
    settings = SimpleNamespace(requeue=True, no_requeue=False, qos=None, reservation=None)
    return get_submit_command(job, params, settings) + set_gres_string(job)


def test_single_node_gpus(train_jobs):
    job = train_jobs["accelerate-8"]
    line = sbatch_line(job["resources"])
    for opt in ("--gpus=h100:8", "--cpus-per-task=64", "--mem 491520", "-t 2880", "--requeue"):
        assert opt in line, (opt, line)
    assert job["shell"].startswith("accelerate launch --multi_gpu --num_machines=1 --num_processes=8 "), job


def test_multi_node_srun_torchrun(train_jobs):
    job = train_jobs["multinode"]
    line = sbatch_line(job["resources"])
    for opt in ("--nodes=2", "--ntasks=2", "--gres=gpu:h100:4", "--cpus-per-task=32", "--mem 400000"):
        assert opt in line, (opt, line)
    assert "--gpus=" not in line and "--ntasks-per-gpu" not in line, line
    assert job["resources"]["mpi"] == "srun"  # the jobstep leaves the srun to the rule's command
    assert job["shell"].startswith(
        "srun --nodes=2 --ntasks=2 --ntasks-per-node=1 --cpus-per-task=32 torchrun --nnodes=2 "
        "--nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=$(hostname):29500 --rdzv-id=$SLURM_JOB_ID "
        "-m rmsd.train --config "), job["shell"]


def test_cpu_launcher_and_no_gpu(train_jobs):
    job = train_jobs["deepspeed-cpu"]
    line = sbatch_line(job["resources"])
    assert "--gpus" not in line and "--gres" not in line and "--cpus-per-task=2" in line, line
    assert job["shell"].startswith("deepspeed --num_gpus=1 --module rmsd.train --config "), job["shell"]
