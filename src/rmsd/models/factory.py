"""Tiny Qwen2-VL / Qwen3-VL models built from a config, saved and loaded like real checkpoints.

The same loading path (``AutoProcessor`` + ``AutoModelForImageTextToText``) serves the paper's
Qwen3-VL checkpoints, so everything downstream of this module is model-agnostic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    PreTrainedTokenizerFast,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    Qwen3VLProcessor,
    Qwen3VLVideoProcessor,
)

from rmsd.errors import ConfigError, MissingArtifactError
from rmsd.errors import check_known_keys
from rmsd.models.tokenizer import CHAT_TEMPLATE


@dataclass
class TinyVLMConfig:
    """Architecture of a tiny Qwen2-VL (text decoder + ViT vision tower)."""

    hidden: int = 128
    """Text hidden size (channels)."""
    layers: int = 2
    """Text decoder layers."""
    heads: int = 2
    """Attention heads; head_dim = hidden / heads (64 keeps vLLM-CPU compatible)."""
    kv_heads: int = 1
    """Key/value heads (grouped-query attention)."""
    intermediate: int = 384
    """Text MLP width."""
    vision_dim: int = 64
    """Vision tower embedding size."""
    vision_depth: int = 2
    """Vision tower blocks."""
    vision_heads: int = 2
    """Vision attention heads."""

    @classmethod
    def from_dict(cls, d: dict) -> "TinyVLMConfig":
        """Strict constructor: an unknown key raises :class:`ConfigError` naming it."""
        check_known_keys(cls, d, "model architecture")
        cfg = cls(**d)
        if cfg.hidden % cfg.heads or cfg.heads % cfg.kv_heads:
            raise ConfigError(f"hidden ({cfg.hidden}) must divide by heads ({cfg.heads}) and "
                              f"heads by kv_heads ({cfg.kv_heads})")
        return cfg


FAMILIES = ("qwen2_vl", "qwen3_vl")


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ConfigError(f"unknown model family {family!r}; valid: {list(FAMILIES)}")


def build_processor(tokenizer: PreTrainedTokenizerFast, min_pixels: int, max_pixels: int,
                    family: str = "qwen2_vl"):
    """A Qwen-VL processor with explicit pixel bounds (the defaults upscale small frames).

    Args:
        tokenizer: from :func:`rmsd.models.tokenizer.build_tokenizer`.
        min_pixels: lower bound on H x W per frame, in pixels (e.g. 28 * 28).
        max_pixels: upper bound on H x W per frame, in pixels (e.g. 112 * 112). For ``qwen3_vl``
            the video processor applies its bound to the whole clip (frames x H x W), as Qwen3-VL
            does; pass ``frames * per-frame pixels`` there.
        family: "qwen2_vl" (patch 14, ``Qwen2VLProcessor``) or "qwen3_vl" (patch 16,
            ``Qwen3VLProcessor`` with ``Qwen3VLVideoProcessor``: per-frame timestamps in the prompt;
            frames are used as given, ``do_sample_frames=False``).
    """
    _check_family(family)
    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    if family == "qwen3_vl":
        kw = dict(size=size, patch_size=16, temporal_patch_size=2, merge_size=2)
        return Qwen3VLProcessor(
            image_processor=Qwen2VLImageProcessor(**kw),
            video_processor=Qwen3VLVideoProcessor(**kw, do_sample_frames=False, cap_pixels_per_frame=False),
            tokenizer=tokenizer,
            chat_template=CHAT_TEMPLATE,
        )
    kw = dict(size=size, patch_size=14, temporal_patch_size=2, merge_size=2)
    return Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**kw),
        video_processor=Qwen2VLVideoProcessor(**kw, cap_pixels_per_frame=False),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )


def build_model(tokenizer: PreTrainedTokenizerFast, arch: TinyVLMConfig, seed: int,
                family: str = "qwen2_vl"):
    """A randomly initialised Qwen2-VL (or Qwen3-VL, ``family="qwen3_vl"``) of ``arch`` (fp32), seeded.

    Qwen3-VL: patch 16, interleaved M-RoPE, DeepStack features from the first vision block,
    ``text_config.head_dim = hidden / heads``.
    """
    _check_family(family)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in tokenizer.all_special_tokens}
    head_dim = arch.hidden // arch.heads
    half = head_dim // 2
    mrope = [half - 2 * (half // 3), half // 3, half // 3]  # sums to head_dim / 2
    pad, eos = ids["<|endoftext|>"], ids["<|im_end|>"]
    text = dict(
        vocab_size=len(tokenizer), hidden_size=arch.hidden, intermediate_size=arch.intermediate,
        num_hidden_layers=arch.layers, num_attention_heads=arch.heads,
        num_key_value_heads=arch.kv_heads, max_position_embeddings=2048,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope},
        bos_token_id=pad, eos_token_id=eos, pad_token_id=pad,
    )  # fmt: skip
    tokens = dict(
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )  # fmt: skip
    if family == "qwen3_vl":
        text["head_dim"] = head_dim
        text["rope_parameters"]["mrope_interleaved"] = True
        vision = dict(
            depth=arch.vision_depth, hidden_size=arch.vision_dim, intermediate_size=2 * arch.vision_dim,
            num_heads=arch.vision_heads, out_hidden_size=arch.hidden, patch_size=16,
            spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=64,
            deepstack_visual_indexes=[0],
        )  # fmt: skip
        cfg = Qwen3VLConfig(text_config=text, vision_config=vision, **tokens)
        model_cls = Qwen3VLForConditionalGeneration
    else:
        vision = dict(
            depth=arch.vision_depth, embed_dim=arch.vision_dim, hidden_size=arch.hidden,
            num_heads=arch.vision_heads, mlp_ratio=2, patch_size=14, spatial_merge_size=2,
            temporal_patch_size=2,
        )  # fmt: skip
        cfg = Qwen2VLConfig(text_config=text, vision_config=vision, **tokens)
        model_cls = Qwen2VLForConditionalGeneration
    torch.manual_seed(seed)
    model = model_cls(cfg)
    model.generation_config.pad_token_id = pad
    model.generation_config.eos_token_id = eos
    model.generation_config.bos_token_id = pad
    return model


def load_model(path: str | Path, dtype: torch.dtype = torch.float32):
    """Load ``(model, processor)`` from a local ``save_pretrained`` directory (safetensors only).

    Raises:
        MissingArtifactError: the directory or its config/weights are missing.
    """
    path = Path(path)
    if not (path / "config.json").exists():
        raise MissingArtifactError(f"{path}: not a model directory (no config.json)")
    processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(
        path, dtype=dtype, local_files_only=True, use_safetensors=True
    )
    return model, processor


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
