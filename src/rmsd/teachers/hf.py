"""transformers ``generate`` backend: K samples per item from one prefill (num_return_sequences)."""

from __future__ import annotations

import numpy as np
import torch

from rmsd.errors import ConfigError
from rmsd.models.factory import load_model
from rmsd.models.inputs import VideoPromptEncoder, generate
from rmsd.teachers.base import SamplingParams, path_revision, register_backend

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class _OnDevice:
    """Runs ``model.generate`` on the model's device with CPU-collated inputs; returns CPU ids."""

    def __init__(self, model):
        self.model = model

    def generate(self, **kw):
        dev = self.model.device
        kw = {k: v.to(dev) if torch.is_tensor(v) else v for k, v in kw.items()}
        return self.model.generate(**kw).cpu()


@register_backend("hf")
class HFTeacher:
    """A local checkpoint directory served with transformers.

    Args:
        model_path: ``save_pretrained`` directory (safetensors).
        template: response template named in the prompt.
        batch_size: items per ``generate`` call (each gives k rows sharing the item's prefill).
        device: "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:1", ...
        dtype: "auto" (bfloat16 on CUDA, float32 on CPU), "float32", "bfloat16", "float16".
    """

    def __init__(self, model_path: str, template: str = "answer_only", batch_size: int = 16,
                 device: str = "auto", dtype: str = "auto"):
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype == "auto":
            dtype = "float32" if device == "cpu" else "bfloat16"
        if dtype not in DTYPES:
            raise ConfigError(f"hf teacher dtype {dtype!r}; valid: {sorted(DTYPES) + ['auto']}")
        self.model, processor = load_model(model_path, dtype=DTYPES[dtype])
        self.model.to(device).eval()
        self.device = device
        self.encoder = VideoPromptEncoder(processor, template)
        self.batch_size = int(batch_size)

    @staticmethod
    def revision_of(model_path: str, **_) -> str:
        """Content fingerprint of the model directory (weights, config, tokenizer, processor)."""
        return path_revision(model_path)

    def generate(self, items: list[dict], frames: list[np.ndarray], k: int, params: SamplingParams,
                 seed: int, metadata: list[dict | None] | None = None) -> list[list[dict]]:
        """K samples per item; ``metadata``: per item its frame-manifest record (the video
        metadata of timestamped prompts, :func:`rmsd.frames.metadata.video_metadata`)."""
        torch.manual_seed(seed)
        prompts = self.encoder.encode(items, frames, metadata=metadata)
        model = self.model if self.device == "cpu" else _OnDevice(self.model)
        out = []
        for s in range(0, len(prompts), self.batch_size):
            out += generate(model, self.encoder, prompts[s:s + self.batch_size], n=k,
                            do_sample=params.temperature > 0, max_new_tokens=params.max_new_tokens,
                            temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
        for group in out:
            for g in group:
                g.pop("ids", None)
        return out
