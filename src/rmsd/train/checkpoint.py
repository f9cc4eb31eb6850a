"""Resumable training state: ``<out>.tmp/checkpoints/step_N/``, written atomically.

A checkpoint directory holds

* ``policy/``: the student, ``save_pretrained`` (safetensors, config, generation config);
* ``disc.safetensors``: the Stage-2 discriminator (backbone + scalar head), when there is one;
* ``optim_<name>.pt`` (or ``optim_<name>_rank<r>.pt`` under ZeRO, one per rank): optimizer state,
  tensors only, read back with ``torch.load(weights_only=True)``;
* ``rng_rank<r>.pt`` / ``rng_rank<r>.json``: each rank's torch, CUDA, batch-sampler and NumPy RNGs;
* ``config.resolved.yaml``: the run's resolved config;
* ``state.json``: stage, steps done in the stage and overall, the byte length of ``train_log.jsonl``
  at that point, skip counters and the summaries of finished stages.

It is assembled in ``.partial_step_N/`` and renamed to ``step_N/`` by rank 0 once every rank has
written its part, so a kill leaves either the previous or the new checkpoint, never a torn one.
Older ``step_*`` directories are then removed. ``N`` counts optimizer iterations over both stages.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from rmsd.errors import TrainingError
from rmsd.io import atomic_write_json
from rmsd.train.dist import Runtime
from rmsd.utils import get_logger

log = get_logger(__name__)

CHECKPOINT_DIR = "checkpoints"
STAGE1_FINAL = "stage1_final"
_STEP_RE = re.compile(r"^step_(\d+)$")


def capture_rng(rt: Runtime, sampler: torch.Generator | None = None,
                np_rng: np.random.Generator | None = None) -> tuple[dict, dict]:
    """This rank's RNG states: (tensors for ``rng_rank<r>.pt``, JSON for ``rng_rank<r>.json``)."""
    tensors = {"torch": torch.get_rng_state()}
    if rt.cuda:
        tensors["cuda"] = torch.cuda.get_rng_state(rt.device)
    if sampler is not None:
        tensors["sampler"] = sampler.get_state()
    js = {"numpy": np_rng.bit_generator.state} if np_rng is not None else {}
    return tensors, js


def restore_rng(tensors: dict, js: dict, rt: Runtime, sampler: torch.Generator | None = None,
                np_rng: np.random.Generator | None = None) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(tensors["torch"])
    if rt.cuda and "cuda" in tensors:
        torch.cuda.set_rng_state(tensors["cuda"], rt.device)
    if sampler is not None and "sampler" in tensors:
        sampler.set_state(tensors["sampler"])
    if np_rng is not None and "numpy" in js:
        np_rng.bit_generator.state = js["numpy"]


def load_tensors(path: Path, map_location="cpu") -> dict:
    """``torch.load`` restricted to tensors and plain containers (``weights_only=True``)."""
    if not path.exists():
        raise TrainingError(f"{path}: checkpoint part missing (checkpoint from a different run layout?)")
    return torch.load(path, map_location=map_location, weights_only=True)


@dataclass
class Checkpoint:
    """A finished checkpoint directory and its ``state.json``."""

    path: Path
    state: dict = field(default_factory=dict)

    @property
    def stage(self) -> str:
        return self.state["stage"]

    def optimizer_file(self, name: str, rank: int, sharded: bool) -> Path:
        return self.path / (f"optim_{name}_rank{rank}.pt" if sharded else f"optim_{name}.pt")

    def load_optimizer(self, name: str, rt: Runtime, sharded: bool) -> dict:
        return load_tensors(self.optimizer_file(name, rt.rank, sharded), map_location=rt.device)

    def load_rng(self, rt: Runtime) -> tuple[dict, dict]:
        """This rank's RNG states (falls back to rank 0's when resuming on more ranks is refused)."""
        js_path = self.path / f"rng_rank{rt.rank}.json"
        js = json.loads(js_path.read_text()) if js_path.exists() else {}
        return load_tensors(self.path / f"rng_rank{rt.rank}.pt"), js


class Checkpointer:
    """Writes and finds checkpoints under ``root`` (``<out>.tmp/checkpoints``).

    Args:
        root: the checkpoints directory.
        rt: process layout (rank 0 writes shared files; every rank writes its own RNG and ZeRO shards).
        keep: finished ``step_*`` directories to keep (the newest).
        copy_files: files copied into every checkpoint (the resolved config).
    """

    def __init__(self, root: Path, rt: Runtime, keep: int = 1, copy_files: tuple = ()):
        self.root, self.rt, self.keep = Path(root), rt, max(1, keep)
        self.copy_files = [Path(p) for p in copy_files]

    def steps(self) -> list[tuple[int, Path]]:
        """Finished checkpoints, oldest first."""
        if not self.root.is_dir():
            return []
        out = []
        for p in self.root.iterdir():
            m = _STEP_RE.match(p.name)
            if m and (p / "state.json").exists():
                out.append((int(m.group(1)), p))
        return sorted(out)

    def latest(self) -> Checkpoint | None:
        """The newest finished checkpoint, or None."""
        steps = self.steps()
        if not steps:
            return None
        path = steps[-1][1]
        return Checkpoint(path, json.loads((path / "state.json").read_text()))

    def save(self, global_step: int, state: dict, engines: dict,
             savers: dict[str, Callable[[Path], None]], rng: tuple[dict, dict]) -> Path:
        """Write ``step_<global_step>`` (collective: every rank must call it).

        Args:
            global_step: iterations done over both stages.
            state: JSON-serialisable run state (written by rank 0 as ``state.json``).
            engines: name -> :class:`rmsd.train.engine.Engine` whose optimizer state is saved.
            savers: name -> function writing that model's weights into the directory (rank 0 only;
                run inside the engine's :meth:`full_parameters`).
            rng: this rank's :func:`capture_rng` result.
        """
        rt = self.rt
        final = self.root / f"step_{global_step}"
        partial = self.root / f".partial_step_{global_step}"
        if rt.is_main:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
        rt.barrier()
        for name, eng in engines.items():
            with eng.full_parameters():
                if rt.is_main and name in savers:
                    savers[name](partial)
            sharded = eng.sharded_optimizer
            if sharded or rt.is_main:
                path = partial / (f"optim_{name}_rank{rt.rank}.pt" if sharded else f"optim_{name}.pt")
                torch.save(eng.optimizer_state(), path)
        if rt.is_main:
            for name, fn in savers.items():  # models without an optimizer (none today) still get saved
                if name not in engines:
                    fn(partial)
            for f in self.copy_files:
                if f.exists():
                    shutil.copy2(f, partial / f.name)
        tensors, js = rng
        torch.save(tensors, partial / f"rng_rank{rt.rank}.pt")
        (partial / f"rng_rank{rt.rank}.json").write_text(json.dumps(js))
        rt.barrier()
        if rt.is_main:
            atomic_write_json(partial / "state.json", {**state, "global_step": global_step,
                                                       "world_size": rt.world_size})
            _fsync_dir(partial)
            shutil.rmtree(final, ignore_errors=True)
            os.rename(partial, final)
            for step, path in self.steps()[:-self.keep]:
                shutil.rmtree(path, ignore_errors=True)
            log.info("checkpoint %s", final)
        rt.barrier()
        return final


def _fsync_dir(path: Path) -> None:
    """Flush a directory's files to disk before it is renamed into place (best effort)."""
    for p in path.rglob("*"):
        if p.is_file():
            try:
                fd = os.open(p, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
            except OSError:
                pass
