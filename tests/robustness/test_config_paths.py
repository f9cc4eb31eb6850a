"""Input paths of the configuration are checked when the workflow is parsed, before any job."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rmsd.config import check_paths, input_paths
from rmsd.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def load(name="config/config.yaml"):
    return yaml.safe_load((ROOT / name).read_text())


def test_shipped_default_and_test_configs_pass():
    check_paths(load())
    check_paths(load("tests/workflow/config.yaml"))


def test_paper_config_names_every_missing_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as e:
        check_paths(load("config/paper.yaml"))
    msg = str(e.value)
    for key, path in [("data.external.distill", "data/distill/items.jsonl"),
                      ("data.external.train", "data/train/items.jsonl"),
                      ("models.teachers.qwen3vl_235b.path", "checkpoints/Qwen3-VL-235B-A22B-Instruct"),
                      ("models.student.path", "checkpoints/Qwen3-VL-4B-Instruct"),
                      ("evaluation.data_root", "data/benchmarks")]:
        assert f"{key}: " in msg and path in msg and str(tmp_path / path) in msg
    # once they exist, the same config passes
    for d in ("checkpoints/Qwen3-VL-235B-A22B-Instruct", "checkpoints/Qwen3-VL-4B-Instruct", "data/train",
              "data/distill", "data/benchmarks"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "data/train/items.jsonl").write_text("")
    (tmp_path / "data/distill/items.jsonl").write_text("")
    check_paths(load("config/paper.yaml"))


def test_each_key_kind(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    (tmp_path / "hub" / "models--Org--Cached").mkdir(parents=True)
    f = tmp_path / "items.jsonl"
    f.write_text("")
    cfg = copy.deepcopy(load())
    cfg["data"] = {"generator": "external", "external": {"distill": str(tmp_path)}}  # a directory
    cfg["models"]["student"] = {"path": str(f)}  # a file, not a directory
    cfg["sampling"]["teachers"]["served"] = {"backend": "vllm", "path": "Org/Cached"}  # hub cache
    cfg["sampling"]["teachers"]["gone"] = {"backend": "vllm", "path": "Org/NotCached"}
    cfg["evaluation"]["benchmarks"] = ["synth-test", "VideoMME"]
    cfg["evaluation"]["data_root"] = str(tmp_path / "bench")
    cfg["evaluation"]["judge"] = {"factory": "rmsd.evaluation.benchmarks.judge:hf_judge",
                                  "model": str(tmp_path / "judge")}
    keys = {k for k, _, _ in input_paths(cfg)}
    assert keys == {"data.external.distill", "models.student.path", "sampling.teachers.served.path",
                    "sampling.teachers.gone.path", "evaluation.data_root", "evaluation.judge.model"}
    with pytest.raises(ConfigError) as e:
        check_paths(cfg)
    lines = str(e.value).splitlines()[1:]
    assert len(lines) == 5, lines  # everything but the cached hub id
    assert any("data.external.distill" in x and "is a directory, not a file" in x for x in lines)
    assert any("models.student.path" in x and "is a file, not a directory" in x for x in lines)
    assert any("sampling.teachers.gone.path: Org/NotCached" in x and "hub" in x for x in lines)
    assert any(f"evaluation.data_root: directory {tmp_path / 'bench'} does not exist" in x
               for x in lines)
    assert any("evaluation.judge.model" in x for x in lines)


def test_missing_path_fails_at_workflow_parse_time(tmp_path):
    """snakemake -n stops while parsing (before any job) and names the key and the path."""
    for name in ("Snakefile", "rules", "scripts", "config"):
        (tmp_path / name).symlink_to(ROOT / name)
    cfg = load()  # --configfile replaces the default, so the bad config is a complete one
    cfg["data"] = {"generator": "external", "external": {"distill": "no/such/distill.jsonl"}}
    cfg["evaluation"]["benchmarks"] = ["VideoMME"]  # synth-test needs the synth generator
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    p = subprocess.run([snakemake, "--cores", "1", "-n", "--configfile", "bad.yaml"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode != 0
    assert "data.external.distill: file no/such/distill.jsonl" in out, out[-3000:]
    assert "Job stats" not in out and not (tmp_path / "results").exists()


def test_stage_split_larger_than_the_distill_items_fails_at_parse_time(tmp_path):
    """recipe.stage1.n_items (300 in the default) over a 3 x 5-item synthetic distill split: the dry
    run stops while parsing, naming the keys and the item count, not when training starts."""
    for name in ("Snakefile", "rules", "scripts", "config"):
        (tmp_path / name).symlink_to(ROOT / name)
    cfg = load()
    cfg["data"]["n_per_task"]["distill"] = 5
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    p = subprocess.run([snakemake, "--cores", "1", "-n", "--configfile", "small.yaml"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode != 0
    assert ("recipe.stage1.n_items (300) + recipe.stage2.n_items (None) leave no disjoint items for "
            "both stages among the 15 items of the 'synth-distill' split") in out, out[-3000:]
    assert "Job stats" not in out and not (tmp_path / "results").exists()
