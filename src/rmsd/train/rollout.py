"""Stage-2 rollout engines: who samples the N rollouts of each prompt.

``stage2.rollout_engine`` picks one:

* ``hf`` (default, the CPU path and the reference in tests): ``model.generate`` on the policy
  itself (:func:`rmsd.models.inputs.generate`), one prefill shared by the N rollouts of a prompt.
  Exactly the call Stage 2 always made; under ZeRO-3 it runs with ``synced_gpus``.
* ``vllm``: a vLLM ``LLM`` colocated with the policy in the training process (one engine per
  rank, ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` so the engine core lives in this process and
  ``collective_rpc`` calls reach the worker without serialisation). It is built with
  ``enable_sleep_mode=True`` and ``load_format="dummy"`` (its weights only ever come from the
  policy) and sleeps (``sleep(level=1)``: weights to host memory, KV cache dropped) whenever the
  trainer runs, so the update passes get the GPU memory back. Before each generation it wakes
  up and, when the policy changed since the last push, receives the policy's weights:
  ``llm.collective_rpc(f)`` with ``f(worker)`` calling
  ``worker.model_runner.model.load_weights(...)`` on the policy's parameters cast to bf16 (under
  ZeRO-3 inside :meth:`rmsd.train.engine.Engine.full_parameters`, a gathered full state), then
  the prefix cache is reset (cached KV blocks were computed with the old weights). The video goes
  in as ``(frames, metadata)`` (Qwen3-VL needs the metadata for its timestamps), with the same
  chat text the policy's encoder builds; each prompt's request carries ``n = N``, the rollout
  temperature and top-p, and a seed derived from (run seed, rank, step, prompt index), so the
  run's other random streams are not touched. Outputs come back in the ``hf`` format (token ids
  with the end-of-turn token when emitted, text decoded by the policy's tokenizer). The engine's
  own log-probs are never used: Stage 2 recomputes every log-prob with the policy and reference.

Both report per call: ``sync_seconds`` (weight push; 0 for ``hf``), ``wake_seconds`` and
``sleep_seconds`` (vLLM memory hand-over), ``gen_tokens`` (generated tokens) and, for vLLM,
``prompt_mismatch`` (requests whose engine-side prompt tokens differ from the policy's: the
rollout was then conditioned on another prompt than the one its log-probs are computed on).

Ran with vLLM 0.26 on an H200 (benchmarks/stage2_h200.py, one process). The calls used
(``LLM.generate``, ``sleep``/``wake_up``, ``collective_rpc`` with a callable, ``reset_prefix_cache``,
``SamplingParams(logit_bias=..., stop_token_ids=...)``) are vLLM's documented offline API; 0.33 was
not run. Open: on that run the engine's greedy continuation after a weight push did not equal the
policy's transformers continuation (benchmarks/README.md), so rollouts from this engine are not
yet shown to follow the policy's distribution; ``hf`` stays the default.

Dimension names: B prompts, N rollouts per prompt, F frames, H/W pixels.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import torch

from rmsd.errors import ConfigError
from rmsd.models.inputs import VideoPromptEncoder, generate
from rmsd.utils import get_logger

log = get_logger(__name__)

ROLLOUT_ENGINES = ("hf", "vllm")

#: Settings of the ``vllm`` rollout engine (``stage2.vllm``) and their defaults.
VLLM_DEFAULTS: dict = {
    "gpu_memory_utilization": 0.3,
    "max_model_len": 8192,
    "max_num_seqs": 256,
    "enforce_eager": False,
    "sleep_level": 1,
    "engine_args": None,
}


def check_vllm_settings(cfg: dict | None, where: str = "stage2.vllm") -> dict:
    """Complete and validate the ``vllm`` rollout settings (keys of :data:`VLLM_DEFAULTS`).

    ``gpu_memory_utilization`` is the share of the GPU the engine takes while awake (weights + KV
    cache), next to the resident training state; at the 4B shape 0.3 of an H200 holds 16 prompts x
    8 rollouts x (1.75K prompt + 1K new) tokens (the prompt's KV blocks are shared by its N
    rollouts: (16 x 1.75K + 128 x 1K) x 144 KiB = 22 GiB).

    Raises:
        ConfigError: an unknown key or a value out of range, naming ``where``.
    """
    cfg = dict(cfg or {})
    if bad := sorted(set(cfg) - set(VLLM_DEFAULTS)):
        raise ConfigError(f"{where}: unknown key(s) {bad}; valid: {sorted(VLLM_DEFAULTS)}")
    out = {**VLLM_DEFAULTS, **cfg}
    g = out["gpu_memory_utilization"]
    if not isinstance(g, (int, float)) or not 0 < g < 1:
        raise ConfigError(f"{where}.gpu_memory_utilization must be in (0, 1), got {g!r}")
    if not isinstance(out["max_model_len"], int) or out["max_model_len"] < 256:
        raise ConfigError(f"{where}.max_model_len must be an integer >= 256, got {out['max_model_len']!r}")
    if not isinstance(out["max_num_seqs"], int) or out["max_num_seqs"] < 1:
        raise ConfigError(f"{where}.max_num_seqs must be an integer >= 1, got {out['max_num_seqs']!r}")
    if out["sleep_level"] not in (0, 1, 2):
        raise ConfigError(f"{where}.sleep_level must be 0 (never sleep), 1 or 2, got {out['sleep_level']!r}")
    if out["engine_args"] is not None and not isinstance(out["engine_args"], dict):
        raise ConfigError(f"{where}.engine_args must be a mapping or null, got {out['engine_args']!r}")
    return out


def request_seed(seed: int, rank: int, step: int, j: int) -> int:
    """The vLLM seed of prompt ``j`` of ``step`` on ``rank``: a 31-bit hash of the four numbers
    (NumPy ``SeedSequence``), so engine requests are reproducible and draw nothing from the
    trainer's own random streams.

    >>> request_seed(0, 0, 0, 0) == request_seed(0, 0, 0, 0), request_seed(0, 0, 0, 0) != request_seed(0, 0, 0, 1)
    (True, True)
    """
    return int(np.random.SeedSequence([int(seed), int(rank), int(step), int(j)]).generate_state(1)[0] >> 1)


class RolloutEngine:
    """Samples ``n`` rollouts per prompt; the same output format for every engine.

    :meth:`generate` returns, per prompt, ``n`` dicts ``{"text", "ids", "finish_reason",
    "n_tokens"}`` (as :func:`rmsd.models.inputs.generate`); :attr:`last` holds the call's
    timings and counters.
    """

    name = "base"

    def __init__(self):
        self.last: dict[str, float] = {}

    def generate(self, pol, encoder: VideoPromptEncoder, examples: list, *, n: int, max_new_tokens: int,
                 temperature: float, top_p: float, step: int, seed: int, synced_gpus: bool = False,
                 batch_size: int = 0) -> list[list[dict]]:
        """``n`` rollouts for each of ``examples`` (Stage-2 examples: ``prompt``, ``item``, and for
        vLLM ``frames`` / ``record``) from the policy ``pol`` (an :class:`~rmsd.train.engine.Engine`).
        ``batch_size``: prompts per ``generate`` call for ``hf`` (0 = all; bounds its KV cache);
        vLLM schedules its own batches."""
        raise NotImplementedError

    def policy_updated(self) -> None:
        """Called after each optimizer step of the policy (its weights changed)."""

    def close(self) -> None:
        """Release the engine (nothing for ``hf``)."""


class HFRollout(RolloutEngine):
    """Rollouts from ``model.generate`` on the policy itself (the reference path)."""

    name = "hf"

    def generate(self, pol, encoder, examples, *, n, max_new_tokens, temperature, top_p, step, seed,
                 synced_gpus=False, batch_size=0):
        size = len(examples) if batch_size <= 0 else min(batch_size, len(examples))
        groups = []
        with pol.generation_context():
            for i in range(0, len(examples), size):
                groups += generate(pol.module, encoder, [e.prompt for e in examples[i:i + size]], n=n,
                                   do_sample=True, max_new_tokens=max_new_tokens, temperature=temperature,
                                   top_p=top_p, top_k=0, device=pol.rt.device, synced_gpus=synced_gpus)
        self.last = {"sync_seconds": 0.0, "wake_seconds": 0.0, "sleep_seconds": 0.0,
                     "gen_tokens": float(sum(g["n_tokens"] for grp in groups for g in grp))}
        return groups


def _load_weights_rpc(weights):
    """``collective_rpc`` target: load ``weights`` ((name, tensor) pairs) into the worker's model."""

    def fn(worker):
        worker.model_runner.model.load_weights(weights)
        return True

    return fn


