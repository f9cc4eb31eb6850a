"""transformers ``generate`` backend: K samples per item from one prefill (num_return_sequences)."""

from __future__ import annotations

import numpy as np
import torch

from rmsd.models.factory import load_model
from rmsd.models.inputs import VideoPromptEncoder, generate
from rmsd.teachers.base import SamplingParams, register_backend


@register_backend("hf")
class HFTeacher:
    """A local checkpoint directory served with transformers.

    Args:
        model_path: ``save_pretrained`` directory (safetensors).
        template: response template named in the prompt.
        batch_size: items per ``generate`` call.
    """

    def __init__(self, model_path: str, template: str = "answer_only", batch_size: int = 16):
        self.model, processor = load_model(model_path)
        self.model.eval()
        self.encoder = VideoPromptEncoder(processor, template)
        self.batch_size = batch_size

    def generate(self, items: list[dict], frames: list[np.ndarray], k: int, params: SamplingParams,
                 seed: int) -> list[list[dict]]:
        torch.manual_seed(seed)
        prompts = self.encoder.encode(items, frames)
        out = []
        for s in range(0, len(prompts), self.batch_size):
            out += generate(self.model, self.encoder, prompts[s:s + self.batch_size], n=k,
                            do_sample=params.temperature > 0, max_new_tokens=params.max_new_tokens,
                            temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
        for group in out:
            for g in group:
                g.pop("ids", None)
        return out
