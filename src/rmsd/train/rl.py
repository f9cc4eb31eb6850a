"""Stage 2: adversarial RL distillation (paper section 3.8, Stage 2).

Per step, for each of B prompts: N student rollouts; each rollout is paired with a pool response
drawn from the matching distribution p (section 3.6); a discriminator (scalar value head on the last
token of a model initialised from the Stage-1 checkpoint) is trained online with the
quality-weighted Bradley-Terry loss; the composite reward
``R = alpha * D + beta * R_outer + eta * R_task + delta * R_content`` is group-normalised (GRPO) and
optimised with a PPO-clipped surrogate plus a low-variance KL penalty to the Stage-1 reference.

Dimension names: B prompts per step, N rollouts per prompt, S sequence (tokens), H hidden.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from rmsd.errors import ConfigError, TrainingError
from rmsd.models.inputs import EncodedPrompt, VideoPromptEncoder, generate, model_kwargs, response_logprobs
from rmsd.tasks import is_closed

D_SCORES = ("sigmoid_diff", "raw")
STAGE2_MODES = ("adversarial", "rule")


@dataclass
class RLConfig:
    """Stage-2 hyper-parameters (paper section 3.10; defaults for what the paper leaves open)."""

    steps: int = 40
    """Policy-update steps (after the discriminator warm-up)."""
    prompts_per_step: int = 4
    """B: prompts per step."""
    rollouts: int = 8
    """N: student rollouts per prompt (paper: 8)."""
    lr: float = 1e-4
    """Policy AdamW learning rate (paper: 1e-6 at 4B scale)."""
    disc_lr: float = 1e-3
    """Discriminator AdamW learning rate (paper default 1e-6 at 4B scale)."""
    kl_coef: float = 0.001
    """gamma: weight of the low_var_kl penalty to the reference (GAD: 0.001)."""
    clip_eps: float = 0.2
    """PPO clip range epsilon."""
    ppo_epochs: int = 1
    """Passes over each rollout batch (the clip only binds for > 1)."""
    temperature: float = 1.0
    """Rollout sampling temperature."""
    max_new_tokens: int = 32
    """Rollout length limit in tokens."""
    disc_warmup_steps: int = 10
    """Discriminator-only steps before any policy update (GAD critic_warmup)."""
    grad_clip: float = 0.2
    """Policy gradient-norm clip (GAD: 0.2)."""
    alpha: float = 0.4
    """Weight of the discriminator score D."""
    beta: float = 0.1
    """Weight of R_outer (outer format validity)."""
    eta: float = 0.1
    """Weight of R_task (task format validity)."""
    delta: float = 0.4
    """Weight of R_content (ground-truth metric, closed-ended only)."""
    d_score: str = "sigmoid_diff"
    """"sigmoid_diff": sigmoid(D(S) - D(T_m)) in [0, 1]; "raw": D(S) (GAD)."""
    on_nan: str = "fail"
    """Non-finite loss: "fail" raises, "skip" skips the update and counts it."""
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> "RLConfig":
        """Strict constructor: unknown keys or invalid choices raise :class:`ConfigError`."""
        known = {f.name for f in fields(cls)} - {"extra"}
        if unknown := sorted(set(d) - known):
            raise ConfigError(f"unknown RL key(s) {unknown}; valid: {sorted(known)}")
        cfg = cls(**d)
        if cfg.d_score not in D_SCORES:
            raise ConfigError(f"rl.d_score must be one of {D_SCORES}, got {cfg.d_score!r}")
        if cfg.on_nan not in ("fail", "skip"):
            raise ConfigError(f"rl.on_nan must be 'fail' or 'skip', got {cfg.on_nan!r}")
        return cfg


class Discriminator(torch.nn.Module):
    """Critic-as-discriminator: a scalar head on the last token's hidden state (GAD, section 3.12).

    Args:
        backbone: the inner ``Qwen*VLModel`` (``ForConditionalGeneration.model``) of a copy of the
            Stage-1 checkpoint.
        hidden: its hidden size H.
    """

    def __init__(self, backbone: torch.nn.Module, hidden: int):
        super().__init__()
        self.backbone = backbone
        self.head = torch.nn.Linear(hidden, 1)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scores (B,) for a left-padded batch: the head applied at the last position."""
        h = self.backbone(**model_kwargs(batch)).last_hidden_state  # (B, S, H)
        return self.head(h[:, -1]).squeeze(-1)


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


