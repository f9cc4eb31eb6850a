"""Optional judge models (benchmarks.md 2.5, 2.6): the hook, a deterministic judge, a local HF judge.

A judge is any callable ``judge(requests: list[JudgeRequest]) -> list[JudgeVerdict]`` with a
``name`` attribute. ``evaluation.judge`` in the config names a factory ``"module:function"``; the
other keys of that mapping are passed to it as keyword arguments::

    evaluation:
      judge: {factory: "rmsd.evaluation.benchmarks.judge:hf_judge", model: /models/Qwen2.5-72B-Instruct}

Judges are used for V-STaR "what" answers (official: Qwen2.5-72B-Instruct scores 0-3, >= 2 is
correct) and, when a benchmark's ``judge_mode`` is ``unparsed`` or ``always``, for free-form math
answers (MathVerse's official protocol uses a binary judge on the last 30 words). The judge's raw
output is kept with every judged sample, and the judge's name in metrics.json.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rmsd.errors import ConfigError

__all__ = ["Judge", "JudgeRequest", "JudgeVerdict", "exact_match_judge", "hf_judge", "load_judge"]

VSTAR_SYSTEM = (
    "As an AI assistant, your task is to evaluate a candidate answer in comparison to a given "
    "correct answer. The question itself, the correct 'groundtruth' answer, and the candidate "
    "answer will be provided to you. Your assessment should range from 0 to 3, based solely on the "
    "semantic similarity between the groundtruth and the candidate answer, disregarding any "
    "grammatical differences. A rating of 0 suggests no similarity, implying the candidate answer "
    "is entirely incorrect. A rating of 1 suggests low similarity, meaning the candidate answer is "
    "largely incorrect. A rating of 2 suggests high similarity, meaning the candidate answer is "
    "largely correct. Lastly, a rating of 3 indicates complete similarity, which means the "
    "candidate answer is entirely correct. Your response should be a single integer from 0, 1, 2, "
    "or 3."
)
VSTAR_USER = "Question: {question}\nGroundtruth answer: {reference}\nCandidate answer: {candidate}\nYour response: "
MATH_SYSTEM = (
    "You compare a model's answer to a math question with the standard answer. Decide whether the "
    "two are mathematically consistent (equal values, equivalent expressions, the same option). "
    "Reply with a single digit: 1 if consistent, 0 if not."
)
MATH_USER = "Question: {question}\nStandard answer: {reference}\nModel answer: {candidate}\nJudgement: "
MATH_TRUNCATE_WORDS = 30
"""MathVerse (lmms-eval ``trunk_response: 30``): only the response's last 30 words are judged."""


@dataclass(frozen=True)
class JudgeRequest:
    """One answer to judge."""

    item_id: str
    kind: str
    """"vstar_what" (0-3 scale, correct when >= 2) or "math" (binary)."""
    question: str
    reference: str
    candidate: str


@dataclass(frozen=True)
class JudgeVerdict:
    """A judge's decision on one request."""

    correct: bool
    score: float
    """In [0, 1] (V-STaR: rating / 3)."""
    raw: str
    """The judge's raw output (kept with the sample)."""
    valid: bool = True
    """False when the judge's output could not be read (scored as incorrect, counted)."""


class Judge(Protocol):
    """The judge hook."""

    name: str

    def __call__(self, requests: Sequence[JudgeRequest]) -> list[JudgeVerdict]: ...


def verdict_from_text(kind: str, raw: str) -> JudgeVerdict:
    """Read a judge's output deterministically: V-STaR a whole integer 0-3 (the official code's
    ``int(response)``; anything else is invalid and scores 0); math the first 0/1 digit."""
    s = raw.strip()
    if kind == "vstar_what":
        if re.fullmatch(r"[0-3]", s):
            r = int(s)
            return JudgeVerdict(r >= 2, r / 3.0, raw)
        return JudgeVerdict(False, 0.0, raw, valid=False)
    m = re.search(r"[01]", s)
    if m is None:
        return JudgeVerdict(False, 0.0, raw, valid=False)
    return JudgeVerdict(m.group(0) == "1", float(m.group(0)), raw)


