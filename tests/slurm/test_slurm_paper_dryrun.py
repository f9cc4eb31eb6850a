"""The paper-scale configuration is real: `snakemake -n --cores all --profile slurm --configfile
config/paper.yaml` lists the whole paper DAG, and every GPU job carries the paper-scale resources of
config/paper.yaml (8 GPUs for sampling the 235B teacher and for training, 1 for evaluating a 4B
student) while the CPU jobs get the Slurm profile's default-resources.

The checkpoints and items files config/paper.yaml points at are replaced by small fixtures in a
scratch directory (a checkpoint directory with a config.json; an items JSONL with one valid item whose
video file exists). A dry run needs no Slurm cluster: nothing is submitted.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from slurmlib import ROOT, SNAKEMAKE, job_env, parse_jobs

GPU_RULES = {"sample_teacher_shard": "sample_teacher", "train_student": "train_student",
             "eval_run": "eval_run", "models_teacher": "models_teacher",
             "models_student_base": "models_student_base"}
@pytest.fixture(scope="module")
def paper_workspace(tmp_path_factory):
    """A scratch workflow directory: the repository's Snakefile, rules, scripts, config and slurm
    linked in, paths.yaml pointing config/paper.yaml's inputs at small fixtures."""
    wd = tmp_path_factory.mktemp("paper")
    for name in ("Snakefile", "rules", "scripts", "config", "slurm"):
        (wd / name).symlink_to(ROOT / name)
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    fx = wd / "fixtures"
    video = fx / "videos" / "clip0.mp4"
    video.parent.mkdir(parents=True)
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42")  # never decoded: the dry run only checks it exists
    item = {"id": "fx-0", "video": str(video), "task_type": "open",
            "question": "What happens in the video?", "answer": "a ball moves to the left"}
    overlay: dict = {"models": {"teachers": {}, "student": {}}, "data": {"external": {}},
                     # one placeholder item per split: the 50K/60K stage split is checked at parse time
                     # against the distill file, so both stages read every item here
                     "recipe": {"stage1": {"n_items": None}, "stage2": {"n_items": None}}}
    for split in paper["data"]["external"]:
        items = fx / "data" / split / "items.jsonl"
        items.parent.mkdir(parents=True)
        items.write_text(json.dumps(item) + "\n")
        overlay["data"]["external"][split] = str(items)
    for name in paper["models"]["teachers"]:
        overlay["models"]["teachers"][name] = {"path": str(_checkpoint(fx / "checkpoints" / name))}
    overlay["models"]["student"] = {"path": str(_checkpoint(fx / "checkpoints" / "student"))}
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    if "data_root" in schema["properties"]["evaluation"].get("properties", {}):
        (fx / "benchmarks").mkdir()
        overlay["evaluation"] = {"data_root": str(fx / "benchmarks")}
        # the benchmarks' annotation files must exist for the DAG (never read by a dry run)
        from rmsd.evaluation.benchmarks.settings import annotation_files

        ecfg = {**paper["evaluation"], **overlay["evaluation"]}
        for bench in paper["evaluation"]["benchmarks"]:
            for f in annotation_files(ecfg, bench):
                Path(f).parent.mkdir(parents=True, exist_ok=True)
                Path(f).touch()
    (wd / "paths.yaml").write_text(yaml.safe_dump(overlay))
    return wd, paper


def _dryrun(wd: Path, *extra: str, overlays: tuple[str, ...] = ()) -> str:
    # targets all + ablations = every table and figure of the paper
    p = subprocess.run([SNAKEMAKE, "all", "ablations", "-n", "-p", "--cores", "all", "--profile", "slurm",
                        *extra, "--configfile", "config/paper.yaml", "paths.yaml", *overlays],
                       cwd=wd, env=job_env(), capture_output=True, text=True, timeout=600)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-5000:]
    assert "This was a dry-run" in out, out[-3000:]
    return out


@pytest.fixture(scope="module")
def paper_dryrun(paper_workspace):
    wd, paper = paper_workspace
    out = _dryrun(wd)
    return paper, parse_jobs(out), out


