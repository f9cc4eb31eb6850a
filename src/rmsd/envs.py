"""Run a job in the vLLM environment's interpreter.

vLLM pins its own torch / transformers / numpy (vLLM 0.33: torch 2.14.0, transformers < 5.21,
numpy < 2.4 through numba and mistral-common), which cannot share one environment with the
Snakemake Slurm executor plugin (numpy >= 2.4.5). The workflow therefore has two environments:
the main one (``.venv``, ``envs/rmsd.yaml``: Snakemake, the plugin, training) and the vLLM one
(``.venv-vllm`` from ``bash setup.sh --vllm``, or ``envs/vllm.yaml`` deployed per rule with
``--sdm conda``). Jobs that generate with vLLM (teacher sampling with backend ``vllm``, evaluation
with ``evaluation.backend: vllm`` or of a ``vllm`` teacher) run in the second one:

* with ``--sdm conda``, Snakemake runs those rules' scripts in ``envs/vllm.yaml`` (their ``conda:``
  directive picks it for vLLM jobs);
* with ``envs.vllm_python`` set (e.g. ``.venv-vllm/bin/python``), the rule's script, running in
  the main environment, re-runs the job in that interpreter (:func:`call`); its output goes to the
  rule's log.

Only the jobs of :data:`JOBS` can be called, by name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from rmsd.errors import ConfigError

#: Jobs that may run in another interpreter: name -> "module:function".
JOBS: dict[str, str] = {
    "sample_teacher": "rmsd.envs:sample_teacher_job",
    "evaluate": "rmsd.evaluation.run:evaluate",
    "versions": "rmsd.envs:versions",
}


def vllm_interpreter(config: dict) -> str | None:
    """The interpreter of vLLM jobs: ``envs.vllm_python`` (relative to the working directory),
    or None to run them in this interpreter (already the vLLM one, or ``--sdm conda``).

    Raises:
        ConfigError: ``envs.vllm_python`` names no executable file (with the setup line).
    """
    py = ((config.get("envs") or {}).get("vllm_python"))
    if not py:
        return None
    p = Path(py)
    if not (p.is_file() and os.access(p, os.X_OK)):
        raise ConfigError(f"envs.vllm_python: {py} is not an executable file; build the vLLM "
                          "environment with `bash setup.sh --vllm` (creates .venv-vllm) or unset it")
    if Path(sys.executable).resolve() == p.resolve() or Path(sys.executable) == p:
        return None
    return str(p)


def call(python: str, job: str, kwargs: dict, log_path: str | None = None):
    """Run ``JOBS[job](**kwargs)`` in ``python`` and return its (JSON) result.

    The child appends its output to ``log_path`` (the rule's log).

    Raises:
        ConfigError: unknown job.
        RuntimeError: the child failed (its exit status; the traceback is in the log).
    """
    if job not in JOBS:
        raise ConfigError(f"unknown job {job!r}; valid: {sorted(JOBS)}")
    with tempfile.TemporaryDirectory() as d:
        args, res = Path(d) / "args.json", Path(d) / "result.json"
        args.write_text(json.dumps({"kwargs": kwargs, "log": log_path}))
        out = open(log_path, "a") if log_path else None  # noqa: SIM115
        try:
            r = subprocess.run([python, "-m", "rmsd.envs", job, str(args), str(res)],
                               stdout=out, stderr=out, check=False)
        finally:
            if out:
                out.close()
        if r.returncode != 0:
            raise RuntimeError(f"job {job!r} failed in {python} (exit {r.returncode}); see "
                               f"{log_path or 'its output'}")
        return json.loads(res.read_text())


def versions() -> dict:
    """The interpreter and the versions of the stack it runs (None: not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.executable}
    for name in ("torch", "transformers", "numpy", "vllm"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def sample_teacher_job(teacher: str, cfg: dict, template: str, model_path: str | None,
                       **pool_kwargs) -> dict:
    """Teacher sampling of one shard from plain arguments (:func:`rmsd.teachers.sample_pool`)."""
    from rmsd.teachers import TeacherSpec, sample_pool

    spec = TeacherSpec.from_config(teacher, cfg, template=template, model_path=model_path)
    return sample_pool(spec=spec, **pool_kwargs)


def _main(argv: list[str]) -> int:
    import importlib

    from rmsd.utils import log_to

    job, args_path, res_path = argv
    a = json.loads(Path(args_path).read_text())
    mod, fn = JOBS[job].split(":")
    func = getattr(importlib.import_module(mod), fn)
    if a.get("log"):
        with log_to(a["log"]):
            result = func(**a["kwargs"])
    else:
        result = func(**a["kwargs"])
    Path(res_path).write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
