"""Response-only losses that project onto the vocabulary only where a response token is predicted.

The Stage-1 loss and the Stage-2 log-probabilities only need logits at the positions that predict
a response token, yet a plain ``model(**batch, labels=labels)`` projects every position onto the
vocabulary: at Qwen3-VL scale (S ~ 4k positions, most of them video, V = 151936) that is about
10% of a training step's arithmetic and a (S, V) float32 tensor of ~2.5 GB per sequence that is
almost all thrown away. Here the model is asked for the logits of the last ``K`` positions only
(``logits_to_keep``, supported by the Qwen2-VL and Qwen3-VL heads), where ``K`` is the smallest
window that still holds every response prediction (batches are left-padded, so responses sit at
the right end; the window is computed from the mask, so any layout is handled), and without a
KV cache (``use_cache=False``: a training forward has no use for one, and filling it makes each
decoder layer a different graph for ``torch.compile``). The losses are
the same functions of the same logits as before: :func:`sft_loss` equals
``model(**batch, labels=labels).loss`` and :func:`response_logprobs` equals
:func:`rmsd.models.inputs.response_logprobs` (tests/unit/test_train_losses.py checks values and
gradients). Going through the model's own ``forward`` keeps DDP and DeepSpeed wrappers in charge
of their gradient hooks.

Dimension names: B batch, S sequence, K kept positions, V vocabulary.
"""

from __future__ import annotations

import torch

from rmsd.models.inputs import model_kwargs

IGNORE = -100


def logits_window(mask: torch.Tensor) -> int:
    """The number ``K`` of trailing positions whose logits cover every response prediction.

    Args:
        mask: (B, S) response mask (bool) or labels (-100 outside responses).

    Position ``t`` predicts token ``t + 1``, so a response starting at ``p`` needs the logits from
    ``p - 1`` on. With no response token at all, ``K = 1`` (the loss is then what it always was:
    NaN for a mean over nothing).

    >>> logits_window(torch.tensor([[False, False, True, True], [False, False, False, True]]))
    3
    """
    if mask.dtype != torch.bool:
        mask = mask != IGNORE
    S = mask.shape[-1]
    cols = mask.reshape(-1, S).any(0).nonzero()
    if cols.numel() == 0:
        return 1
    return min(S, S - int(cols[0]) + 1)


def sft_loss(model, batch: dict[str, torch.Tensor], window: int | None = None,
             num_items_in_batch: torch.Tensor | None = None) -> torch.Tensor:
    """Response-only cross-entropy of ``batch`` (collated with ``labels``), as the model computes it.

    Args:
        model: a Qwen-VL ``...ForConditionalGeneration`` or a DDP/DeepSpeed wrapper of one.
        batch: from :meth:`~rmsd.models.inputs.VideoPromptEncoder.collate` with responses.
        window: :func:`logits_window` of the labels when already known (computing it from labels on
            the GPU costs a device synchronisation).
        num_items_in_batch: response tokens over all micro-batches of the step (sum reduction
            divided by it, as in ``transformers``); None: mean over this batch's response tokens.

    Returns:
        The scalar loss, equal to ``model(**batch, labels=batch["labels"]).loss``.
    """
    labels = batch["labels"]
    K = logits_window(labels) if window is None else int(window)
    kw = {} if num_items_in_batch is None else {"num_items_in_batch": num_items_in_batch}
    return model(**model_kwargs(batch), labels=labels[:, -K:], logits_to_keep=K, use_cache=False, **kw).loss


def response_logprobs(model, batch: dict[str, torch.Tensor], window: int | None = None,
                      temperature: float = 1.0) -> torch.Tensor:
    """Per-token log-probabilities of the response tokens under ``model`` at ``temperature``.

    Same contract as :func:`rmsd.models.inputs.response_logprobs`: (B, S-1) float32,
    log p_T(token_t | tokens_<t) at t = 1..S-1, zero outside ``response_mask[:, 1:]``; only the
    logits of the last ``K`` positions are computed.

    ``p_T = softmax(logits / T)`` is the distribution the rollouts were sampled from (``generate``
    and vLLM both divide the logits by the temperature before sampling), so the PPO ratio and the
    KL to the reference are taken under the sampling distribution (verl and OpenRLHF divide by the
    rollout temperature the same way). At ``T = 1`` the logits are used as they are (no division:
    the values are bit-identical to the temperature-free computation).

    Raises:
        ValueError: ``temperature`` is not > 0.
    """
    if not temperature > 0:
        raise ValueError(f"log-prob temperature must be > 0, got {temperature}")
    ids = batch["input_ids"]
    B, S = ids.shape
    K = logits_window(batch["response_mask"]) if window is None else int(window)
    logits = model(**model_kwargs(batch), logits_to_keep=K, use_cache=False).logits[:, :-1].float()  # (B, K-1, V)
    if temperature != 1.0:
        logits = logits / temperature
    targets = ids[:, S - K + 1:]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    if K < S:
        logp = torch.cat([logp.new_zeros(B, S - K), logp], dim=1)
    return logp * batch["response_mask"][:, 1:]
