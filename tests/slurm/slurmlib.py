"""Helpers for the tests that run the workflow on a real Slurm cluster (tests/slurm).

CI starts a single-node cluster on localhost first (``bash .ci/slurm/start.sh``, see ``.ci/run``);
without one (``sinfo`` fails or shows no usable node) every test here is skipped with the reason.
The workflow runs exactly as users run it, ``snakemake --cores all --profile slurm``, plus the CI
overlay profile ``tests/slurm/profile`` (squeue status polling, kept Slurm logs, 2 jobs).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SNAKEMAKE = str(VENV_BIN / "snakemake")
CI_PROFILE = ROOT / "tests" / "slurm" / "profile"
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def slurm_problem() -> str | None:
    """None if a Slurm controller answers with a usable node, else why not."""
    if shutil.which("sinfo") is None:
        return "sinfo not found (slurm-client not installed)"
    try:
        p = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "sinfo timed out (no controller answering)"
    if p.returncode != 0:
        return f"sinfo failed: {' '.join(p.stderr.split())[:300]}"
    states = p.stdout.split()
    if not any(s.rstrip("*~#!%$@^-").startswith(("idle", "mix", "alloc")) for s in states):
        return f"no usable Slurm node (sinfo states: {states})"
    return None


def job_env() -> dict:
    """Environment of the Snakemake run; sbatch --export=ALL hands it to the jobs, so the venv's
    python / torchrun / accelerate are the ones rule shell commands find."""
    return dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")


def make_workspace(wd: Path, overlay: str = "") -> Path:
    """A scratch run directory: code and the slurm profile symlinked from the repo (so the literal
    ``--profile slurm`` resolves there), the workflow test config as test.yaml, plus slurm.yaml."""
    for name in ("Snakefile", "rules", "scripts", "config", "slurm"):
        (wd / name).symlink_to(ROOT / name)
    (wd / "test.yaml").write_text((ROOT / "tests" / "workflow" / "config.yaml").read_text())
    (wd / "slurm.yaml").write_text(overlay)
    return wd


def snakemake_cmd(targets: list[str], *extra: str, configfiles=("test.yaml", "slurm.yaml")) -> list[str]:
    # targets first: an option taking several values (--configfile) would swallow them
    return [SNAKEMAKE, *targets, "--cores", "all", "--profile", "slurm", "--profile", str(CI_PROFILE),
            *extra, "--configfile", *configfiles]


def slurm_logs(wd: Path) -> dict[str, list[tuple[str, Path]]]:
    """Rule name -> [(Slurm job id, log file)] from .snakemake/slurm_logs/rule_<name>/.../<jobid>.log
    (file names that Slurm itself substitutes for %j)."""
    out: dict[str, list[tuple[str, Path]]] = {}
    root = wd / ".snakemake" / "slurm_logs"
    for log in sorted(root.glob("rule_*/**/*.log")):
        rule = log.relative_to(root).parts[0][len("rule_"):]
        out.setdefault(rule, []).append((log.stem, log))
    return out


def submitted(stdout: str) -> dict[str, str]:
    """Slurm job id -> its log path, from the main Snakemake's 'submitted with SLURM jobid' lines."""
    return {m.group(1): m.group(2) for m in SUBMITTED.finditer(stdout)}


def squeue_all() -> dict[str, dict]:
    """Every job slurmctld still knows (MinJobAge=600 keeps finished ones): id -> state, comment."""
    p = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%i|%T|%k|%j"],
                       capture_output=True, text=True, check=True, timeout=60)
    jobs = {}
    for line in p.stdout.splitlines():
        jid, state, comment, name = line.strip().split("|", 3)
        jobs[jid] = {"state": state, "comment": comment, "name": name}
    return jobs


def scontrol_job(jid: str) -> dict[str, str]:
    """``scontrol show job`` as key -> value (first occurrence)."""
    p = subprocess.run(["scontrol", "-o", "show", "job", jid], capture_output=True, text=True, check=True,
                       timeout=60)
    fields = {}
    for tok in p.stdout.split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            fields.setdefault(k, v)
    return fields


def cancel(jids) -> None:
    """scancel the given Slurm jobs (cleanup after a failed or timed-out run)."""
    if jids:
        subprocess.run(["scancel", *sorted(jids)], capture_output=True, timeout=60)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


JOB_HEADER = re.compile(r"^(local)?rule (\w+):$", re.M)


def parse_jobs(out: str) -> list[dict]:
    """The job blocks of a dry run: rule, local, wildcards, resources (dict) and shell command."""
    heads = list(JOB_HEADER.finditer(out))
    jobs = []
    for h, nxt in zip(heads, heads[1:] + [None]):
        block = out[h.end(): nxt.start() if nxt else len(out)]
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        wc = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        shell = re.search(r"^Shell command: (.*)$", block, re.M)
        jobs.append({
            "rule": h.group(2), "local": bool(h.group(1)),
            "wildcards": dict(kv.split("=", 1) for kv in wc.group(1).split(", ")) if wc else {},
            "resources": dict(kv.split("=", 1) for kv in res.group(1).split(", ")) if res else {},
            "shell": shell.group(1) if shell else None,
        })
    return jobs
