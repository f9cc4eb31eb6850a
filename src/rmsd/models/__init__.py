"""Model factory (tiny Qwen2-VL built offline), loading, and batch encoding for video inputs."""

from rmsd.models.factory import TinyVLMConfig, build_model, build_processor, count_parameters, load_model
from rmsd.models.tokenizer import CHAT_TEMPLATE, SPECIAL_TOKENS, build_tokenizer

__all__ = [
    "CHAT_TEMPLATE", "SPECIAL_TOKENS", "TinyVLMConfig", "build_model", "build_processor",
    "build_tokenizer", "count_parameters", "load_model",
]  # fmt: skip
