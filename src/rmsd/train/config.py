"""The resolved training config of one (variant, seed): the file ``python -m rmsd.train`` reads."""

from __future__ import annotations

import yaml

from rmsd.io import atomic_write_text


def write_train_config(out_path: str, student_init: str, selection: str, items: str, frames: str,
                       template: str, scoring: dict, stage1: dict, stage2: dict, seed: int) -> dict:
    """Write the resolved config (paths + hyper-parameters) as YAML, atomically; returns it."""
    cfg = {"student_init": student_init, "selection": selection, "items": items, "frames": frames,
           "template": template, "scoring": dict(scoring), "stage1": dict(stage1),
           "stage2": dict(stage2), "seed": seed}
    atomic_write_text(out_path, yaml.safe_dump(cfg, sort_keys=False))
    return cfg
