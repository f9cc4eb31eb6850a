"""The two software environments: envs/rmsd.yaml pins exactly what pyproject.toml pins;
envs/vllm.yaml the same except vLLM's own torch/transformers/numpy and without the Slurm plugin;
pip's resolver accepts both (and refuses the one environment that would hold vLLM and the plugin);
vLLM jobs re-run in the configured interpreter."""

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from rmsd.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

#: Where the vLLM environment differs from the main one (vLLM 0.33's pins: torch==2.14.0,
#: torchvision==0.29.0, transformers<5.21; numba and mistral-common[image]: numpy<2.4).
VLLM_ENV_CHANGES = {"vllm": "0.33.0", "torch": "2.14.0", "torchvision": "0.29.0",
                    "transformers": "5.20.2", "numpy": "2.3.5"}
#: In the main environment only (Snakemake's Slurm executor: numpy>=2.4.5).
MAIN_ONLY = {"snakemake-executor-plugin-slurm"}


def _pins(lines):
    return {ln.split("==")[0].lower(): ln.split("==")[1] for ln in lines if "==" in ln}


def _env_pip(name):
    deps = yaml.safe_load((ROOT / "envs" / name).read_text())["dependencies"]
    return next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)


def _project_pins():
    return _pins(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])


def test_conda_env_pins_match_pyproject():
    assert _pins(_env_pip("rmsd.yaml")) == _project_pins(), "rmsd.yaml pins differ from pyproject.toml"


def test_vllm_env_pins_are_the_project_pins_but_vllms():
    want = {k: v for k, v in _project_pins().items() if k not in MAIN_ONLY} | VLLM_ENV_CHANGES
    assert _pins(_env_pip("vllm.yaml")) == want
    assert sorted(p.name for p in (ROOT / "envs").glob("*.yaml")) == ["rmsd.yaml", "vllm.yaml"]


def _resolve(tmp_path, reqs: list[str]) -> subprocess.CompletedProcess:
    (tmp_path / "req.txt").write_text("\n".join(reqs) + "\n")
    return subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--report", str(tmp_path / "report.json"), "-r", str(tmp_path / "req.txt")],
        capture_output=True, text=True, env={**os.environ, "DS_BUILD_OPS": "0"})


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.parametrize("env", ["rmsd.yaml", "vllm.yaml"])
def test_environment_resolves(tmp_path, env):
    """pip's resolver (from PyPI, on this platform and Python) installs exactly the pins."""
    reqs = _env_pip(env)
    r = _resolve(tmp_path, reqs)
    assert r.returncode == 0, r.stderr[-3000:]
    got = {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"]
           for i in json.loads((tmp_path / "report.json").read_text())["install"]}
    for name, version in _pins(reqs).items():
        assert got[name.replace("_", "-")] == version, name


@pytest.mark.slow
@pytest.mark.network
def test_vllm_and_the_slurm_plugin_do_not_resolve_together(tmp_path):
    """Why there are two environments: numpy<2.4 (vLLM) against numpy>=2.4.5 (the plugin)."""
    reqs = [r for r in _env_pip("vllm.yaml") if not r.startswith("numpy==")]
    r = _resolve(tmp_path, reqs + ["snakemake-executor-plugin-slurm==2.8.0"])
    assert r.returncode != 0
    assert "ResolutionImpossible" in r.stderr or "conflict" in r.stderr.lower(), r.stderr[-2000:]


def test_setup_sh_knows_the_vllm_option():
    text = (ROOT / "setup.sh").read_text()
    assert "--vllm) VLLM=1" in text and "RMSD_VLLM_VENV" in text and "envs/vllm.yaml" in text
    r = subprocess.run(["bash", str(ROOT / "setup.sh"), "--nope"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown option --nope" in r.stderr


def test_vllm_interpreter_config(tmp_path):
    from rmsd.envs import vllm_interpreter

    assert vllm_interpreter({}) is None
    assert vllm_interpreter({"envs": {"vllm_python": None}}) is None
    assert vllm_interpreter({"envs": {"vllm_python": sys.executable}}) is None  # already it
    with pytest.raises(ConfigError, match=r"envs.vllm_python: .*nope is not an executable.*setup.sh --vllm"):
        vllm_interpreter({"envs": {"vllm_python": str(tmp_path / "nope")}})
    py = tmp_path / "python"
    py.symlink_to(sys.executable)
    assert vllm_interpreter({"envs": {"vllm_python": str(py)}}) is None  # same interpreter file


def test_job_runs_in_another_interpreter(tmp_path):
    """rmsd.envs.call runs a named job in a child interpreter; its log goes to the rule's log."""
    import importlib.metadata as md

    import rmsd.envs as envs

    got = envs.call(sys.executable, "versions", {})
    assert got == {"python": sys.executable, "torch": md.version("torch"),
                   "transformers": md.version("transformers"), "numpy": md.version("numpy"),
                   "vllm": None}
    with pytest.raises(ConfigError, match="unknown job 'nope'"):
        envs.call(sys.executable, "nope", {})
    log = tmp_path / "job.log"
    with pytest.raises(RuntimeError, match=r"job 'sample_teacher' failed .*exit 1"):
        envs.call(sys.executable, "sample_teacher",
                  {"teacher": "t", "cfg": {"backend": "nope"}, "template": "answer_only",
                   "model_path": None}, log_path=str(log))
    assert "unknown backend 'nope'" in log.read_text()
