"""One trainable model with its optimizer, whatever runs it: a plain module, DDP, or DeepSpeed ZeRO.

:class:`Engine` hides the three so the Stage-1 and Stage-2 loops are written once:

* plain (one process): ``torch.optim.AdamW`` on the module (fused on CUDA), gradient-norm clipping
  by hand;
* DDP (several processes, no DeepSpeed): the same, with the module wrapped in
  ``DistributedDataParallel`` (gloo on CPU, NCCL on GPU); gradients are averaged over ranks;
* DeepSpeed (``deepspeed: zero2|zero3|<path.json>``): ``deepspeed.initialize`` with a client
  ``torch.optim.AdamW`` (no JIT-compiled ops); clipping and gradient accumulation by DeepSpeed.

GPU knobs (``precision``, ``gradient_checkpointing``, ``compile``) act only on CUDA devices; a CPU run
is plain fp32 eager, exactly as without them.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import torch

from rmsd.errors import ConfigError, TrainingError
from rmsd.train.dist import Runtime
from rmsd.utils import get_logger

log = get_logger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")
DEEPSPEED_NAMES = ("zero2", "zero3", "zero3_offload")


@dataclass
class ExecConfig:
    """How a stage runs (not what it computes)."""

    deepspeed: str | None = None
    """None (plain / DDP), "zero2", "zero3" (config/deepspeed/<name>.json) or a JSON file path."""
    precision: str = "auto"
    """"auto": bf16 on CUDA, fp32 on CPU; "fp32"; "bf16" (CUDA only; CPU stays fp32)."""
    gradient_checkpointing: bool = False
    """Recompute activations in backward (CUDA only)."""
    compile: bool = False
    """torch.compile the language model's decoder layers, one compiled layer shared by all (CUDA only;
    sampling stays eager). 1.55x the plain loop against 1.29x without, one 4B Qwen3-VL SFT step on an
    H200 (benchmarks/README.md)."""
    micro_batch_size: int = 0
    """Sequences per forward/backward on each rank; 0 = the whole per-rank batch at once."""

    def validate(self, where: str) -> None:
        """Raise :class:`ConfigError` naming ``where`` for a bad value."""
        if self.precision not in PRECISIONS:
            raise ConfigError(f"{where}.precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.micro_batch_size < 0:
            raise ConfigError(f"{where}.micro_batch_size must be >= 0, got {self.micro_batch_size}")
        if self.deepspeed is not None and not isinstance(self.deepspeed, str):
            raise ConfigError(f"{where}.deepspeed must be null, 'zero2', 'zero3' or a JSON path")


def use_bf16(ex: ExecConfig, rt: Runtime) -> bool:
    """bf16 compute is used only on CUDA, when asked for or by default ("auto")."""
    return rt.cuda and ex.precision in ("auto", "bf16")


def autocast(ex: ExecConfig, rt: Runtime):
    """bf16 autocast on CUDA when enabled; a no-op context otherwise (CPU)."""
    if use_bf16(ex, rt):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def deepspeed_config_path(name: str) -> Path:
    """The JSON file for ``name`` ("zero2", "zero3" or a path).

    Raises:
        ConfigError: the file does not exist (names the places looked in).
    """
    if name in DEEPSPEED_NAMES:
        candidates = [Path.cwd() / "config" / "deepspeed" / f"{name}.json",
                      Path(__file__).resolve().parents[3] / "config" / "deepspeed" / f"{name}.json"]
    else:
        candidates = [Path(name)]
    for c in candidates:
        if c.is_file():
            return c
    raise ConfigError(f"deepspeed config {name!r} not found (looked in {[str(c) for c in candidates]})")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_module(module: torch.nn.Module, ex: ExecConfig, rt: Runtime) -> torch.nn.Module:
    """Move to the device and apply the CUDA-only knobs (gradient checkpointing, compile)."""
    module.to(rt.device)
    if rt.cuda and ex.gradient_checkpointing and hasattr(module, "gradient_checkpointing_enable"):
        module.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(module, "config"):
            module.config.use_cache = False
    if rt.cuda and ex.compile:
        compile_language_model(module)
    return module


def compile_language_model(module: torch.nn.Module) -> int:
    """``torch.compile`` the language model's decoder layers one by one (regional compilation).

    The layers are identical, so one compiled layer (forward and backward, dynamic sequence length)
    serves all of them: the first step compiles in seconds rather than the minutes a whole unrolled
    language model takes, and the rest of the model (vision tower, masks, DeepStack injection with
    data-dependent shapes) stays eager. A model without a ``language_model.layers`` list is
    compiled whole, as before. Returns the number of layers compiled (0: whole module).
    """
    base = module
    for name in ("model", "backbone"):  # ...ForConditionalGeneration / Discriminator
        if getattr(base, name, None) is not None:
            base = getattr(base, name)
            break
    lm = getattr(base, "language_model", None)
    layers = getattr(lm, "layers", None) if lm is not None else None
    if layers is None:
        (lm if lm is not None else module).compile(dynamic=True)
        return 0
    for layer in layers:
        layer.compile(dynamic=True)
    return len(layers)


def fused_adamw_ok(params: list[torch.Tensor], ex: ExecConfig, rt: Runtime) -> bool:
    """Use the fused (one-kernel) AdamW: plain/DDP runs on CUDA whose parameters all live there.

    DeepSpeed keeps the client optimizer's default (it swaps in its own flat partitions, possibly
    offloaded to the CPU); CPU runs keep the default for-each implementation, so their numbers do
    not change.
    """
    return (rt.cuda and not ex.deepspeed and bool(params)
            and all(p.is_cuda and p.is_floating_point() for p in params))


class Engine:
    """A module + AdamW, trained through a plain, DDP or DeepSpeed wrapper.

    Args:
        module: the model (moved to ``rt.device`` here).
        lr: initial learning rate (set per step with :meth:`set_lr`).
        weight_decay: AdamW weight decay.
        grad_clip: gradient-norm clip.
        rt: process layout.
        ex: execution knobs.
        micro_steps: backward passes per optimizer step (gradient accumulation; DeepSpeed needs it
            up front).
        batch_per_rank: examples per rank per step (DeepSpeed's bookkeeping only).
        name: for messages.
        prefix_lrs: ``{name prefix: lr}``: parameters whose name starts with a prefix form their
            own AdamW group at that learning rate (e.g. a fresh discriminator head); :meth:`set_lr`
            keeps each group's ratio to ``lr``.
    """

    def __init__(self, module: torch.nn.Module, lr: float, weight_decay: float, grad_clip: float,
                 rt: Runtime, ex: ExecConfig, micro_steps: int = 1, batch_per_rank: int = 1,
                 name: str = "model", prefix_lrs: dict[str, float] | None = None):
        self.rt, self.ex, self.name, self.grad_clip = rt, ex, name, grad_clip
        self.module = prepare_module(module, ex, rt)
        self.micro_steps = max(1, int(micro_steps))
        params = [p for p in self.module.parameters() if p.requires_grad]
        groups: list = params
        if prefix_lrs:
            named = [(n, p) for n, p in self.module.named_parameters() if p.requires_grad]
            special = {pre: [p for n, p in named if n.startswith(pre)] for pre in prefix_lrs}
            taken = {id(p) for ps in special.values() for p in ps}
            groups = [{"params": [p for _, p in named if id(p) not in taken], "lr_scale": 1.0}]
            groups += [{"params": ps, "lr": prefix_lrs[pre], "lr_scale": prefix_lrs[pre] / lr}
                       for pre, ps in special.items() if ps]
        self.optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay,
                                           **({"fused": True} if fused_adamw_ok(params, ex, rt) else {}))
        self.ds = None
        if ex.deepspeed:
            self._init_deepspeed(batch_per_rank)
            self.model = self.ds
        elif rt.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [rt.device.index] if rt.cuda else None
            self.model = DDP(self.module, device_ids=ids)
        else:
            self.model = self.module
        if rt.cuda:
            log.info("%s on %s: bf16=%s gradient_checkpointing=%s compile=%s fused_adamw=%s %s", name,
                     rt.device, use_bf16(ex, rt), ex.gradient_checkpointing, ex.compile,
                     bool(self.optimizer.defaults.get("fused")),
                     "deepspeed" if self.ds is not None else ("ddp" if rt.distributed else "single"))

    # -- setup -------------------------------------------------------------------------------
    def _init_deepspeed(self, batch_per_rank: int) -> None:
        if self.rt.world_size == 1:  # deepspeed wants a process group even for one process
            for k, v in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1")):
                os.environ.setdefault(k, v)
            import torch.distributed as tdist

            if not tdist.is_initialized():
                # this process hosts its own one-rank store: a fresh port, never an inherited
                # MASTER_PORT (a parent process may still be listening on it: EADDRINUSE)
                os.environ["MASTER_PORT"] = str(_free_port())
        import deepspeed

        path = deepspeed_config_path(self.ex.deepspeed)
        cfg = json.loads(path.read_text())
        bf16 = use_bf16(self.ex, self.rt)
        fill = {"train_micro_batch_size_per_gpu": max(1, batch_per_rank // self.micro_steps),
                "gradient_accumulation_steps": self.micro_steps,
                "gradient_clipping": self.grad_clip}
        for k, v in fill.items():
            if cfg.get(k, "auto") == "auto":
                cfg[k] = v
        cfg["train_batch_size"] = (cfg["train_micro_batch_size_per_gpu"] * cfg["gradient_accumulation_steps"]
                                   * self.rt.world_size)
        cfg["bf16"] = {"enabled": bf16}
        cfg.pop("fp16", None)
        cfg.setdefault("zero_allow_untested_optimizer", True)
        cfg.setdefault("steps_per_print", 10 ** 9)
        self.ds_config = cfg
        self.ds, _, _, _ = deepspeed.initialize(model=self.module, optimizer=self.optimizer, config=cfg)
        self.module = self.ds.module
        log.info("%s: DeepSpeed ZeRO-%s from %s (bf16=%s)", self.name,
                 cfg.get("zero_optimization", {}).get("stage", 0), path, bf16)

    @property
    def zero_stage(self) -> int:
        """ZeRO stage (0 without DeepSpeed)."""
        return int(self.ds.zero_optimization_stage()) if self.ds is not None else 0

    # -- training ----------------------------------------------------------------------------
    def autocast(self):
        """bf16 autocast for the plain/DDP paths on CUDA (DeepSpeed casts the model itself)."""
        if self.ds is not None:
            return contextlib.nullcontext()
        return autocast(self.ex, self.rt)

    def set_lr(self, lr: float) -> None:
        """Set the learning rate of every parameter group."""
        for g in self.optimizer.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)

    def train(self) -> None:
        self.module.train()

    def eval(self) -> None:
        self.module.eval()

    def no_sync(self, last: bool):
        """Skip the DDP gradient all-reduce on all but the ``last`` micro-step."""
        if self.ds is None and self.rt.distributed and not last:
            return self.model.no_sync()
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        """Backward of an already-scaled micro-step loss (no extra division by micro-steps).

        Under DeepSpeed each backward is followed by ``engine.step()``, as DeepSpeed requires: it
        only reduces gradients and applies the optimizer at the accumulation boundary (the last
        micro-step), so the update happens here, with the learning rate already set.
        """
        if self.ds is not None:
            self.ds.backward(loss, scale_wrt_gas=False)
            self.ds.step()
        else:
            loss.backward()

    def step(self) -> float | None:
        """Clip and apply the accumulated gradients; returns the gradient norm.

        Returns None (nothing applied, gradients cleared) when the norm is not finite; the caller
        raises or counts it. DeepSpeed clips and steps inside :meth:`backward`; its norm is only
        read afterwards, and a non-finite one raises (the update cannot be undone).
        """
        if self.ds is not None:  # already stepped in the last backward()
            norm = self.ds.get_global_grad_norm()
            norm_f = float(norm) if norm is not None else float("nan")
            if norm is not None and not math.isfinite(norm_f):
                raise TrainingError(f"{self.name}: non-finite gradient norm under DeepSpeed; the step "
                                    "was already applied, so it cannot be skipped")
            return norm_f
        norm = torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.grad_clip)
        norm_f = float(norm)
        if not math.isfinite(norm_f):
            self.zero_grad()
            return None
        self.optimizer.step()
        self.zero_grad()
        return norm_f

    def zero_grad(self) -> None:
        if self.ds is not None:
            self.ds.zero_grad()
        else:
            self.optimizer.zero_grad(set_to_none=True)

    # -- state -------------------------------------------------------------------------------
    @property
    def sharded_optimizer(self) -> bool:
        """True when each rank holds only its own part of the optimizer state (ZeRO >= 1)."""
        return self.zero_stage >= 1

    def optimizer_state(self) -> dict:
        """This rank's optimizer state: a ``torch.load(weights_only=True)``-safe dict of tensors.

        Plain/DDP: ``AdamW.state_dict()``. ZeRO: the client AdamW's state over this rank's flat
        fp32 partitions plus those master partitions themselves.
        """
        if self.ds is None or self.zero_stage == 0:
            return {"adamw": self.optimizer.state_dict()}
        with self._zero3_param_groups():
            adamw = self.optimizer.state_dict()
        return {"adamw": adamw, "fp32_partitions": [t.detach().clone().cpu() for t in self._fp32_partitions()]}

    def load_optimizer_state(self, state: dict) -> None:
        """Restore what :meth:`optimizer_state` returned (same world size and ZeRO stage)."""
        with self._zero3_param_groups():
            self.optimizer.load_state_dict(state["adamw"])
        if "fp32_partitions" in state:
            parts = self._fp32_partitions()
            if len(parts) != len(state["fp32_partitions"]):
                raise ConfigError(f"{self.name}: checkpointed ZeRO partitions do not match this run "
                                  "(resume with the same number of processes and DeepSpeed config)")
            with torch.no_grad():
                for dst, src in zip(parts, state["fp32_partitions"]):
                    if dst.shape != src.shape:
                        raise ConfigError(f"{self.name}: ZeRO partition shape {tuple(src.shape)} in the "
                                          f"checkpoint vs {tuple(dst.shape)} here (different world size?)")
                    dst.copy_(src.to(dst.device))
            self._refresh_from_fp32()

    @contextlib.contextmanager
    def _zero3_param_groups(self):
        """ZeRO-3 keeps the client optimizer's param groups empty between steps; fill them with the
        flat fp32 partitions while its state is read or written (as DeepSpeed's own checkpointing does)."""
        opt = self.ds.optimizer if self.zero_stage == 3 else None
        if opt is None:
            yield
            return
        opt._set_fp32_optimizer_param_groups()
        try:
            yield
        finally:
            opt._clear_fp32_optimizer_param_groups()

    def _fp32_partitions(self) -> list[torch.Tensor]:
        opt = self.ds.optimizer
        if hasattr(opt, "single_partition_of_fp32_groups"):  # ZeRO-1/2
            return list(opt.single_partition_of_fp32_groups)
        return list(opt.fp32_partitioned_groups_flat)  # ZeRO-3

    def _refresh_from_fp32(self) -> None:
        """Copy restored fp32 master partitions into the (possibly bf16) model parameters."""
        opt = self.ds.optimizer
        with torch.no_grad():
            if hasattr(opt, "update_lp_params"):  # ZeRO-1/2: copy back and all-gather
                opt.update_lp_params()
            else:  # ZeRO-3: parameters are views of the flat low-precision partitions
                for lp, fp32 in zip(opt.fp16_partitioned_groups_flat, opt.fp32_partitioned_groups_flat):
                    if lp is not None and lp.data_ptr() != fp32.data_ptr():
                        lp.data.copy_(fp32.data)

    @contextlib.contextmanager
    def full_parameters(self):
        """Inside, every parameter of :attr:`module` is whole on every rank (gathers ZeRO-3 shards)."""
        if self.zero_stage == 3:
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(self.module.parameters()), modifier_rank=None):
                yield
        else:
            yield

    def generation_context(self):
        """Context for sampling from :attr:`module` (ZeRO-3 gathers per forward on its own).

        With ``compile`` on, sampling runs eager: the compiled layers are built for training
        forwards (no KV cache); decoding with a cache would recompile every layer.
        """
        if not (self.rt.cuda and self.ex.compile):
            return self.autocast()
        stack = contextlib.ExitStack()
        stack.enter_context(self.autocast())
        stack.enter_context(torch.compiler.set_stance("force_eager"))
        return stack