def _checkpoint(d: Path) -> Path:
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"model_type": "qwen3_vl",
                                               "architectures": ["Qwen3VLForConditionalGeneration"]}))
    return d


def _int(resources: dict, key: str) -> int:
    return int(resources.get(key, 0))


def test_whole_paper_dag_is_listed(paper_dryrun):
    paper, jobs, out = paper_dryrun
    counts = Counter(j["rule"] for j in jobs)
    report = paper["report"]
    variants = list(dict.fromkeys(report["main_variants"] + report.get("ablation_variants", [])))
    trained = [v for v in variants if (paper["variants"][v] or {}).get("train", True)]
    runs = {(j["wildcards"]["variant"], j["wildcards"]["seed"]) for j in jobs if j["rule"] == "train_student"}
    assert {(v, str(s)) for v in trained for s in paper["seeds"]} <= runs, sorted(runs)
    evaluated = {j["wildcards"]["variant"] for j in jobs if j["rule"] == "eval_run"}
    assert set(variants) | {f"teacher-{t}" for t in paper["models"]["teachers"]} <= evaluated, evaluated
    assert counts["sample_teacher_shard"] >= len(paper["models"]["teachers"]), counts
    for rule in ("data_external", "frames_extract", "score_pool", "score_select", "train_config", "all",
                 "ablations"):
        assert counts[rule] >= 1, (rule, counts)
    assert sum(n for rule, n in counts.items() if rule.startswith("report_")) >= 2, counts
    # pretrained checkpoints (models.*.path): nothing is trained from scratch
    assert counts["models_teacher"] == 0 and counts["models_student_base"] == 0, counts


def test_gpu_jobs_carry_paper_resources(paper_dryrun):
    paper, jobs, _ = paper_dryrun
    want = paper["resources"]
    seen = Counter()
    for j in jobs:
        if j["rule"] not in GPU_RULES:
            continue
        r, key = j["resources"], GPU_RULES[j["rule"]]
        if j["rule"] == "eval_run" and j["wildcards"].get("variant", "").startswith("teacher-"):
            key = "sample_teacher"  # a teacher evaluated as is needs a sampling-sized job
        exp = want[key]
        assert _int(r, "gpu") == exp["gpu"], (j["rule"], j["wildcards"], r)
        assert _int(r, "cpus_per_task") == exp["cpus"], (j["rule"], r)
        assert _int(r, "mem_mb") == exp["mem_mb"], (j["rule"], r)
        assert _int(r, "runtime") == exp["runtime"], (j["rule"], r)
        seen[j["rule"]] += 1
    assert seen["sample_teacher_shard"] and seen["train_student"] and seen["eval_run"], seen
    # the paper numbers themselves: a full 8-GPU node for the 235B teacher and for training
    assert want["sample_teacher"]["gpu"] == 8 and want["train_student"]["gpu"] == 8
    assert want["eval_run"]["gpu"] == 1


def test_training_launches_one_process_per_gpu(paper_dryrun):
    paper, jobs, _ = paper_dryrun
    train = [j for j in jobs if j["rule"] == "train_student"]
    n = paper["resources"]["train_student"]["gpu"]
    launcher = paper["resources"]["train_student"]["launcher"]
    expected = {"accelerate": f"accelerate launch --multi_gpu --num_machines=1 --num_processes={n} ",
                "torchrun": f"torchrun --standalone --nproc-per-node={n} ",
                "deepspeed": f"deepspeed --num_gpus={n} --module rmsd.train ",
                "python": "python -m rmsd.train "}[launcher]
    for j in train:
        assert j["shell"] and j["shell"].startswith(expected), j["shell"]
        assert "rmsd.train --config results/train/" in j["shell"], j["shell"]