def _norm(s: str) -> str:
    return " ".join(re.sub(r"[^\w\s.]", " ", s.casefold()).split()).rstrip(".")


def exact_match_judge(**_: Any) -> Callable[[Sequence[JudgeRequest]], list[JudgeVerdict]]:
    """A model-free judge: normalised string equality (casefold, punctuation dropped).

    Deterministic; useful as a stand-in and to exercise the hook without a model.
    """

    def judge(requests: Sequence[JudgeRequest]) -> list[JudgeVerdict]:
        out = []
        for r in requests:
            ok = bool(_norm(r.candidate)) and _norm(r.candidate) == _norm(r.reference)
            raw = ("3" if ok else "0") if r.kind == "vstar_what" else ("1" if ok else "0")
            out.append(verdict_from_text(r.kind, raw))
        return out

    judge.name = "exact_match"  # type: ignore[attr-defined]
    return judge


def hf_judge(model: str, max_new_tokens: int = 16, batch_size: int = 8,
             dtype: str = "auto") -> Callable[[Sequence[JudgeRequest]], list[JudgeVerdict]]:
    """A local Hugging Face chat model as judge (greedy), e.g. Qwen2.5-72B-Instruct for V-STaR.

    Args:
        model: a local model directory (loaded offline).
        max_new_tokens: generation limit of the judge.
        batch_size: requests per generate call.
        dtype: torch dtype name or "auto".
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model, local_files_only=True)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    lm = AutoModelForCausalLM.from_pretrained(model, local_files_only=True, torch_dtype=dtype,
                                              device_map="auto")
    lm.eval()

    def prompt(r: JudgeRequest) -> str:
        if r.kind == "vstar_what":
            system, user = VSTAR_SYSTEM, VSTAR_USER
            cand = r.candidate
        else:
            system, user = MATH_SYSTEM, MATH_USER
            cand = " ".join(r.candidate.split()[-MATH_TRUNCATE_WORDS:])
        msgs = [{"role": "system", "content": system},
                {"role": "user", "content": user.format(question=r.question, reference=r.reference,
                                                        candidate=cand)}]
        return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)

    @torch.no_grad()
    def judge(requests: Sequence[JudgeRequest]) -> list[JudgeVerdict]:
        out: list[JudgeVerdict] = []
        for s in range(0, len(requests), batch_size):
            chunk = requests[s:s + batch_size]
            enc = tok([prompt(r) for r in chunk], return_tensors="pt", padding=True).to(lm.device)
            gen = lm.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
            texts = tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            out.extend(verdict_from_text(r.kind, t) for r, t in zip(chunk, texts))
        return out

    judge.name = f"hf:{model}"  # type: ignore[attr-defined]
    return judge


def load_judge(cfg: dict | None) -> Judge | None:
    """Build the judge named by ``evaluation.judge`` (None when not configured).

    Raises:
        ConfigError: ``factory`` is not ``"module:function"`` or cannot be imported.
    """
    if not cfg:
        return None
    cfg = dict(cfg)
    factory = str(cfg.pop("factory", ""))
    mod_name, _, fn_name = factory.partition(":")
    if not mod_name or not fn_name:
        raise ConfigError(f"evaluation.judge.factory: expected 'module:function', got {factory!r}")
    try:
        fn = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"evaluation.judge.factory {factory!r} cannot be loaded: {e}") from None
    judge = fn(**cfg)
    if not callable(judge):
        raise ConfigError(f"evaluation.judge.factory {factory!r} did not return a callable")
    if not hasattr(judge, "name"):
        try:
            judge.name = factory  # type: ignore[attr-defined]
        except AttributeError:
            pass
    return judge
