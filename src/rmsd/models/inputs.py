"""Encode (video frames, prompt[, response]) into Qwen-VL model inputs, once per item.

The processor runs once per item (video patchify + prompt tokenisation with the video pads
expanded); batches are then assembled by concatenation, so training steps do no image work.

Dimension names: B batch, S sequence (tokens), P video patches, D patch features
(3 x temporal_patch 2 x 14 x 14 = 1176), F frames, H/W pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rmsd.tasks import build_prompt


@dataclass
class EncodedPrompt:
    """One item's prompt, ready to batch."""

    prompt_ids: torch.Tensor
    """(S_p,) int64: chat-formatted prompt with the video pads expanded, ending in 'assistant\\n'."""
    pixel_values: torch.Tensor
    """(P, D) float32: patchified, normalised video."""
    grid_thw: torch.Tensor
    """(3,) int64: video grid (temporal, height, width) in patches."""


class VideoPromptEncoder:
    """Turns items + frames into :class:`EncodedPrompt` and batches into model kwargs.

    Args:
        processor: a Qwen2-VL-style processor (tokenizer + video processor + chat template).
        template: the response template named in prompts ("answer_only" or "think_answer").
    """

    def __init__(self, processor, template: str):
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.template = template
        self.pad_id = self.tokenizer.pad_token_id
        self.eos_id = self.tokenizer.eos_token_id
        self.video_token_id = self.tokenizer.convert_tokens_to_ids("<|video_pad|>")
        # special tokens a response must never contain (vision placeholders would corrupt the
        # next forward pass); only the end-of-turn token may be generated
        self.suppress_ids = sorted({self.tokenizer.convert_tokens_to_ids(t)
                                    for t in self.tokenizer.all_special_tokens} - {self.eos_id})

    def prompt_text(self, item: dict) -> str:
        """The chat-formatted prompt string of ``item`` (video placeholder + question)."""
        msgs = [{"role": "user", "content": [
            {"type": "video"}, {"type": "text", "text": build_prompt(item, self.template)}]}]
        return self.processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)

    @property
    def uses_timestamps(self) -> bool:
        """True for processors that write per-frame timestamps into the prompt (Qwen3-VL)."""
        return hasattr(self.processor, "_calculate_timestamps")

    def video_metadata(self, frames: np.ndarray, meta: dict | None):
        """``VideoMetadata`` of already-sampled ``frames`` (F, H, W, 3) for timestamped prompts.

        ``meta`` is the item's frame-manifest record; :func:`rmsd.frames.metadata.video_metadata`
        turns it into the metadata (real fps and frame times, VFR-correct), the same function the
        teachers and evaluation use. Without a record (synthetic inputs only) the frames are taken
        as consecutive at 1 fps.
        """
        from rmsd.frames.metadata import hf_video_metadata, video_metadata

        if meta is None:
            meta = {"fps": 1.0, "indices": list(range(len(frames))), "num_video_frames": len(frames)}
        md = video_metadata(meta, num_frames=len(frames))
        md.setdefault("width", int(frames.shape[2]))
        md.setdefault("height", int(frames.shape[1]))
        return hf_video_metadata(md)

    def encode(self, items: list[dict], frames: list[np.ndarray], chunk: int = 128,
               metadata: list[dict | None] | None = None) -> list[EncodedPrompt]:
        """Encode items with their frames.

        Args:
            items: item records (rmsd.tasks conventions).
            frames: per item, uint8 array (F, H, W, 3); F even (temporal patch 2).
            chunk: items per processor call.
            metadata: per item, its frame-manifest record (``fps``, ``indices``,
                ``num_video_frames``); used by timestamped processors (Qwen3-VL), which are also
                told not to resample the frames. Ignored by Qwen2-VL-style processors.

        Returns:
            One :class:`EncodedPrompt` per item, in order.
        """
        out: list[EncodedPrompt] = []
        for start in range(0, len(items), chunk):
            its, frs = items[start:start + chunk], frames[start:start + chunk]
            kw = {}
            if self.uses_timestamps:
                metas = metadata[start:start + chunk] if metadata is not None else [None] * len(its)
                kw["videos_kwargs"] = {"video_metadata": [self.video_metadata(np.asarray(f), m)
                                                         for f, m in zip(frs, metas)],
                                       "do_sample_frames": False}
            enc = self.processor(text=[self.prompt_text(it) for it in its], videos=list(frs),
                                 return_tensors="pt", padding=True, **kw)
            offset = 0
            for row in range(len(its)):
                ids = enc["input_ids"][row][enc["attention_mask"][row].bool()]
                thw = enc["video_grid_thw"][row]
                n_patch = int(thw.prod())
                out.append(EncodedPrompt(ids.clone(), enc["pixel_values_videos"][offset:offset + n_patch],
                                         thw.clone()))
                offset += n_patch
        return out

    def tokenize_responses(self, texts: list[str]) -> list[torch.Tensor]:
        """Token ids of response texts with the end-of-turn token appended; each (S_r,) int64."""
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [torch.tensor(x + [self.eos_id], dtype=torch.long) for x in ids]

    def collate(self, prompts: list[EncodedPrompt], responses: list[torch.Tensor] | None = None
                ) -> dict[str, torch.Tensor]:
        """Left-padded batch of prompts (+ responses) as model keyword arguments.

        Args:
            prompts: B encoded prompts (the same prompt may repeat, e.g. for N rollouts).
            responses: optional B response id tensors (S_r,), appended after each prompt.

        Returns:
            ``input_ids`` (B, S), ``attention_mask`` (B, S), ``mm_token_type_ids`` (B, S)
            (2 at video pads), ``pixel_values_videos`` (sum P, D), ``video_grid_thw`` (B, 3); with
            responses also ``labels`` (B, S) (-100 outside responses) and ``response_mask`` (B, S).
        """
        seqs, resp_lens = [], []
        for i, p in enumerate(prompts):
            r = responses[i] if responses is not None else p.prompt_ids[:0]
            seqs.append(torch.cat([p.prompt_ids, r]))
            resp_lens.append(len(r))
        width = max(len(s) for s in seqs)
        B = len(seqs)
        input_ids = torch.full((B, width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((B, width), dtype=torch.long)
        resp_mask = torch.zeros((B, width), dtype=torch.bool)
        for i, s in enumerate(seqs):
            input_ids[i, width - len(s):] = s
            attn[i, width - len(s):] = 1
            if resp_lens[i]:
                resp_mask[i, width - resp_lens[i]:] = True
        batch = {
            "input_ids": input_ids,
            "attention_mask": attn,
            "mm_token_type_ids": (input_ids == self.video_token_id).long() * 2,
            "pixel_values_videos": torch.cat([p.pixel_values for p in prompts]),
            "video_grid_thw": torch.stack([p.grid_thw for p in prompts]),
        }
        if responses is not None:
            batch["labels"] = input_ids.masked_fill(~resp_mask, -100)
            batch["response_mask"] = resp_mask
        return batch


def model_kwargs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The subset of a collated batch that the model's forward accepts."""
    keys = ("input_ids", "attention_mask", "mm_token_type_ids", "pixel_values_videos", "video_grid_thw")
    return {k: batch[k] for k in keys}


def response_logprobs(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-token log-probabilities of the response tokens under ``model``.

    Args:
        batch: from :meth:`VideoPromptEncoder.collate` with responses.

    Returns:
        (B, S-1) float32: log p(token_t | tokens_<t) at positions t = 1..S-1, zero outside
        ``response_mask[:, 1:]``.
    """
    logits = model(**model_kwargs(batch)).logits[:, :-1].float()  # (B, S-1, V)
    targets = batch["input_ids"][:, 1:]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return logp * batch["response_mask"][:, 1:]


@torch.no_grad()
def generate(model, encoder: VideoPromptEncoder, prompts: list[EncodedPrompt], n: int,
             do_sample: bool, max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0,
             top_k: int = 0, device: torch.device | str | None = None, synced_gpus: bool = False
             ) -> list[list[dict]]:
    """Sample ``n`` responses per prompt sharing one prefill (``num_return_sequences=n``).

    Args:
        device: where the model lives (the batch is moved there); None = as collated (CPU).
        synced_gpus: keep every rank generating until all are done (needed under ZeRO-3, where
            each forward is a collective).

    Returns:
        Per prompt, ``n`` dicts: ``text`` (special tokens removed), ``ids`` (list of token ids,
        end-of-turn included when emitted), ``finish_reason`` ("stop" or "length"), ``n_tokens``.
    """
    batch = encoder.collate(prompts)
    inputs = model_kwargs(batch)
    if device is not None and torch.device(device).type != "cpu":
        inputs = {k: v.to(device) for k, v in inputs.items()}
    kw = dict(max_new_tokens=max_new_tokens, do_sample=do_sample, num_return_sequences=n,
              pad_token_id=encoder.pad_id, eos_token_id=encoder.eos_id,
              suppress_tokens=encoder.suppress_ids)
    if synced_gpus:
        kw["synced_gpus"] = True
    if do_sample:
        kw.update(temperature=temperature, top_p=top_p, top_k=top_k)
    out = model.generate(**inputs, **kw)[:, batch["input_ids"].shape[1]:].cpu()
    results: list[list[dict]] = []
    for i in range(len(prompts)):
        group = []
        for j in range(n):
            row = out[i * n + j].tolist()
            if encoder.eos_id in row:
                row = row[: row.index(encoder.eos_id) + 1]
                finish = "stop"
            else:
                while row and row[-1] == encoder.pad_id:
                    row.pop()
                finish = "length"
            text = encoder.tokenizer.decode(row, skip_special_tokens=True)
            group.append({"text": text, "ids": row, "finish_reason": finish, "n_tokens": len(row)})
        results.append(group)
    return results
