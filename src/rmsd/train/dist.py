"""Process layout of a training run: one process, or several launched by torchrun/accelerate/deepspeed.

The launchers all export ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (``deepspeed`` also passes
``--local_rank``); :func:`init_runtime` reads them and joins the process group: NCCL when CUDA is
available, gloo on CPU. A single process (no launcher) never touches ``torch.distributed``, so CPU
runs pay nothing for it. Rank 0 writes every shared output; each rank draws its own batches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from rmsd.utils import get_logger

log = get_logger(__name__)


@dataclass
class Runtime:
    """Where this process sits: rank, world size, device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    """``"nccl"``/``"gloo"`` when a process group is up, else None."""

    @property
    def is_main(self) -> bool:
        """True on the process that writes shared outputs (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when several processes take part."""
        return self.world_size > 1

    @property
    def cuda(self) -> bool:
        """True when this process trains on a GPU."""
        return self.device.type == "cuda"

    def barrier(self) -> None:
        """Wait for every rank (no-op for one process)."""
        if self.distributed:
            dist.barrier()

    def all_mean(self, values: list[float]) -> list[float]:
        """Element-wise mean of ``values`` over ranks (identity for one process)."""
        if not self.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(t)
        return (t / self.world_size).tolist()

    def all_sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over ranks (identity for one process)."""
        if not self.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(t)
        return t.tolist()

    def any(self, flag: bool) -> bool:
        """True when ``flag`` is true on any rank (so all ranks take the same branch)."""
        if not self.distributed:
            return bool(flag)
        return self.all_sum([1.0 if flag else 0.0])[0] > 0

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank (picklable objects only)."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    @property
    def _comm_device(self) -> torch.device:
        return self.device if self.backend == "nccl" else torch.device("cpu")


def launched_world_size() -> int:
    """``WORLD_SIZE`` set by a launcher (1 when run directly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_runtime(local_rank: int | None = None, timeout_s: float = 1800.0) -> Runtime:
    """Read the launcher's environment, pick the device and join the process group if needed.

    Args:
        local_rank: ``--local_rank`` from the command line (the ``deepspeed`` launcher), used when
            ``LOCAL_RANK`` is not in the environment.
        timeout_s: collective timeout.
    """
    world = launched_world_size()
    rank = int(os.environ.get("RANK", "0"))
    lrank = int(os.environ.get("LOCAL_RANK", local_rank if local_rank is not None else 0))
    if torch.cuda.is_available():
        device = torch.device("cuda", lrank % max(1, torch.cuda.device_count()))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    backend = None
    if world > 1:
        backend = "nccl" if device.type == "cuda" else "gloo"
        if not dist.is_initialized():
            os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
            os.environ.setdefault("MASTER_PORT", "29500")
            kw = {"device_id": device} if backend == "nccl" else {}
            dist.init_process_group(backend=backend, rank=rank, world_size=world,
                                    timeout=timedelta(seconds=timeout_s), **kw)
        log.info("rank %d/%d on %s (%s)", rank, world, device, backend)
        if rank != 0:  # one copy of the progress messages is enough
            import logging

            logging.getLogger("rmsd").setLevel(logging.WARNING)
    return Runtime(rank=rank, world_size=world, local_rank=lrank, device=device, backend=backend)


def shutdown(rt: Runtime) -> None:
    """Leave the process group (if this module joined one)."""
    if rt.distributed and dist.is_initialized():
        dist.destroy_process_group()
