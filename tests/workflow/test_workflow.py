"""The whole DAG on the small test config: runs, is idempotent, and reruns exactly what a change affects."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
pytestmark = pytest.mark.workflow


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run([SNAKEMAKE, "--cores", "2", *args], cwd=workdir, env=env,
                          capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def job_counts(out: str) -> dict[str, int]:
    """Parse the 'Job stats' table of a (dry) run."""
    counts = {}
    m = re.search(r"Job stats:\n(.*?)\n\n", out, re.S)
    if not m:
        return counts
    for line in m.group(1).splitlines()[2:]:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    return counts


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A finished run of the test config in a scratch directory (code symlinked from the repo)."""
    wd = tmp_path_factory.mktemp("wf")
    for name in ("Snakefile", "rules", "scripts", "config"):
        (wd / name).symlink_to(ROOT / name)
    (wd / "test.yaml").write_text((ROOT / "tests" / "workflow" / "config.yaml").read_text())
    snakemake(wd, "--configfile", "test.yaml", "all", "ablations")
    return wd


def test_outputs_exist_and_are_real(workspace):
    main = pd.read_csv(workspace / "results/tables/main.csv")
    assert list(main.variant[:4]) == ["base", "sft_rl_single", "single_sample", "rmsd"]
    assert main["n_seeds"].tolist()[:4] == [1, 2, 2, 2]
    assert main["mean"].between(0, 100).all()
    assert (workspace / "results/tables/main.md").read_text().startswith("Table 1")
    assert (workspace / "results/tables/ablation.md").exists()
    assert (workspace / "results/figures/main.png").stat().st_size > 10_000
    assert (workspace / "results/figures/teacher_variance.png").stat().st_size > 10_000
    metrics = json.loads((workspace / "results/eval/rmsd/seed0/synth-test/metrics.json").read_text())
    assert metrics["n_items"] == 30 and set(metrics["per_task"]) == {"mcq", "temporal", "open"}
    clips = [json.loads(x) for x in (workspace / "results/frames/clips/manifest.jsonl").read_text().splitlines()]
    assert len(clips) >= 2 and all(c["num_frames"] == 8 for c in clips)
    log = [json.loads(x) for x in (workspace / "results/models/rmsd/seed0/train_log.jsonl").read_text().splitlines()]
    rl = [r for r in log if "disc_acc" in r]
    assert rl and all(k in rl[-1] for k in ("reward", "r_outer", "r_task", "r_content", "disc_loss", "kl"))


def test_second_run_does_nothing(workspace):
    out = snakemake(workspace, "--configfile", "test.yaml", "all", "ablations", "-n")
    assert job_counts(out.stdout) == {}, out.stdout[-2000:]


def test_sampling_param_change_reruns_downstream_only(workspace):
    cfg = yaml.safe_load((workspace / "test.yaml").read_text())
    cfg["sampling"]["teachers"]["weak"]["temperature"] = 0.9
    (workspace / "changed.yaml").write_text(yaml.safe_dump(cfg))
    out = snakemake(workspace, "--configfile", "changed.yaml", "all", "ablations", "-n")
    jobs = job_counts(out.stdout)
    assert jobs.get("sample_teacher") == 1  # only the changed teacher
    for rule in ("score_pool", "score_select", "train_config", "train_student", "eval_run",
                 "report_tables", "report_figures"):
        assert rule in jobs, (rule, jobs)
    for rule in ("data_synth", "data_clips", "frames_extract", "models_processor", "models_teacher",
                 "models_student_base"):
        assert rule not in jobs, (rule, jobs)
    # 5 trained variants x 2 seeds; base and teacher rows are not re-evaluated
    assert jobs["train_student"] == 10 and jobs["eval_run"] == 10


def test_tau_change_reruns_only_affected_variants(workspace):
    cfg = yaml.safe_load((workspace / "test.yaml").read_text())
    cfg["recipe"]["selection"]["tau"] = 0.5
    (workspace / "tau.yaml").write_text(yaml.safe_dump(cfg))
    jobs = job_counts(snakemake(workspace, "--configfile", "tau.yaml", "all", "ablations", "-n").stdout)
    # filtered and rmsd inherit tau; single_sample, multi_sample, sft_rl_single override it
    assert jobs.get("score_select") == 4 and jobs.get("train_student") == 4, jobs
    assert "sample_teacher" not in jobs and "score_pool" not in jobs


def test_unknown_config_key_fails_at_parse_time(workspace):
    cfg = yaml.safe_load((workspace / "test.yaml").read_text())
    cfg["sampling"]["teachers"]["weak"]["temprature"] = 0.9
    (workspace / "bad.yaml").write_text(yaml.safe_dump(cfg))
    out = snakemake(workspace, "--configfile", "bad.yaml", "-n", check=False)
    assert out.returncode != 0
    assert "temprature" in out.stdout + out.stderr
