"""The resolved config a run saves, and the check that a report describes that run.

The workflow writes ``results/config/resolved.yaml`` (rule ``run_config``: the config after
merging files and defaults, keys in canonical order). ``snakemake --report`` renders its front
page from the config it is given; :func:`check_report_config` makes sure that config is the one
the results were made with, so the front page cannot describe another experiment.
"""

from __future__ import annotations

import os
from pathlib import Path

from rmsd.config import canonical
from rmsd.errors import ConfigError

RESOLVED = "results/config/resolved.yaml"
"""Where the run's resolved config is saved (relative to the working directory)."""


def write_resolved(config: dict, path: str | os.PathLike) -> None:
    """Write ``config`` (canonical key order) to ``path`` as YAML, atomically."""
    import yaml

    from rmsd.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(canonical(dict(config)), sort_keys=False))


def config_diff(a, b, prefix: str = "") -> list[tuple[str, object, object]]:
    """Dotted keys where ``a`` and ``b`` differ, with both values (missing: ``<unset>``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            key = f"{prefix}.{k}" if prefix else str(k)
            if k not in a:
                out.append((key, "<unset>", b[k]))
            elif k not in b:
                out.append((key, a[k], "<unset>"))
            else:
                out += config_diff(a[k], b[k], key)
        return out
    return [] if a == b else [(prefix or "(top level)", a, b)]


def check_report_config(config: dict, path: str | os.PathLike = RESOLVED) -> None:
    """Raise unless ``config`` equals the run's saved config (by value).

    Raises:
        ConfigError: no saved config (nothing was run here), or the keys that differ (up to 8,
            with the run's and the given value) and how to ask for the report of the run.
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--report: {p} does not exist: no run has saved its config here yet "
                          "(run the workflow first, with the same --configfile)")
    saved = yaml.safe_load(p.read_text())
    diff = config_diff(saved, canonical(dict(config)))
    if diff:
        def short(v):
            s = repr(v)
            return s if len(s) <= 60 else s[:57] + "..."

        lines = [f"  {k}: run {short(a)}, given {short(b)}" for k, a, b in diff[:8]]
        more = f"\n  ... and {len(diff) - 8} more" if len(diff) > 8 else ""
        raise ConfigError(f"--report: the config given differs from the one the results were made "
                          f"with ({p}), so the report would describe another run:\n"
                          + "\n".join(lines) + more +
                          "\nPass the run's --configfile (and --config) to snakemake --report.")
