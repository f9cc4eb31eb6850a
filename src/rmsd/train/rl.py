"""Stage 2: adversarial RL distillation (paper section 3.8, Stage 2).

Per step, for each of B prompts: N student rollouts; each rollout S_i is paired with a pool response
T_m(i), m(i) ~ p (section 3.6); a discriminator (scalar value head on the last token of a model
initialised from the Stage-1 checkpoint) scores both and is trained online with the
quality-weighted Bradley-Terry loss ``w_i * -log sigmoid(D(T_m(i)) - D(S_i))`` (``w_i = q_m(i)``,
1 for open-ended pairs; ``disc_weight: uniform`` sets every w_i = 1); the composite
reward ``R = alpha * D~ + beta * R_outer + eta * R_task + delta * R_content`` (D~ =
sigmoid((D(S) - D(T_m)) / d_temperature) by default; sigmoid(D(S)) and the raw D(S) as options) is group-normalised over the N
rollouts of a prompt (GRPO) and optimised with a PPO-clipped surrogate plus a low-variance KL
penalty to the frozen Stage-1 reference. The first ``disc_warmup_steps`` steps train only the
discriminator. ``mode="rule"`` drops the discriminator (alpha = 0): the "original SFT+RL" baseline.

Every step logs each reward component, the discriminator loss and accuracy (share of pairs with
D(T) > D(S)), the spread of D among the N rollouts of a prompt (``d_student_group_std``,
``d_score_group_std``: what the group-normalised advantages can use), KL, clip fraction, response length and learning rates (JSONL, TensorBoard, progress
bar), and where the step's time went: ``gen_seconds`` (sampling the rollouts), ``sync_seconds``
(pushing the policy's weights into the rollout engine), ``swap_seconds`` (the engine's sleep /
wake-up memory hand-over), ``disc_seconds``, ``policy_seconds``, ``step_seconds``, ``gen_share``
(gen / step), ``gen_tokens`` and ``gen_tokens_per_s`` (generated tokens / gen seconds) and
``rollouts_per_s`` (rollouts / step seconds), measured on rank 0 with the device synchronised.
Rollouts come from ``model.generate`` on the policy or from a colocated vLLM engine
(:mod:`rmsd.train.rollout`); either way every log-probability is recomputed by the policy and the
reference, at the rollout temperature. Prompts come from seeded epoch permutations, each rank taking its slice of
every step's prompts; other logged values are means over ranks. Log-probabilities project onto the vocabulary only over the response window
(:func:`rmsd.train.losses.response_logprobs`).

Dimension names: B prompts per step, N rollouts per prompt, M = B*N pairs, S sequence (tokens),
H hidden.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from rmsd.errors import ConfigError, TrainingError
from rmsd.errors import check_known_keys
from rmsd.models.inputs import EncodedPrompt, VideoPromptEncoder, generate, model_kwargs
from rmsd.tasks import is_closed
from rmsd.train.checkpoint import capture_rng, restore_rng
from rmsd.train import preempt
from rmsd.train.context import StepLogger, TrainContext, run_step_hooks
from rmsd.train.dist import Runtime
from rmsd.train.engine import Engine, ExecConfig, use_bf16
from rmsd.train.loop import ON_NAN, RANK_SEED_STRIDE, collate_to, nonfinite, per_rank, to_device
from rmsd.train.data import EpochBatchSampler, make_loader, steps_for
from rmsd.train.losses import response_logprobs
from rmsd.train.rollout import HFRollout, RolloutEngine
from rmsd.utils import get_logger

log = get_logger(__name__)

D_SCORES = ("sigmoid_diff", "sigmoid", "raw")
DISC_WEIGHTS = ("quality", "uniform")
HEAD_INITS = ("normal", "zeros")
STAGE2_MODES = ("adversarial", "rule")
ON_EMPTY_POOL = ("fail", "skip")


@dataclass
class RLConfig:
    """Stage-2 hyper-parameters (paper section 3.10; defaults for what the paper leaves open)."""

    steps: int = 40
    """Policy-update steps after the discriminator warm-up, when ``epochs`` is null."""
    epochs: float | None = None
    """Passes over the Stage-2 prompts; sets the total steps (warm-up included) to
    ceil(epochs x prompts / prompts_per_step) (paper: 1 epoch of 60K at 128 = 469 steps)."""
    num_workers: int = 0
    """DataLoader worker processes reading and encoding prompts (0: in the training process)."""
    prompts_per_step: int = 4
    """B: prompts per step over all ranks (each rank takes B / world_size)."""
    rollouts: int = 8
    """N: student rollouts per prompt (paper: 8)."""
    lr: float = 1e-4
    """Policy AdamW learning rate, constant (paper: 1e-6 at 4B scale)."""
    disc_lr: float = 1e-3
    """Discriminator AdamW learning rate (paper default 1e-6 at 4B scale)."""
    kl_coef: float = 0.001
    """gamma: weight of the low_var_kl penalty to the reference (GAD: 0.001)."""
    clip_eps: float = 0.2
    """PPO clip range epsilon."""
    ppo_epochs: int = 1
    """Passes over each rollout batch (the clip only binds for > 1)."""
    temperature: float = 1.0
    """Rollout sampling temperature; the policy and reference log-probs are taken at it too
    (softmax(logits / T), the distribution the rollouts were drawn from)."""
    max_new_tokens: int = 32
    """Rollout length limit in tokens."""
    disc_warmup_steps: int = 10
    """Discriminator-only steps before any policy update (GAD critic_warmup)."""
    grad_clip: float = 0.2
    """Gradient-norm clip of the policy and of the discriminator (GAD: 0.2 for both)."""
    alpha: float = 0.4
    """Weight of the discriminator score D."""
    beta: float = 0.1
    """Weight of R_outer (outer format validity)."""
    eta: float = 0.1
    """Weight of R_task (task format validity)."""
    delta: float = 0.4
    """Weight of R_content (ground-truth metric, closed-ended only)."""
    d_score: str = "sigmoid_diff"
    """"sigmoid_diff": sigmoid((D(S) - D(T_m)) / d_temperature) in [0, 1]; "sigmoid":
    sigmoid(D(S) / d_temperature); "raw": D(S) (GAD, relies on group normalisation)."""
    d_temperature: float = 1.0
    """Scale dividing D inside the sigmoid squashing (smaller: a sharper D term)."""
    disc_weight: str = "quality"
    """Weight of a pair in the discriminator loss: "quality" = q of the matched teacher response
    (closed-ended; 1 for open-ended, paper 3.8 step 4), "uniform" = 1 for every pair (ablation rows
    A-C, which have no quality weighting)."""
    disc_head_init: str = "normal"
    """Discriminator head initialisation: "normal" (std ``disc_head_std``, bias 0; verl/GAD's
    critic head) or "zeros" (every score starts at 0; the head then learns only from its bias
    and the raw hidden state at ``disc_lr``)."""
    disc_head_std: float = 0.02
    """Standard deviation of the "normal" head initialisation (Qwen initializer_range)."""
    disc_head_lr: float | None = None
    """Learning rate of the head alone (null: ``disc_lr``); a fresh head next to a pretrained
    backbone usually needs a larger one."""
    on_nan: str = "fail"
    """Non-finite loss, score or gradient: "fail" raises, "skip" skips the update and counts it."""
    on_empty_pool: str = "fail"
    """An example with no usable pool response (adversarial mode): "fail" raises, "skip" drops it
    and counts it."""
    checkpoint_every: int = 10
    """Write a resumable checkpoint every this many Stage-2 steps (warm-up included; 0: never)."""
    deepspeed: str | None = None
    """None: plain / DDP; "zero2", "zero3" or a DeepSpeed JSON path (policy and discriminator)."""
    precision: str = "auto"
    """"auto" = bf16 on CUDA, fp32 on CPU; "fp32"; "bf16" (CUDA only)."""
    gradient_checkpointing: bool = False
    """Recompute activations in backward (CUDA only)."""
    compile: bool = False
    """torch.compile the language models (CUDA only)."""
    micro_batch_size: int = 0
    """Sequences per forward/backward on a rank (policy: rollouts; discriminator: pairs); 0 = all."""
    rollout_batch_size: int = 0
    """Prompts per generate call on a rank (each with its N rollouts; bounds the KV cache: at 4B,
    2.7K tokens, 147 KB a token, 8 rollouts of one prompt hold 3.2 GB); 0 = all of the step's."""
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> "RLConfig":
        """Strict constructor: unknown keys or invalid choices raise :class:`ConfigError`."""
        check_known_keys(cls, d, "RL", exclude=frozenset({"extra"}))
        cfg = cls(**d)
        if cfg.disc_weight not in DISC_WEIGHTS:
            raise ConfigError(f"rl.disc_weight must be one of {DISC_WEIGHTS}, got {cfg.disc_weight!r}")
        if cfg.disc_head_init not in HEAD_INITS:
            raise ConfigError(f"rl.disc_head_init must be one of {HEAD_INITS}, got {cfg.disc_head_init!r}")
        if not cfg.d_temperature > 0:
            raise ConfigError(f"rl.d_temperature must be > 0, got {cfg.d_temperature}")
        if cfg.epochs is not None and not cfg.epochs > 0:
            raise ConfigError(f"rl.epochs must be > 0 or null, got {cfg.epochs}")
        if cfg.num_workers < 0:
            raise ConfigError(f"rl.num_workers must be >= 0, got {cfg.num_workers}")
        if cfg.rollout_batch_size < 0:
            raise ConfigError(f"rl.rollout_batch_size must be >= 0, got {cfg.rollout_batch_size}")
        if cfg.d_score not in D_SCORES:
            raise ConfigError(f"rl.d_score must be one of {D_SCORES}, got {cfg.d_score!r}")
        if cfg.on_nan not in ON_NAN:
            raise ConfigError(f"rl.on_nan must be 'fail' or 'skip', got {cfg.on_nan!r}")
        if cfg.on_empty_pool not in ON_EMPTY_POOL:
            raise ConfigError(f"rl.on_empty_pool must be 'fail' or 'skip', got {cfg.on_empty_pool!r}")
        if cfg.rollouts < 1 or cfg.prompts_per_step < 1:
            raise ConfigError("rl.rollouts and rl.prompts_per_step must be >= 1")
        if cfg.checkpoint_every < 0:
            raise ConfigError(f"rl.checkpoint_every must be >= 0, got {cfg.checkpoint_every}")
        cfg.exec_config().validate("rl")
        return cfg

    def exec_config(self) -> ExecConfig:
        """The execution knobs of this stage."""
        return ExecConfig(deepspeed=self.deepspeed, precision=self.precision,
                          gradient_checkpointing=self.gradient_checkpointing, compile=self.compile,
                          micro_batch_size=self.micro_batch_size)