def policy_weights(module: torch.nn.Module, dtype: torch.dtype = torch.bfloat16):
    """(name, tensor) pairs of ``module``'s ``state_dict`` (parameters and persistent buffers;
    floating tensors cast to ``dtype``, one at a time as the engine consumes them). A tied weight
    appears under each of its names (``lm_head.weight`` beside the embedding), as in a checkpoint:
    vLLM skips it when its model ties them and loads it when it does not."""
    for name, t in module.state_dict().items():
        yield name, (t.detach().to(dtype) if t.is_floating_point() else t.detach())


def video_metadata_dict(encoder: VideoPromptEncoder, frames: np.ndarray, record: dict | None) -> dict:
    """The engine's video metadata for ``frames`` (F, H, W, 3): the same metadata the policy's
    encoder gives its processor (:meth:`VideoPromptEncoder.video_metadata` of the item's
    frame-manifest record), as the dict vLLM takes, plus ``do_sample_frames: False`` (the frames
    are already sampled)."""
    md = encoder.video_metadata(np.asarray(frames), record)
    out = {k: getattr(md, k) for k in ("fps", "frames_indices", "total_num_frames", "duration",
                                       "width", "height") if getattr(md, k, None) is not None}
    out["frames_indices"] = list(out.get("frames_indices", range(len(frames))))
    out["do_sample_frames"] = False
    return out