def rl_train(policy, ref, disc: Discriminator | None, encoder: VideoPromptEncoder,
             examples: list[RLExample], cfg: RLConfig, mode: str, reward_fn, seed: int,
             log_path=None) -> dict:
    """Run Stage 2 in place on ``policy``.

    Args:
        policy: the student (Stage-1 weights), trained in place.
        ref: frozen reference policy (Stage-1 checkpoint).
        disc: discriminator (``mode == "adversarial"``) or None (``mode == "rule"``: rule rewards
            only, the "original SFT+RL" baseline).
        examples: Stage-2 inputs with their pools.
        reward_fn: ``(text, item) -> (r_outer, r_task, r_content)``, each in [0, 1].
        seed: seeds prompt sampling, pool matching and rollouts.
        log_path: JSONL receiving one record per step: every reward component, discriminator loss
            and accuracy (share of pairs with D(T) > D(S)), KL, response length, learning rates.

    Returns:
        Summary of the run (steps, final means, n_skipped_nan, seconds).
    """
    if mode not in STAGE2_MODES:
        raise ConfigError(f"stage2 mode must be one of {STAGE2_MODES}, got {mode!r}")
    if not examples:
        raise TrainingError("Stage 2 got no examples (every pool empty after filtering?)")
    if mode == "adversarial" and disc is None:
        raise TrainingError("adversarial Stage 2 needs a discriminator")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    alpha = cfg.alpha if mode == "adversarial" else 0.0
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=0.0)
    d_opt = torch.optim.AdamW(disc.parameters(), lr=cfg.disc_lr) if disc is not None else None
    ref.eval()
    n_warm = cfg.disc_warmup_steps if disc is not None else 0
    total = n_warm + cfg.steps
    t0, n_nan, last = time.time(), 0, {}
    log_f = open(log_path, "a", encoding="utf-8") if log_path else None
    try:
        for step in tqdm(range(total), desc=f"rl-{mode}", mininterval=5, disable=None):
            chosen = rng.choice(len(examples), size=min(cfg.prompts_per_step, len(examples)), replace=False)
            exs = [examples[i] for i in chosen]
            N = cfg.rollouts
            policy.eval()
            groups = generate(policy, encoder, [e.prompt for e in exs], n=N, do_sample=True,
                              max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                              top_p=1.0, top_k=0)
            prompts_rep = [e.prompt for e in exs for _ in range(N)]
            resp_ids = [torch.tensor(g["ids"] or [encoder.eos_id], dtype=torch.long)
                        for grp in groups for g in grp]
            texts = [g["text"] for grp in groups for g in grp]
            batch_s = encoder.collate(prompts_rep, resp_ids)
            rules = np.array([reward_fn(t, e.item) for e, grp in zip(exs, groups) for t in
                              (g["text"] for g in grp)], dtype=np.float64).reshape(-1, 3)
            rec = {"step": step, "phase": "disc_warmup" if step < n_warm else "policy",
                   "r_outer": rules[:, 0].mean(), "r_task": rules[:, 1].mean(),
                   "r_content": rules[:, 2].mean(),
                   "response_len": float(np.mean([len(r) for r in resp_ids])),
                   "lr": cfg.lr, "disc_lr": cfg.disc_lr if disc is not None else None}
            d_term = np.zeros(len(texts))
            if disc is not None:
                matched = [int(rng.choice(len(e.pool_texts), p=e.pool_p)) for e in exs for _ in range(N)]
                ex_rep = [e for e in exs for _ in range(N)]
                t_texts = [e.pool_texts[m] for e, m in zip(ex_rep, matched)]
                w = torch.tensor([float(e.pool_q[m]) if is_closed(e.item["task_type"]) else 1.0
                                  for e, m in zip(ex_rep, matched)])
                batch_t = encoder.collate(prompts_rep, encoder.tokenize_responses(t_texts))
                disc.train()
                d_s, d_t = disc(batch_s), disc(batch_t)
                loss_d = bt_loss(d_t, d_s, w)
                d_opt.zero_grad(set_to_none=True)
                loss_d.backward()
                d_opt.step()
                d_s_np, d_t_np = d_s.detach().numpy(), d_t.detach().numpy()
                d_term = (1 / (1 + np.exp(-(d_s_np - d_t_np)))) if cfg.d_score == "sigmoid_diff" else d_s_np
                rec.update(disc_loss=loss_d.item(), disc_acc=float(np.mean(d_t_np > d_s_np)),
                           d_student=float(d_s_np.mean()), d_teacher=float(d_t_np.mean()),
                           d_score=float(d_term.mean()))
            rewards = composite_reward(d_term, rules[:, 0], rules[:, 1], rules[:, 2], alpha,
                                       cfg.beta, cfg.eta, cfg.delta)
            rec["reward"] = float(rewards.mean())
            if step >= n_warm:
                adv = torch.tensor(grpo_advantages(rewards.reshape(len(exs), N)).reshape(-1),
                                   dtype=torch.float32)
                policy.train()
                with torch.no_grad():
                    old_logp = response_logprobs(policy, batch_s)
                    ref_logp = response_logprobs(ref, batch_s)
                mask = batch_s["response_mask"][:, 1:]
                for _ in range(cfg.ppo_epochs):
                    logp = response_logprobs(policy, batch_s)
                    pg = ppo_clip_loss(logp, old_logp, adv[:, None], cfg.clip_eps)
                    kl = low_var_kl(logp, ref_logp)
                    loss = masked_mean(pg + cfg.kl_coef * kl, mask)
                    if not torch.isfinite(loss):
                        if cfg.on_nan == "fail":
                            raise TrainingError(f"Stage 2: non-finite policy loss at step {step}")
                        n_nan += 1
                        break
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip)
                    opt.step()
                rec.update(policy_loss=loss.item(), kl=masked_mean(kl.detach(), mask).item())
            rec["seconds"] = round(time.time() - t0, 3)
            last = rec
            if log_f:
                log_f.write(json.dumps({k: (float(v) if isinstance(v, np.floating) else v)
                                        for k, v in rec.items()}) + "\n")
                log_f.flush()
    finally:
        if log_f:
            log_f.close()
    policy.eval()
    return {"steps": cfg.steps, "disc_warmup_steps": n_warm, "mode": mode, "n_skipped_nan": n_nan,
            "seconds": round(time.time() - t0, 2),
            "last": {k: v for k, v in last.items() if isinstance(v, (int, float))}}