class Discriminator(torch.nn.Module):
    """Critic-as-discriminator: a scalar head on the last token's hidden state (GAD, section 3.12).

    Args:
        backbone: the inner ``Qwen*VLModel`` (``ForConditionalGeneration.model``) of a copy of the
            Stage-1 checkpoint.
        hidden: its hidden size H.
        init: "normal" (weight ~ N(0, std^2), bias 0) or "zeros".
        std: standard deviation of the "normal" initialisation.
        seed: seeds the head's initialisation (independent of the global RNG stream).
    """

    def __init__(self, backbone: torch.nn.Module, hidden: int, init: str = "normal", std: float = 0.02,
                 seed: int = 0):
        super().__init__()
        self.backbone = backbone
        self.head = torch.nn.Linear(hidden, 1)
        torch.nn.init.zeros_(self.head.bias)
        if init == "zeros":
            torch.nn.init.zeros_(self.head.weight)
        elif init == "normal":
            g = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                self.head.weight.copy_(torch.randn(self.head.weight.shape, generator=g) * std)
        else:
            raise ConfigError(f"discriminator head init must be one of {HEAD_INITS}, got {init!r}")

    def gradient_checkpointing_enable(self, **kw) -> None:
        """Recompute the backbone's activations in backward (``gradient_checkpointing: true``)."""
        self.backbone.gradient_checkpointing_enable(**kw)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scores (B,) for a left-padded batch: the head applied at the last position (float32)."""
        h = self.backbone(**model_kwargs(batch), use_cache=False).last_hidden_state  # (B, S, H)
        return self.head(h[:, -1]).squeeze(-1).float()


def bt_loss(d_teacher: torch.Tensor, d_student: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Quality-weighted Bradley-Terry loss, paper section 3.8 step 4.

    ``L_D = mean_i w_i * -log sigmoid(D(T_m(i)) - D(S_i))``; all inputs (M,).

    >>> round(bt_loss(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([1.0])).item(), 4)
    0.6931
    """
    return (weight * -F.logsigmoid(d_teacher - d_student)).mean()