class VLLMRollout(RolloutEngine):
    """Rollouts from a vLLM engine colocated with the policy (see the module docstring).

    Args:
        llm: a ``vllm.LLM`` built with ``enable_sleep_mode=True`` (or any object with its
            ``generate``, ``sleep``, ``wake_up``, ``collective_rpc``, ``reset_prefix_cache``).
        encoder: the policy's prompt encoder (chat text, tokenizer, end-of-turn id).
        sleep_level: 1 or 2 (``llm.sleep(level=...)`` between generations) or 0 (never sleep).
        sampling_params_cls: vLLM's ``SamplingParams`` (injectable for tests).
        asleep: whether ``llm`` is asleep now.
    """

    name = "vllm"

    def __init__(self, llm, encoder: VideoPromptEncoder, *, sleep_level: int = 1, sampling_params_cls=None,
                 asleep: bool = False):
        super().__init__()
        self.llm, self.encoder, self.sleep_level = llm, encoder, int(sleep_level)
        if sampling_params_cls is None:
            from vllm import SamplingParams as sampling_params_cls
        self.SamplingParams = sampling_params_cls
        self.asleep = asleep
        self.stale = True  # the engine holds no policy weights yet
        self.n_pushes = 0

    @classmethod
    def build(cls, model_path: str, encoder: VideoPromptEncoder, settings: dict | None, seed: int,
              device: torch.device | None = None) -> "VLLMRollout":
        """Start a colocated engine for the model in ``model_path`` (config and processor files;
        weights are not read: ``load_format="dummy"``, the policy pushes its own) and put it to
        sleep.

        Raises:
            ConfigError: vLLM is not importable, or bad ``settings``.
        """
        s = check_vllm_settings(settings)
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        if os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] != "0":
            raise ConfigError("stage2.rollout_engine vllm needs the engine in the training process: "
                              "unset VLLM_ENABLE_V1_MULTIPROCESSING or set it to 0")
        try:
            import vllm
        except ImportError as e:
            raise ConfigError(f"stage2.rollout_engine 'vllm' needs vLLM in the training environment ({e}); "
                              "install it there or use rollout_engine: hf") from None
        if device is not None and device.type == "cuda" and device.index is not None:
            torch.cuda.set_device(device)
        kw = dict(model=str(model_path), load_format="dummy", enable_sleep_mode=s["sleep_level"] > 0,
                  dtype="bfloat16", gpu_memory_utilization=float(s["gpu_memory_utilization"]),
                  max_model_len=int(s["max_model_len"]), max_num_seqs=int(s["max_num_seqs"]),
                  enforce_eager=bool(s["enforce_eager"]), limit_mm_per_prompt={"image": 0, "video": 1},
                  seed=int(seed))
        if torch.distributed.is_available() and torch.distributed.is_initialized() \
                and torch.distributed.get_world_size() > 1:
            # one engine per rank inside the trainer's process group (TRL's colocate mode); not yet
            # run here: only the one-process path was measured
            kw["distributed_executor_backend"] = "external_launcher"
        kw.update(s["engine_args"] or {})
        t0 = time.perf_counter()
        llm = vllm.LLM(**kw)
        log.info("stage2: vllm %s rollout engine up in %.1f s (%s)", getattr(vllm, "__version__", "?"),
                 time.perf_counter() - t0, {k: v for k, v in kw.items() if k != "model"})
        eng = cls(llm, encoder, sleep_level=s["sleep_level"], sampling_params_cls=vllm.SamplingParams)
        eng._sleep()
        return eng

    # -- memory hand-over ----------------------------------------------------------------------
    def _sleep(self) -> float:
        if self.sleep_level == 0 or self.asleep:
            return 0.0
        t = time.perf_counter()
        self.llm.sleep(level=self.sleep_level)
        self.asleep = True
        return time.perf_counter() - t

    def _wake(self) -> float:
        if not self.asleep:
            return 0.0
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # hand the trainer's cached blocks to the engine
        t = time.perf_counter()
        self.llm.wake_up()
        self.asleep = False
        return time.perf_counter() - t

    def policy_updated(self) -> None:
        self.stale = True

    def push_weights(self, pol) -> float:
        """Load the policy's current weights (bf16) into the engine; returns the seconds taken.

        ``pol`` is the policy's :class:`~rmsd.train.engine.Engine`; under ZeRO-3 its parameters are
        gathered whole for the push (every rank takes part: each feeds its own engine)."""
        t = time.perf_counter()
        with torch.no_grad(), pol.full_parameters():
            self.llm.collective_rpc(_load_weights_rpc(policy_weights(pol.module)))
        if hasattr(self.llm, "reset_prefix_cache"):
            self.llm.reset_prefix_cache()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.stale = False
        self.n_pushes += 1
        return time.perf_counter() - t

    # -- requests ------------------------------------------------------------------------------
    def request(self, example) -> dict:
        """The engine prompt of one Stage-2 example: the policy encoder's chat text and the video
        as ``(frames uint8 (F, H, W, 3), metadata)``.

        Raises:
            ConfigError: the example carries no frames (``RLExample.frames``).
        """
        frames = getattr(example, "frames", None)
        if frames is None:
            raise ConfigError(f"stage2 vllm rollouts: item {example.item.get('id')!r} has no frames "
                              "attached (RLExample.frames); the engine needs the raw video")
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        md = video_metadata_dict(self.encoder, frames, getattr(example, "record", None))
        return {"prompt": self.encoder.prompt_text(example.item), "multi_modal_data": {"video": (frames, md)}}

    def sampling_params(self, n: int, max_new_tokens: int, temperature: float, top_p: float, seed: int):
        """``SamplingParams`` of one prompt: ``n`` rollouts, the rollout temperature / top-p, no top-k,
        stop at the end-of-turn token, the special tokens ``generate`` suppresses biased out
        (-100, vLLM's bound), the engine's own log-probs not requested."""
        return self.SamplingParams(n=int(n), temperature=float(temperature), top_p=float(top_p),
                                   max_tokens=int(max_new_tokens), seed=int(seed),
                                   stop_token_ids=[self.encoder.eos_id],
                                   logit_bias={int(t): -100.0 for t in self.encoder.suppress_ids},
                                   skip_special_tokens=True)

    def build_requests(self, examples: list, *, n: int, max_new_tokens: int, temperature: float,
                       top_p: float, step: int, seed: int, rank: int = 0) -> tuple[list[dict], list]:
        """One request and one ``SamplingParams`` per example (seed: :func:`request_seed`)."""
        reqs = [self.request(e) for e in examples]
        sps = [self.sampling_params(n, max_new_tokens, temperature, top_p, request_seed(seed, rank, step, j))
               for j in range(len(examples))]
        return reqs, sps

    def to_groups(self, outputs, examples: list) -> tuple[list[list[dict]], int]:
        """Engine outputs in the ``hf`` format; also the number of requests whose engine-side
        prompt tokens differ from the policy's."""
        eos, tok = self.encoder.eos_id, self.encoder.tokenizer
        groups, mismatch = [], 0
        for r, e in zip(outputs, examples):
            pids = getattr(r, "prompt_token_ids", None)
            if pids is not None and list(pids) != e.prompt.prompt_ids.tolist():
                mismatch += 1
            grp = []
            for o in r.outputs:
                ids = [int(t) for t in o.token_ids]
                if eos in ids:
                    ids = ids[: ids.index(eos) + 1]
                    finish = "stop"
                elif o.finish_reason == "stop":  # stopped on the end-of-turn id without returning it
                    ids.append(eos)
                    finish = "stop"
                else:
                    finish = "length"
                grp.append({"text": tok.decode(ids, skip_special_tokens=True), "ids": ids,
                            "finish_reason": finish, "n_tokens": len(ids)})
            groups.append(grp)
        return groups, mismatch

    def generate(self, pol, encoder, examples, *, n, max_new_tokens, temperature, top_p, step, seed,
                 synced_gpus=False, batch_size=0):
        rank = pol.rt.rank
        reqs, sps = self.build_requests(examples, n=n, max_new_tokens=max_new_tokens, temperature=temperature,
                                        top_p=top_p, step=step, seed=seed, rank=rank)
        wake = self._wake()
        try:
            sync = self.push_weights(pol) if self.stale else 0.0
            outs = self.llm.generate(reqs, sps, use_tqdm=False)
        finally:  # hand the memory back to the trainer even when generation failed
            slp = self._sleep()
        groups, mismatch = self.to_groups(outs, examples)
        if mismatch:
            log.warning("stage2 step %d: %d of %d vLLM prompts differ from the policy's prompt tokens",
                        step, mismatch, len(examples))
        self.last = {"sync_seconds": sync, "wake_seconds": wake, "sleep_seconds": slp,
                     "gen_tokens": float(sum(g["n_tokens"] for grp in groups for g in grp)),
                     "prompt_mismatch": float(mismatch)}
        return groups

    def close(self) -> None:
        self.llm = None


def build_rollout_engine(name: str, *, model_path: str | None = None, encoder: VideoPromptEncoder | None = None,
                         settings: dict | None = None, seed: int = 0, device=None) -> RolloutEngine:
    """The rollout engine ``name`` (``hf`` | ``vllm``).

    Raises:
        ConfigError: an unknown name, or ``vllm`` without a model directory.
    """
    if name not in ROLLOUT_ENGINES:
        raise ConfigError(f"stage2.rollout_engine must be one of {ROLLOUT_ENGINES}, got {name!r}")
    if name == "hf":
        return HFRollout()
    if model_path is None or encoder is None:
        raise ConfigError("stage2.rollout_engine vllm needs the policy's model directory and encoder")
    return VLLMRollout.build(model_path, encoder, settings, seed, device)


__all__: list[Any] = ["ROLLOUT_ENGINES", "VLLM_DEFAULTS", "RolloutEngine", "HFRollout", "VLLMRollout",
                      "build_rollout_engine", "check_vllm_settings", "request_seed", "policy_weights"]