def test_cpu_jobs_get_profile_defaults(paper_dryrun):
    _, jobs, _ = paper_dryrun
    profile = yaml.safe_load((ROOT / "slurm" / "config.yaml").read_text())["default-resources"]
    # rules without config resources (rule_resources always sets cpus_per_task)
    cpu_jobs = [j for j in jobs if j["rule"] not in GPU_RULES and not j["local"] and j["resources"]
                and "cpus_per_task" not in j["resources"]]
    assert cpu_jobs
    for j in cpu_jobs:
        assert _int(j["resources"], "gpu") == 0, j
        assert _int(j["resources"], "mem_mb") > 0 and _int(j["resources"], "runtime") > 0, j
    # rules without their own resources get the profile's (e.g. scoring, selection, train_config)
    defaults = [j for j in cpu_jobs if _int(j["resources"], "mem_mb") == profile["mem_mb"]
                and _int(j["resources"], "runtime") == profile["runtime"]]
    assert {"train_config"} <= {j["rule"] for j in defaults}, cpu_jobs[:3]


def test_training_checkpoints_before_the_limit_and_is_retried(paper_dryrun, paper_workspace):
    """Slurm sends SIGURG 600 s before the limit to every process of the training job's steps
    (--signal without B:, through slurm_extra), the training processes stop on it (--stop-signals),
    and Snakemake resubmits the job (retries) with a runtime that grows with the attempt."""
    paper, jobs, _ = paper_dryrun
    want = paper["resources"]["train_student"]
    assert (want["preempt_signal"], want["preempt_seconds"], want["retries"]) == ("URG", 600, 3)
    train = [j for j in jobs if j["rule"] == "train_student"]
    assert train
    for j in train:
        assert j["resources"]["slurm_extra"] == "--signal=URG@600", j["resources"]
        assert " --stop-signals URG,USR1,TERM > results/logs/train_student/" in j["shell"], j["shell"]
    assert all("slurm_extra" not in j["resources"] for j in jobs if j["rule"] != "train_student")
    # the second attempt: runtime x 2, bounded by runtime_max (paper: the 48 h of the first attempt)
    wd, _ = paper_workspace
    (wd / "cap.yaml").write_text(yaml.safe_dump({"resources": {"train_student": {"runtime_max": 5000}}}))
    for attempt, overlays, runtime in (("2", (), 2880), ("2", ("cap.yaml",), 5000), ("1", ("cap.yaml",), 2880)):
        again = [j for j in parse_jobs(_dryrun(wd, "--attempt", attempt, overlays=overlays))
                 if j["rule"] == "train_student"]
        assert again and {_int(j["resources"], "runtime") for j in again} == {runtime}, (attempt, again[0])
    # retries: the rule's own value (not shown by a dry run: read from the parsed workflow)
    code = ("from pathlib import Path\n"
            "from snakemake.api import SnakemakeApi\n"
            "from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings\n"
            "with SnakemakeApi(OutputSettings()) as api:\n"
            "    wf = api.workflow(resource_settings=ResourceSettings(), snakefile=Path('Snakefile'),\n"
            "                      config_settings=ConfigSettings(configfiles=[Path('config/paper.yaml'),\n"
            "                                                                  Path('paths.yaml')]))\n"
            "    print('RETRIES', wf._workflow.get_rule('train_student')._restart_times)\n")
    p = subprocess.run([str(Path(SNAKEMAKE).parent / "python"), "-c", code], cwd=wd, env=job_env(),
                       capture_output=True, text=True, timeout=300)
    assert "RETRIES 3\n" in p.stdout, p.stdout[-2000:] + p.stderr[-3000:]
    # a lead longer than half the limit would stop the job soon after it starts: refused
    (wd / "short.yaml").write_text(yaml.safe_dump({"resources": {"train_student": {"runtime": 15}}}))
    p = subprocess.run([SNAKEMAKE, "all", "-n", "--cores", "all", "--configfile", "config/paper.yaml",
                        "paths.yaml", "short.yaml"], cwd=wd, env=job_env(), capture_output=True, text=True,
                       timeout=600)
    assert p.returncode != 0 and ("resources.train_student.preempt_seconds = 600 is more than half the "
                                  "runtime of 15 min") in p.stdout + p.stderr, (p.stdout + p.stderr)[-3000:]