def composite_reward(d: np.ndarray, r_outer: np.ndarray, r_task: np.ndarray, r_content: np.ndarray,
                     alpha: float, beta: float, eta: float, delta: float) -> np.ndarray:
    """``R = alpha*D + beta*R_outer + eta*R_task + delta*R_content`` (paper section 3.8 step 5).

    >>> composite_reward(np.array([0.5]), np.array([1.0]), np.array([1.0]), np.array([0.25]),
    ...                  0.4, 0.1, 0.1, 0.4).tolist()
    [0.5]
    """
    return alpha * d + beta * r_outer + eta * r_task + delta * r_content


def d_reward(d_student: np.ndarray, d_teacher: np.ndarray, how: str, temperature: float = 1.0) -> np.ndarray:
    """The discriminator term of the reward (paper section 6 row 8).

    "sigmoid_diff": sigmoid((D(S) - D(T_m)) / t); "sigmoid": sigmoid(D(S) / t); "raw": D(S).

    >>> d_reward(np.array([0.0, 2.0]), np.array([0.0, 2.0]), "sigmoid_diff").tolist()
    [0.5, 0.5]
    >>> d_reward(np.array([1.5]), np.array([0.0]), "raw").tolist()
    [1.5]
    >>> round(float(d_reward(np.array([1.0]), np.array([0.0]), "sigmoid_diff", 0.5)[0]), 4)
    0.8808
    """
    s = d_student.astype(np.float64)
    if how == "raw":
        return s
    x = s - d_teacher if how == "sigmoid_diff" else s
    return 1.0 / (1.0 + np.exp(-x / temperature))


def disc_weights(q: list[float], closed: list[bool], how: str) -> np.ndarray:
    """Per-pair weights of the discriminator loss: q of the matched teacher response for
    closed-ended pairs and 1 for open-ended ones ("quality", paper 3.8 step 4 and section 6 row 7),
    or 1 everywhere ("uniform").

    >>> disc_weights([0.5, 0.2], [True, False], "quality").tolist(), disc_weights([0.5], [True], "uniform").tolist()
    ([0.5, 1.0], [1.0])
    """
    if how == "uniform":
        return np.ones(len(q))
    return np.array([float(x) if c else 1.0 for x, c in zip(q, closed)])


def group_spread(x: np.ndarray, n: int) -> float:
    """Mean over groups of the population std of ``x`` within each group of ``n`` consecutive values
    (the spread of D among the N rollouts of one prompt: what GRPO's advantages can use).

    >>> group_spread(np.array([0.0, 2.0, 1.0, 1.0]), 2)
    0.5
    """
    return float(np.asarray(x, dtype=np.float64).reshape(-1, n).std(axis=1).mean())


def grpo_advantages(rewards: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Group-normalised advantages ``(R - mean) / (std + eps)`` per row (paper section 6 row 10).

    Args:
        rewards: (B, N) rewards of N rollouts per prompt. std is the population std.

    >>> grpo_advantages(np.array([[1.0, 0.0], [2.0, 2.0]])).round(4).tolist()
    [[1.0, -1.0], [0.0, 0.0]]
    """
    mean = rewards.mean(axis=1, keepdims=True)
    std = rewards.std(axis=1, keepdims=True)
    return (rewards - mean) / (std + eps)


def low_var_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k3 estimator of KL(pi || pi_ref) per token, clamped to [-10, 10] (verl ``low_var_kl``).

    ``kl = exp(ref - logp) - (ref - logp) - 1``; inputs and output (B, S).
    """
    diff = (ref_logp - logp).clamp(-20, 20)
    return (torch.exp(diff) - diff - 1).clamp(-10, 10)


def ppo_clip_loss(logp, old_logp, adv, clip_eps):
    """Per-token PPO-clipped surrogate ``-min(r A, clip(r, 1-eps, 1+eps) A)``; (B, S) in and out."""
    ratio = torch.exp(logp - old_logp)
    return -torch.minimum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over positions where ``mask`` is true (token-mean aggregation)."""
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp(min=1)


@dataclass
class RLExample:
    """One Stage-2 input: its item, encoded prompt and the selected pool (text, q, p)."""

    item: dict
    prompt: EncodedPrompt
    pool_texts: list[str]
    pool_q: np.ndarray
    pool_p: np.ndarray
    frames: np.ndarray | None = None
    """(F, H, W, 3) uint8 raw frames; only the ``vllm`` rollout engine needs them."""
    record: dict | None = None
    """The item's frame-manifest record (video metadata for the ``vllm`` rollout engine)."""


def check_pool(e: RLExample) -> str | None:
    """Why ``e``'s pool cannot be sampled from (None when it can)."""
    if not e.pool_texts:
        return "empty pool"
    p = np.asarray(e.pool_p, dtype=float)
    if len(p) != len(e.pool_texts) or len(e.pool_q) != len(e.pool_texts):
        return "pool texts, q and p differ in length"
    if not np.all(np.isfinite(p)) or (p < 0).any() or p.sum() <= 0:
        return f"matching distribution p = {p.tolist()} is not a distribution"
    return None


def _chunks(n: int, size: int) -> list[slice]:
    size = n if size <= 0 else min(size, n)
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def _sub(batch: dict[str, torch.Tensor], sl: slice, prompts: list[EncodedPrompt]) -> dict:
    """Rows ``sl`` of a collated batch (pixel rows follow the prompts' patch counts)."""
    offs = np.cumsum([0] + [int(p.grid_thw.prod()) for p in prompts])
    out = {k: v[sl] for k, v in batch.items() if k not in ("pixel_values_videos", "video_grid_thw")}
    out["video_grid_thw"] = batch["video_grid_thw"][sl]
    out["pixel_values_videos"] = batch["pixel_values_videos"][offs[sl.start]:offs[sl.stop]]
    return out


def _now(rt: Runtime) -> float:
    """A host clock reading after the device's queued work is done (step timing)."""
    if rt.cuda:
        torch.cuda.synchronize(rt.device)
    return time.perf_counter()


def rl_train(policy, ref, disc: Discriminator | None, encoder: VideoPromptEncoder,
             examples, cfg: RLConfig, mode: str, reward_fn, seed: int,
             log_path=None, *, ctx: TrainContext | None = None, rollout: RolloutEngine | None = None) -> dict:
    """Run Stage 2 in place on ``policy``.

    Args:
        policy: the student (Stage-1 weights), trained in place.
        ref: frozen reference policy (Stage-1 checkpoint).
        disc: discriminator (``mode == "adversarial"``) or None (``mode == "rule"``: rule rewards
            only, the "original SFT+RL" baseline).
        examples: Stage-2 inputs with their pools: an :class:`~rmsd.train.data.RLDataset` (read and
            encoded per step) or a list of :class:`RLExample`. Each step takes the next
            ``prompts_per_step`` of a seeded epoch permutation (:class:`~rmsd.train.data.EpochBatchSampler`).
        reward_fn: ``(text, item) -> (r_outer, r_task, r_content)``, each in [0, 1].
        seed: seeds the epoch permutations (all ranks) and pool matching and rollouts (rank r:
            + r * RANK_SEED_STRIDE).
        log_path: JSONL receiving one record per step (used when ``ctx`` is None).
        ctx: process layout, logger, checkpointer, resume point (None: one process, no checkpoints).
        rollout: who samples the rollouts (:mod:`rmsd.train.rollout`); None: ``model.generate``
            on the policy (:class:`~rmsd.train.rollout.HFRollout`).

    Returns:
        Summary of the run (steps, d_score used, final means, n_skipped_nan, seconds).

    Raises:
        ConfigError: unknown mode.
        TrainingError: no examples; an unusable pool in adversarial mode; a non-finite value under
            ``on_nan="fail"``; every policy step skipped.
    """
    if mode not in STAGE2_MODES:
        raise ConfigError(f"stage2 mode must be one of {STAGE2_MODES}, got {mode!r}")
    if not len(examples):
        raise TrainingError("Stage 2 got no examples (every pool empty after filtering?)")
    if mode == "adversarial" and disc is None:
        raise TrainingError("adversarial Stage 2 needs a discriminator")
    own_ctx = ctx is None
    if ctx is None:
        ctx = TrainContext(rt=Runtime(), logger=StepLogger(log_path))
    rt = ctx.rt
    ex = cfg.exec_config()
    N = cfg.rollouts
    B = per_rank(cfg.prompts_per_step, rt, "rl.prompts_per_step")
    M = B * N
    rng = np.random.default_rng(seed + RANK_SEED_STRIDE * rt.rank)
    torch.manual_seed(seed + RANK_SEED_STRIDE * rt.rank)
    alpha = cfg.alpha if mode == "adversarial" else 0.0
    pol = Engine(policy, cfg.lr, 0.0, cfg.grad_clip, rt, ex, name="policy", batch_per_rank=M,
                 micro_steps=len(_chunks(M, ex.micro_batch_size)))
    dsc = None
    if disc is not None:
        dsc = Engine(disc, cfg.disc_lr, 0.0, cfg.grad_clip, rt, ex, name="disc", batch_per_rank=M,
                     micro_steps=len(_chunks(M, ex.micro_batch_size)),
                     prefix_lrs={"head.": cfg.disc_head_lr} if cfg.disc_head_lr is not None else None)
    ctx.engines.update(policy=pol, **({"disc": dsc} if dsc is not None else {}))
    ref.to(rt.device)
    if use_bf16(ex, rt):
        ref.to(torch.bfloat16)
    ref.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    n_warm = cfg.disc_warmup_steps if disc is not None else 0
    if cfg.epochs is not None:
        total = steps_for(cfg.epochs, len(examples), cfg.prompts_per_step)
        if total <= n_warm:
            raise ConfigError(f"rl.epochs = {cfg.epochs} over {len(examples)} prompts gives {total} steps, "
                              f"not more than the {n_warm} discriminator warm-up steps: no policy update")
    else:
        total = n_warm + cfg.steps
    n_policy = total - n_warm
    start, n_nan, n_nan_disc, elapsed, last = 0, 0, 0, 0.0, {}
    if (res := ctx.resume_for("stage2")) is not None:
        pol.load_optimizer_state(res.load_optimizer("policy", rt, pol.sharded_optimizer))
        if dsc is not None:
            dsc.load_optimizer_state(res.load_optimizer("disc", rt, dsc.sharded_optimizer))
        restore_rng(*res.load_rng(rt), rt, np_rng=rng)
        start, n_nan = int(res.state["stage_step"]), int(res.state["n_skipped_nan"])
        n_nan_disc, elapsed = int(res.state.get("n_skipped_nan_disc", 0)), float(res.state.get("seconds", 0.0))
        last = dict(res.state.get("last", {}))
        log.info("stage2: resuming at step %d/%d from %s", start, total, res.path)
    synced = pol.zero_stage == 3 and rt.distributed
    sampler = EpochBatchSampler(len(examples), cfg.prompts_per_step, rt.rank, rt.world_size, seed, start, total)
    loader = iter(make_loader(examples, sampler, cfg.num_workers))
    rollout = rollout if rollout is not None else HFRollout()
    t0 = time.time() - elapsed
    bar = tqdm(range(start, total), desc=f"rl-{mode}", initial=start, total=total, mininterval=5,
               disable=None if rt.is_main else True)
    try:
        for step in bar:
            t_step = _now(rt)
            exs = next(loader)
            if mode == "adversarial" and (why := next((w for e in exs if (w := check_pool(e))), None)):
                raise TrainingError(f"Stage 2: {why} (set rl.on_empty_pool: skip to drop such items)")
            pol.eval()
            groups = rollout.generate(pol, encoder, exs, n=N, max_new_tokens=cfg.max_new_tokens,
                                      temperature=cfg.temperature, top_p=1.0, step=step, seed=seed,
                                      synced_gpus=synced, batch_size=cfg.rollout_batch_size)
            t_gen = _now(rt)
            r_info = rollout.last
            prompts_rep = [e.prompt for e in exs for _ in range(N)]
            resp_ids = [torch.tensor(g["ids"] or [encoder.eos_id], dtype=torch.long)
                        for grp in groups for g in grp]
            texts = [g["text"] for grp in groups for g in grp]
            rules = np.array([reward_fn(t, e.item) for e, grp in zip(exs, groups) for t in
                              (g["text"] for g in grp)], dtype=np.float64).reshape(-1, 3)
            phase = "disc_warmup" if step < n_warm else "policy"
            stats = {"r_outer": rules[:, 0].mean(), "r_task": rules[:, 1].mean(),
                     "r_content": rules[:, 2].mean(),
                     "response_len": float(np.mean([len(r) for r in resp_ids])),
                     "truncated": float(np.mean([g["finish_reason"] == "length" for grp in groups for g in grp]))}
            d_term = np.zeros(M)
            skip_policy = False
            t_disc = t_gen
            if dsc is not None:
                matched = [int(rng.choice(len(e.pool_texts), p=e.pool_p)) for e in exs for _ in range(N)]
                ex_rep = [e for e in exs for _ in range(N)]
                t_ids = encoder.tokenize_responses([e.pool_texts[m] for e, m in zip(ex_rep, matched)])
                w = torch.tensor(disc_weights([float(e.pool_q[m]) for e, m in zip(ex_rep, matched)],
                                              [is_closed(e.item["task_type"]) for e in ex_rep], cfg.disc_weight),
                                 dtype=torch.float32, device=rt.device)
                d_s, d_t, d_loss, d_norm = _disc_step(dsc, encoder, prompts_rep, resp_ids, t_ids, w)
                t_disc = _now(rt)
                if d_loss is None or d_norm is None:
                    what = "discriminator score/loss" if d_loss is None else "discriminator gradient"
                    if cfg.on_nan == "fail":
                        raise TrainingError(f"Stage 2: non-finite {what} at step {step} (on_nan: fail)")
                    n_nan_disc += 1
                    skip_policy = d_loss is None  # no usable D term for the reward either
                    log.warning("stage2: non-finite %s at step %d: skipped (%d so far)", what, step, n_nan_disc)
                if d_s is not None:
                    d_term = d_reward(d_s, d_t, cfg.d_score, cfg.d_temperature)
                    stats.update(disc_loss=d_loss if d_loss is not None else float("nan"),
                                 disc_acc=float(np.mean(d_t > d_s)), d_student=float(d_s.mean()),
                                 d_teacher=float(d_t.mean()), d_score=float(d_term.mean()),
                                 d_student_group_std=group_spread(d_s, N),
                                 d_score_group_std=group_spread(d_term, N),
                                 disc_weight_mean=float(w.mean()),
                                 disc_grad_norm=d_norm if d_norm is not None else float("nan"))
            rewards = composite_reward(d_term, rules[:, 0], rules[:, 1], rules[:, 2], alpha,
                                       cfg.beta, cfg.eta, cfg.delta)
            stats["reward"] = float(rewards.mean())
            stats["reward_std"] = float(rewards.reshape(B, N).std(axis=1).mean())
            if step >= n_warm and not skip_policy:
                adv = grpo_advantages(rewards.reshape(B, N)).reshape(-1)
                pstats = _policy_step(pol, ref, encoder, prompts_rep, resp_ids, adv, cfg)
                if pstats is None:
                    if cfg.on_nan == "fail":
                        raise TrainingError(f"Stage 2: non-finite policy loss or gradient at step {step} "
                                            "(on_nan: fail)")
                    n_nan += 1
                    log.warning("stage2: non-finite policy loss/gradient at step %d: skipped (%d so far)",
                                step, n_nan)
                else:
                    stats.update(pstats)
                    rollout.policy_updated()
            elif skip_policy and step >= n_warm:
                n_nan += 1
            t_end = _now(rt)
            sync_s = float(r_info.get("sync_seconds", 0.0))
            swap_s = float(r_info.get("wake_seconds", 0.0)) + float(r_info.get("sleep_seconds", 0.0))
            gen_s = t_gen - t_step - sync_s - swap_s
            step_s = t_end - t_step
            n_gen = float(r_info.get("gen_tokens", 0.0))
            timing = {"gen_seconds": round(gen_s, 4), "sync_seconds": round(sync_s, 4),
                      "swap_seconds": round(swap_s, 4), "disc_seconds": round(t_disc - t_gen, 4),
                      "policy_seconds": round(t_end - t_disc, 4), "step_seconds": round(step_s, 4),
                      "gen_share": round(gen_s / max(step_s, 1e-9), 4), "gen_tokens": int(n_gen),
                      "gen_tokens_per_s": round(n_gen / max(gen_s, 1e-9), 1),
                      "rollouts_per_s": round(M / max(step_s, 1e-9), 4), "rollout_engine": rollout.name}
            if "prompt_mismatch" in r_info:
                timing["rollout_prompt_mismatch"] = int(r_info["prompt_mismatch"])
            keys = sorted(stats)
            vals = rt.all_mean([float(stats[k]) for k in keys]) if rt.distributed else [float(stats[k]) for k in keys]
            rec = {"stage": "stage2", "step": step, "global_step": ctx.global_offset + step, "phase": phase,
                   **dict(zip(keys, vals)), "lr": cfg.lr, "disc_lr": cfg.disc_lr if dsc is not None else None,
                   **timing, "seconds": round(time.time() - t0, 3)}
            last = {k: v for k, v in rec.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                    and math.isfinite(v)}
            ctx.logger.write(rec, global_step=ctx.global_offset + step)
            if rt.is_main and "reward" in rec:
                bar.set_postfix(reward=f"{rec['reward']:.3f}", d_acc=f"{rec.get('disc_acc', float('nan')):.2f}",
                                refresh=False)
            if step % max(1, total // 10) == 0 or step == total - 1:
                log.info("stage2 step %d/%d %s reward %.3f disc_acc %s kl %s (%.1f s)", step, total, phase,
                         rec["reward"], _fmt(rec.get("disc_acc")), _fmt(rec.get("kl")), time.time() - t0)
            done, ckpt = step + 1, None
            stop = preempt.poll(rt) if done < total else None  # a signal: checkpoint now and exit
            if ctx.checkpointer is not None and done < total and (
                    stop or (cfg.checkpoint_every and done % cfg.checkpoint_every == 0)):
                state = {**ctx.base_state, "stage": "stage2", "stage_step": done, "n_skipped_nan": n_nan,
                         "n_skipped_nan_disc": n_nan_disc, "seconds": round(time.time() - t0, 3),
                         "log_offset": ctx.logger.offset(), "last": last}
                engines = {"policy": pol, **({"disc": dsc} if dsc is not None else {})}
                savers = {"policy": lambda d: pol.module.save_pretrained(d / "policy")}
                if dsc is not None:
                    savers["disc"] = lambda d: save_discriminator(dsc.module, d / "disc.safetensors")
                ckpt = ctx.checkpointer.save(ctx.global_offset + done, state, engines, savers,
                                             capture_rng(rt, np_rng=rng))
            run_step_hooks("stage2", step)
            if stop:
                preempt.stop("stage2", done, stop, ckpt)
    finally:
        bar.close()
        if own_ctx:
            ctx.logger.close()
    if n_policy > 0 and n_nan >= n_policy:
        raise TrainingError(f"Stage 2: all {n_policy} policy steps were skipped for non-finite values")
    pol.eval()
    return {"steps": n_policy, "epochs": round(sampler.epoch_at(total), 4), "n_examples": len(examples),
            "disc_warmup_steps": n_warm, "mode": mode, "d_score": cfg.d_score,
            "d_temperature": cfg.d_temperature, "disc_weight": cfg.disc_weight,
            "disc_head_init": cfg.disc_head_init, "alpha": alpha, "n_skipped_nan": n_nan, "n_skipped_nan_disc": n_nan_disc,
            "world_size": rt.world_size, "seconds": round(time.time() - t0, 2),
            "last": last, **({"resumed_at": start} if start else {})}


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _disc_step(dsc: Engine, encoder: VideoPromptEncoder, prompts_rep: list[EncodedPrompt],
               s_ids: list[torch.Tensor], t_ids: list[torch.Tensor], w: torch.Tensor):
    """Score student/teacher pairs and update the discriminator with the weighted BT loss.

    Each micro-batch holds matching pairs (student and teacher of the same i), scored in one
    forward (one forward per backward, as DDP needs).

    Returns:
        (d_s, d_t, loss, grad_norm): scores (M,) as NumPy before the update, the loss, the norm.
        All None when a score or the loss is non-finite on any rank (nothing applied); grad_norm
        alone None when the gradients are (nothing applied, the scores stay usable).
    """
    rt = dsc.rt
    M = len(prompts_rep)
    parts = _chunks(M, dsc.ex.micro_batch_size)
    d_s, d_t, total = [], [], 0.0
    dsc.train()
    for k, sl in enumerate(parts):
        pr = prompts_rep[sl]
        batch = collate_to(encoder, pr + pr, s_ids[sl] + t_ids[sl], rt.device)
        with dsc.no_sync(last=k == len(parts) - 1):
            with dsc.autocast():
                scores = dsc.model(batch)
            n = sl.stop - sl.start
            ds, dt = scores[:n], scores[n:]
            loss = (w[sl] * -F.logsigmoid(dt - ds)).sum() / M  # chunk share of bt_loss over all M
            if nonfinite(loss, rt):
                if dsc.ds is not None and k > 0:
                    raise TrainingError("non-finite discriminator loss in a later micro-batch under "
                                        "DeepSpeed cannot be skipped; use micro_batch_size 0")
                dsc.zero_grad()
                return None, None, None, None
            dsc.backward(loss)
        d_s.append(ds.detach())
        d_t.append(dt.detach())
        total += loss.item()
    norm = dsc.step()
    return (torch.cat(d_s).float().cpu().numpy(), torch.cat(d_t).float().cpu().numpy(), total, norm)


def _policy_step(pol: Engine, ref, encoder: VideoPromptEncoder, prompts_rep: list[EncodedPrompt],
                 resp_ids: list[torch.Tensor], adv: np.ndarray, cfg: RLConfig) -> dict | None:
    """PPO-clipped GRPO update with the low_var_kl penalty; None when a loss/gradient is non-finite.

    With one PPO epoch the behaviour log-probs equal the current ones (same weights, same inputs),
    so they are taken from the same forward (detached) instead of a second pass.
    """
    rt = pol.rt
    batch = encoder.collate(prompts_rep, resp_ids)
    M = len(prompts_rep)
    parts = _chunks(M, pol.ex.micro_batch_size)
    adv_t = torch.tensor(adv, dtype=torch.float32, device=rt.device)
    n_tok = float(batch["response_mask"][:, 1:].sum().clamp(min=1))
    subs = [to_device(_sub(batch, sl, prompts_rep), rt.device) for sl in parts] if len(parts) > 1 \
        else [to_device(batch, rt.device)]
    with torch.no_grad(), pol.autocast():
        ref_lp = [response_logprobs(ref, b, temperature=cfg.temperature) for b in subs]
        old_lp = [response_logprobs(pol.module, b, temperature=cfg.temperature) for b in subs] \
            if cfg.ppo_epochs > 1 else None
    pol.train()
    out = {}
    for _ in range(cfg.ppo_epochs):
        pg_sum = kl_sum = clip_sum = loss_sum = 0.0
        for k, (sl, b) in enumerate(zip(parts, subs)):
            with pol.no_sync(last=k == len(parts) - 1):
                with pol.autocast():
                    logp = response_logprobs(pol.model, b, temperature=cfg.temperature)
                old = old_lp[k] if old_lp is not None else logp.detach()
                mask = b["response_mask"][:, 1:].to(logp.dtype)
                pg = ppo_clip_loss(logp, old, adv_t[sl][:, None], cfg.clip_eps)
                kl = low_var_kl(logp, ref_lp[k])
                loss = ((pg + cfg.kl_coef * kl) * mask).sum() / n_tok  # token-mean over all M rollouts
                if nonfinite(loss, rt):
                    if pol.ds is not None and k > 0:
                        raise TrainingError("non-finite policy loss in a later micro-batch under DeepSpeed "
                                            "cannot be skipped; use micro_batch_size 0")
                    pol.zero_grad()
                    return None
                pol.backward(loss)
            with torch.no_grad():
                ratio = torch.exp(logp.detach() - old)
                clipped = ((ratio - 1).abs() > cfg.clip_eps).to(mask.dtype)
                pg_sum += float((pg.detach() * mask).sum())
                kl_sum += float((kl.detach() * mask).sum())
                clip_sum += float((clipped * mask).sum())
                loss_sum += float(loss.detach())
        norm = pol.step()
        if norm is None:
            return None
        out = {"policy_loss": loss_sum, "pg_loss": pg_sum / n_tok, "kl": kl_sum / n_tok,
               "clip_frac": clip_sum / n_tok, "grad_norm": norm}
    return out


def save_discriminator(disc: torch.nn.Module, path) -> None:
    """Write the discriminator's weights (backbone + head) as safetensors.

    Tensors are copied out first: under ZeRO they are views into flat buffers, which safetensors
    refuses to write.
    """
    from safetensors.torch import save_file

    save_file({k: v.detach().to("cpu", copy=True).contiguous() for k, v in disc.state_dict().items()},
              str(path))


def load_discriminator(disc: torch.nn.Module, path) -> None:
    """Load weights written by :func:`save_discriminator` (strict: every key must match)."""
    from safetensors.torch import load_file

    try:
        disc.load_state_dict(load_file(str(path)), strict=True)
    except RuntimeError as e:
        raise TrainingError(f"{path}: discriminator weights do not match this model: {e}") from e
