"""Evaluate a model on a dataset of items: greedy decoding, scoring, metrics.json.

Two scoring paths share one loop (:func:`run_evaluation`):

* the embedded benchmark (``synth-*`` and any dataset that is not one of the paper's eight): the
  prompt is :func:`rmsd.tasks.build_prompt` and every response is scored with the same format checks
  and metrics as the scoring stage (:func:`rmsd.scoring.score_response`), so every variant and the
  teacher pools are scored identically;
* the paper's eight benchmarks (``cfg["benchmark"]``, set by rule eval_run): per-benchmark prompts
  and generation limits from the config, benchmark-defined answer extraction and metrics
  (:mod:`rmsd.evaluation.benchmarks`).

Unparseable answers score 0 and are counted (``n_unparsed``); nothing is guessed. Every sample
record carries the frames it was answered from (count, sampling policy, indices, timestamps), and
metrics.json the frame sampling convention. The run resumes per item after a kill: finished
samples are appended to ``samples.jsonl.partial`` one flushed line at a time, tagged with a key of
the run's settings, and only the missing items are generated on restart. ``samples.jsonl`` and
``metrics.json`` are written atomically at the end.
"""

from __future__ import annotations

import inspect
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from rmsd.errors import ConfigError, DataError, MissingArtifactError
from rmsd.errors import check_known_keys
from rmsd.evaluation.metrics import bootstrap_ci, pass_at_k
from rmsd.io import (
    JsonlAppender,
    atomic_write_json,
    read_jsonl_resumable,
    stable_hash,
    write_jsonl,
)
from rmsd.utils import get_logger

log = get_logger(__name__)

SAMPLING_CONVENTIONS: dict[str, str] = {
    "uniform": "F frames at idx_i = floor((i + 0.5) * T / F), i = 0..F-1, of the T decoded frames: "
               "the centre frame of each of F equal segments (both ends excluded; lmms-eval's "
               "linspace includes them, VLMEvalKit uses floor(i * T / (F + 1)), i = 1..F)",
    "head": "the first F frames (the last frame repeated when the video is shorter)",
}
"""Frame-sampling conventions (rmsd.frames.select), written into metrics.json."""


@dataclass
class EvalConfig:
    """Evaluation settings, recorded with every result."""

    max_new_tokens: int = 32
    """Generation limit in tokens (a benchmark's own ``max_new_tokens`` takes precedence)."""
    batch_size: int = 64
    """Items per generate call (a benchmark's own ``batch_size`` takes precedence)."""
    pass_k_samples: int = 0
    """n samples per item at ``pass_k_temperature`` for pass@k (0 disables)."""
    pass_k_temperature: float = 1.0
    """Sampling temperature for the pass@k samples."""
    pass_k_threshold: float = 0.5
    """A sample counts as correct for pass@k when its score >= this."""
    bootstrap: int = 1000
    """Bootstrap resamples for the 95% CI."""
    math_fallback: bool = False
    """Without math-verify, use the deterministic fallback (counted) instead of failing."""
    judge: dict | None = None
    """The judge hook: ``{"factory": "module:function", ...kwargs}`` or None."""
    benchmark: str | None = None
    """One of the paper's eight benchmarks, or None for the embedded benchmark path."""
    settings: dict | None = None
    """The benchmark's resolved settings (rmsd.evaluation.benchmarks.settings)."""

    @classmethod
    def from_dict(cls, d: dict) -> "EvalConfig":
        check_known_keys(cls, d, "evaluation")
        cfg = cls(**d)
        if cfg.benchmark is not None:
            from rmsd.evaluation.benchmarks.settings import resolve_settings

            cfg.settings = resolve_settings(cfg.benchmark, cfg.settings)
        return cfg

    @property
    def gen_max_new_tokens(self) -> int:
        s = self.settings or {}
        return int(s.get("max_new_tokens") or self.max_new_tokens)

    @property
    def gen_batch_size(self) -> int:
        s = self.settings or {}
        return int(s.get("batch_size") or self.batch_size)


def item_score(s: dict) -> float:
    """The evaluation score of a scored response: the metric if format-valid, else 0.

    Closed-ended: the task metric (accuracy, tIoU, IoU, ANLS, epsilon-accuracy); open-ended: ROUGE-L F1
    against the reference.
    """
    return float(s["metric"]) * float(s["valid"])


# --------------------------------------------------------------------------------------------------
# Generation and scoring interfaces
# --------------------------------------------------------------------------------------------------


class Generator(Protocol):
    """Produces responses: per item, ``n`` dicts with ``text`` and ``finish_reason``."""

    def __call__(self, items: list[dict], frames: list[np.ndarray], n: int, do_sample: bool,
                 max_new_tokens: int, temperature: float = 1.0, seed: int = 0
                 ) -> list[list[dict]]: ...


class HFGenerator:
    """A local HF model behind the :class:`Generator` interface (rmsd.models.inputs.generate).

    ``device``: where the model lives (batches are moved there); None = CPU, as collated.
    """

    def __init__(self, model, encoder, device=None):
        self.model = model
        self.encoder = encoder
        self.device = device

    def __call__(self, items, frames, n, do_sample, max_new_tokens, temperature=1.0, seed=0,
                 metadata=None):
        """``metadata``: per item its frame-manifest record (video metadata of timestamped
        prompts, :func:`rmsd.frames.metadata.video_metadata`)."""
        import torch

        from rmsd.models.inputs import generate

        prompts = self.encoder.encode(items, frames, metadata=metadata)
        if do_sample:
            torch.manual_seed(seed)
            return generate(self.model, self.encoder, prompts, n=n, do_sample=True,
                            max_new_tokens=max_new_tokens, temperature=temperature, top_p=1.0,
                            top_k=0, device=self.device)
        return generate(self.model, self.encoder, prompts, n=n, do_sample=False,
                        max_new_tokens=max_new_tokens, device=self.device)


class VLLMGenerator:
    """A model served by a vLLM engine (:class:`rmsd.teachers.vllm_engine.VLLMEngine`) behind the
    :class:`Generator` interface: greedy (temperature 0, ``n=1``) and pass@k samples (``n``, each
    item seeded from ``seed`` and its id) in one engine call per batch; the video goes in with the
    metadata of its frame-manifest record, as for the ``vllm`` teacher.
    """

    def __init__(self, engine, encoder):
        self.engine = engine
        self.encoder = encoder

    def requests(self, items, frames, n, do_sample, max_new_tokens, temperature=1.0, seed=0,
                 metadata=None):
        """The engine prompts and sampling parameters of one call (see :meth:`__call__`).

        Raises:
            ConfigError: an item without its frame-manifest record.
        """
        from rmsd.teachers.base import derive_seed
        from rmsd.teachers.vllm_engine import _records

        metas = _records(items, frames, metadata)
        reqs = [self.engine.request(self.encoder.prompt_text(it), fr, md)
                for it, fr, md in zip(items, frames, metas)]
        sps = [self.engine.sampling_params(n, temperature if do_sample else 0.0, 1.0, 0,
                                           max_new_tokens,
                                           derive_seed(seed, it["id"]) if do_sample else None)
               for it in items]
        return reqs, sps

    def __call__(self, items, frames, n, do_sample, max_new_tokens, temperature=1.0, seed=0,
                 metadata=None):
        return self.engine.generate(*self.requests(items, frames, n, do_sample, max_new_tokens,
                                                   temperature, seed, metadata))


#: Generation backends of evaluation (``evaluation.backend``).
EVAL_BACKENDS = ("hf", "vllm")
#: dtypes of the ``hf`` evaluation backend (``evaluation.dtype``).
HF_DTYPES = ("float32", "bfloat16", "float16", "auto")


def check_engine(engine: dict | None, where: str = "evaluation") -> dict:
    """Validate an evaluation engine config: ``{"backend": "hf", "dtype": ...}`` or
    ``{"backend": "vllm", **vLLM engine settings}`` (:data:`rmsd.teachers.vllm_engine.ENGINE_DEFAULTS`).

    Returns:
        The config completed with defaults (``hf``, dtype float32).

    Raises:
        ConfigError: unknown backend, dtype or engine key; names ``where``.
    """
    eng = dict(engine or {})
    backend = eng.pop("backend", "hf")
    if backend not in EVAL_BACKENDS:
        raise ConfigError(f"{where}.backend: {backend!r}; valid: {list(EVAL_BACKENDS)}")
    if backend == "hf":
        dtype = eng.pop("dtype", "float32")
        if dtype not in HF_DTYPES:
            raise ConfigError(f"{where}.dtype: {dtype!r} for backend hf; valid: {list(HF_DTYPES)}")
        if eng:
            raise ConfigError(f"{where}: key(s) {sorted(eng)} not valid for backend hf "
                              "(vLLM engine settings need backend vllm)")
        return {"backend": "hf", "dtype": dtype}
    from rmsd.teachers.vllm_engine import check_engine_config

    return {"backend": "vllm", **check_engine_config(eng, f"{where}.vllm")}


def engine_for(evaluation: dict, teacher_cfg: dict | None = None) -> dict:
    """The generation engine of one evaluation job (what rule eval_run passes as ``engine``).

    Args:
        evaluation: the config's ``evaluation`` block: ``backend`` (hf | vllm, default hf),
            ``dtype`` (hf), ``vllm`` (engine settings).
        teacher_cfg: for a teacher evaluated as is (the Table 1 reference rows), its
            ``sampling.teachers`` entry: the teacher's own sampling backend and engine settings are
            used (a 235B teacher is served by its ``tensor_parallel_size: 8`` vLLM engine in bf16,
            never loaded in float32 through ``hf``). An ``openai`` teacher is evaluated with
            ``evaluation``'s backend on its local model directory.

    Raises:
        ConfigError: as :func:`check_engine`.
    """
    from rmsd.teachers.vllm_engine import ENGINE_DEFAULTS

    if teacher_cfg and teacher_cfg.get("backend") == "vllm":
        eng = {k: v for k, v in teacher_cfg.items() if k in ENGINE_DEFAULTS}
        return check_engine({"backend": "vllm", **eng}, "sampling.teachers (reference row)")
    if teacher_cfg and teacher_cfg.get("backend", "hf") == "hf":
        return check_engine({"backend": "hf", "dtype": teacher_cfg.get("dtype", "auto")},
                            "sampling.teachers (reference row)")
    backend = evaluation.get("backend", "hf")
    if backend == "vllm":
        return check_engine({"backend": "vllm", **(evaluation.get("vllm") or {})})
    return check_engine({"backend": backend, "dtype": evaluation.get("dtype", "float32")})


def eval_device():
    """The GPU a local model is evaluated on: ``cuda`` when one is visible, else None (CPU)."""
    import torch

    return torch.device("cuda") if torch.cuda.is_available() else None


class NativeScorer:
    """The embedded benchmark's scoring: the scoring stage's format checks and metrics."""

    name = None

    def __init__(self, scoring: dict):
        from rmsd.scoring import ScoringConfig

        self.cfg = ScoringConfig.from_dict(scoring)

    def categories(self, item: dict) -> dict:
        return {}

    def score_batch(self, texts: Sequence[str], items: Sequence[dict], frame_sizes=None) -> list[dict]:
        from rmsd.scoring import score_response

        out = []
        for t, it in zip(texts, items):
            sc = score_response(t, it, self.cfg)
            out.append({"parsed": sc["parsed"], "valid": sc["valid"], "reason": sc["reason"],
                        "score": item_score(sc)})
        return out

    def info(self) -> dict:
        return {}


def make_benchmark_scorer(ecfg: EvalConfig):
    """The scorer of ``ecfg.benchmark`` with its math checker and judge (from the config)."""
    from rmsd.evaluation.benchmarks.extract import MathVerifier
    from rmsd.evaluation.benchmarks.judge import load_judge
    from rmsd.evaluation.benchmarks.scoring import MATH_BENCHMARKS, BenchmarkScorer

    math = MathVerifier(allow_fallback=ecfg.math_fallback) if ecfg.benchmark in MATH_BENCHMARKS else None
    s = ecfg.settings or {}
    needs_judge = s.get("judge_mode", "off") != "off" or "what" in (s.get("steps") or [])
    judge = load_judge(ecfg.judge) if needs_judge else None
    if needs_judge and judge is None:
        raise ConfigError(f"{ecfg.benchmark}: needs evaluation.judge (V-STaR 'what' step or "
                          f"judge_mode {s.get('judge_mode')!r})")
    return BenchmarkScorer(ecfg.benchmark, s, math=math, judge=judge)


def _scorer_info(scorer) -> dict:
    if isinstance(scorer, NativeScorer):
        return {}
    math = scorer.math
    return {
        "math_verify": None if math is None else {
            "version": math.version, "n_checked": math.n_checked, "n_fallback": math.n_fallback},
        "judge": None if scorer.judge is None else {
            "name": getattr(scorer.judge, "name", None), "n_judged": scorer.n_judged,
            "n_invalid": scorer.n_judge_invalid},
    }


# --------------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------------


def frame_record(rec: dict | None) -> dict:
    """What a sample records about its frames (from the frame manifest record)."""
    if not rec:
        return {}
    return {"num_frames": rec.get("num_frames"), "policy": rec.get("policy"),
            "indices": rec.get("indices"), "timestamps_s": rec.get("timestamps_s"),
            "stored_size_px": rec.get("stored_size_px")}


def frames_summary(recs: Sequence[dict | None], config: dict | None = None) -> dict:
    """The frame count and sampling convention of an evaluation, from its manifest records."""
    recs = [r for r in recs if r]
    policies = sorted({str(r.get("policy")) for r in recs})
    return {
        "num_frames": sorted({int(r["num_frames"]) for r in recs if r.get("num_frames") is not None}),
        "policy": policies,
        "sampling": {p: SAMPLING_CONVENTIONS.get(p, "unknown") for p in policies},
        "stored_size_px": sorted({tuple(r["stored_size_px"]) for r in recs
                                  if r.get("stored_size_px")}),
        "decoders": dict(Counter(str(r.get("decoder")) for r in recs)),
        "config": dict(config or {}),
    }


def with_question_image(item: dict, frames: np.ndarray, settings: dict | None) -> tuple[np.ndarray, int]:
    """Video-MMMU Adaptation: the question image replaces the last frames (lmms-eval appends it as
    the last frame; a frame count fixed by the extraction is kept, and two frames are replaced so
    the image fills one temporal patch of the video encoder).

    Returns:
        (frames, number of frames replaced). Unchanged when there is no image or the setting is off.

    Raises:
        MissingArtifactError: the image file does not exist (names it).
    """
    meta = item.get("meta") or {}
    path = meta.get("image")
    if not path or (settings or {}).get("adaptation_image", "none") != "last_frame":
        return frames, 0
    from PIL import Image

    p = Path(path)
    if not p.is_file():
        raise MissingArtifactError(f"{p}: expected question image of item {item['id']!r} does not exist")
    f, h, w = frames.shape[0], frames.shape[1], frames.shape[2]
    img = np.asarray(Image.open(p).convert("RGB").resize((w, h), Image.BILINEAR), dtype=np.uint8)
    k = min(2, f)
    out = np.array(frames, copy=True)
    out[f - k:] = img
    return out, k


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------


def run_evaluation(items: list[dict], frames: list[np.ndarray], out_dir: str | Path,
                   generator: Callable, scorer, ecfg: EvalConfig, seed: int = 0,
                   frame_recs: Sequence[dict | None] | None = None,
                   run_info: dict | None = None, extra: dict | None = None) -> dict:
    """Generate, score and aggregate; resumable per item; writes samples.jsonl and metrics.json.

    Args:
        items: the items (with frames).
        frames: per item (F, H, W, 3) uint8.
        out_dir: output directory.
        generator: a :class:`Generator`.
        scorer: :class:`NativeScorer` or :class:`rmsd.evaluation.benchmarks.BenchmarkScorer`.
        ecfg: evaluation settings.
        frame_recs: per item, its frame manifest record (recorded with the sample).
        run_info: identifies the run (model, config...); partial samples from a run with other
            settings are discarded on resume. Also written into metrics.json.
        extra: more entries for metrics.json (frames summary, modality...).

    Returns:
        The metrics dict (see :func:`evaluate`).
    """
    run_info = dict(run_info or {})
    run_key = stable_hash({"run": run_info, "eval": _sample_affecting(ecfg), "seed": seed})
    frame_recs = list(frame_recs) if frame_recs is not None else [None] * len(items)
    out = Path(out_dir)
    partial = out / "samples.jsonl.partial"
    kept = read_jsonl_resumable(partial)
    done = {r["item_id"]: r for r in kept if r.get("run_key") == run_key}
    if len(done) != len(kept):
        log.info("discarding %d partial samples from a run with other settings", len(kept) - len(done))
        write_jsonl(partial, list(done.values()))
    todo = [i for i, it in enumerate(items) if it["id"] not in done]
    # batched by length (video pixels, then prompt text), so a batch pads little; stable, and
    # results are keyed by item, so the order changes no sample
    todo.sort(key=lambda i: (int(np.prod(np.shape(frames[i])[:3])), _text_len(items[i])))
    meta_kw = "metadata" in inspect.signature(generator).parameters
    log.info("%d of %d items to generate (%d resumed)", len(todo), len(items), len(items) - len(todo))
    bs, mnt = ecfg.gen_batch_size, ecfg.gen_max_new_tokens
    t0 = time.time()
    with JsonlAppender(partial) as app:
        for s in range(0, len(todo), bs):
            idx = todo[s:s + bs]
            its = [items[i] for i in idx]
            frs, n_img = [], []
            for i in idx:
                f, k = with_question_image(items[i], frames[i], ecfg.settings)
                frs.append(f)
                n_img.append(k)
            sizes = [tuple(frame_recs[i]["stored_size_px"]) if frame_recs[i] and frame_recs[i].get(
                "stored_size_px") else (float(frames[i].shape[2]), float(frames[i].shape[1]))
                for i in idx]
            kw = {"metadata": [frame_recs[i] for i in idx]} if meta_kw else {}
            greedy = generator(its, frs, n=1, do_sample=False, max_new_tokens=mnt, **kw)
            scored = scorer.score_batch([g[0]["text"] for g in greedy], its, sizes)
            samples = None
            if ecfg.pass_k_samples:
                samples = generator(its, frs, n=ecfg.pass_k_samples, do_sample=True,
                                    max_new_tokens=mnt, temperature=ecfg.pass_k_temperature,
                                    seed=seed + s, **kw)
            for j, i in enumerate(idx):
                it, g, sc = items[i], greedy[j][0], scored[j]
                rec = {"item_id": it["id"], "task_type": it["task_type"], "video": it.get("video"),
                       "response": g["text"], "finish_reason": g.get("finish_reason"),
                       "parsed": sc["parsed"], "valid": sc["valid"], "reason": sc["reason"],
                       "score": sc["score"]}
                for k in ("method", "extra", "judge"):
                    if k in sc:
                        rec[k] = sc[k]
                cats = scorer.categories(it)
                if cats:
                    rec["categories"] = cats
                if samples is not None:
                    rec["sample_scores"] = [x["score"] for x in scorer.score_batch(
                        [x["text"] for x in samples[j]], [it] * len(samples[j]),
                        [sizes[j]] * len(samples[j]))]
                fr = frame_record(frame_recs[i])
                if n_img[j]:
                    fr["question_image_frames"] = n_img[j]
                rec["frames"] = fr
                rec["run_key"] = run_key
                app.write(rec)
                done[it["id"]] = rec
            n_done, secs = s + len(idx), time.time() - t0
            log.info("eval: %d/%d items, %.2f items/s, eta %.0fs", n_done, len(todo), n_done / secs,
                     (len(todo) - n_done) * secs / n_done)  # progress in the job log
    recs = [done[it["id"]] for it in items]
    metrics = aggregate_records(recs, ecfg, seed)
    metrics.update(_scorer_info(scorer))
    metrics.update(seconds=round(time.time() - t0, 2), n_generated=len(todo),
                   n_resumed=len(items) - len(todo), **run_info)
    metrics.update(extra or {})
    write_jsonl(out / "samples.jsonl", recs)
    atomic_write_json(out / "metrics.json", metrics)
    partial.unlink(missing_ok=True)
    return metrics


def _text_len(item: dict) -> int:
    return len(str(item.get("question", ""))) + sum(len(str(o)) for o in item.get("options") or [])


def _sample_affecting(ecfg: EvalConfig) -> dict:
    """The evaluation settings that change a sample (batch size and bootstrap do not), for the
    resume key: a retry with a smaller batch reuses the finished samples."""
    d = {k: v for k, v in ecfg.__dict__.items() if k not in ("batch_size", "bootstrap")}
    if d.get("settings"):
        d["settings"] = {k: v for k, v in d["settings"].items() if k != "batch_size"}
    return d


def model_fingerprint(model_dir: str | Path) -> list:
    """(name, size, mtime) of the files of a model directory: a cheap identity for the resume key,
    so partial samples of an earlier model at the same path are not reused."""
    p = Path(model_dir)
    if not p.is_dir():
        return []
    return sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in p.iterdir() if f.is_file())


def aggregate_records(recs: list[dict], ecfg: EvalConfig, seed: int = 0) -> dict:
    """metrics.json content from sample records: :func:`aggregate` over the benchmark's headline
    items, then, for the paper's benchmarks, ``overall``/``ci95`` replaced by the benchmark's
    primary metric and its breakdowns added (rmsd.evaluation.benchmarks.aggregate)."""
    if ecfg.benchmark is None:
        return aggregate(recs, ecfg, seed)
    from rmsd.evaluation.benchmarks.aggregate import is_main_record, summarise_benchmark

    main = [r for r in recs if is_main_record(ecfg.benchmark, r)]
    metrics = aggregate(main, ecfg, seed)
    metrics["macro_over_task_types"] = metrics["overall"]
    summary = summarise_benchmark(ecfg.benchmark, recs, ecfg.bootstrap, seed)
    metrics["overall"] = summary.pop("overall")
    metrics["ci95"] = summary.pop("ci95")
    metrics["benchmark"] = ecfg.benchmark
    metrics.update(summary)
    metrics["n_by_method"] = dict(Counter(str(r.get("method")) for r in recs))
    return metrics


def evaluate(model_dir: str, items_path: str, frames_dir: str, out_dir: str, cfg: dict,
             scoring: dict, template: str, seed: int = 0, threads: int = 1,
             frames_meta: dict | None = None, engine: dict | None = None) -> dict:
    """Evaluate ``model_dir`` on ``items_path``; write ``samples.jsonl`` and ``metrics.json``.

    Resumes per item: samples already in ``samples.jsonl.partial`` (from a run with the same
    settings) are not generated again.

    Args:
        cfg: the evaluation config of this dataset (:func:`rmsd.evaluation.benchmarks.eval_params`);
            with ``benchmark`` set, the items must come from that benchmark's importer.
        frames_meta: the frame extraction config, recorded in metrics.json beside the convention
            read from the frame manifest.
        engine: the generation engine (:func:`engine_for`): ``{"backend": "hf", "dtype": ...}``
            (transformers ``generate``; default, float32) or ``{"backend": "vllm", ...engine
            settings}`` (one vLLM engine for the whole job). Recorded in metrics.json.

    Returns:
        The metrics dict: ``overall`` (embedded benchmark: macro mean over task types; a paper
        benchmark: its primary metric, described in ``primary``), ``micro``, ``per_task`` (mean, n,
        ci95), ``n_items``, ``n_unparsed``, ``ci95`` (of ``overall``), ``frames``, optional
        ``pass_at_k``; for the paper's benchmarks also ``breakdowns`` and the benchmark-specific
        entries (``m_avg``/``micro_avg``, ``tracks``/``delta_knowledge``, ``vstar``).
    """
    from rmsd.evaluation.benchmarks.scoring import build_prompt_text
    from rmsd.frames import load_items_with_frames, open_frames
    from rmsd.models.factory import load_model
    from rmsd.models.inputs import VideoPromptEncoder
    from rmsd.utils import seed_everything, set_threads

    ecfg = EvalConfig.from_dict(cfg)
    set_threads(threads)
    seed_everything(seed)
    items, frames, n_missing = load_items_with_frames(
        items_path, frames_dir,
        hint="evaluation scores every item of a benchmark, so it needs every item's frames: fix or "
             "remove the video (results/frames/<dataset>/skipped.json names it), then rerun")
    if not items:
        raise DataError(f"{items_path}: no items to evaluate (empty items file)")
    if ecfg.benchmark is not None:
        bad = [it["id"] for it in items if it.get("dataset") != ecfg.benchmark]
        if bad:
            raise DataError(f"{items_path}: item(s) {bad[:3]} are not from benchmark "
                            f"{ecfg.benchmark!r} (dataset field)")
        scorer = make_benchmark_scorer(ecfg)
    else:
        scorer = NativeScorer(scoring)
    store = open_frames(frames_dir)
    frame_recs = [store.record(it["id"]) if it["id"] in store else None for it in items]
    engine = check_engine(engine)
    if engine["backend"] == "vllm":
        from transformers import AutoProcessor

        from rmsd.teachers.vllm_engine import VLLMEngine

        processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
        vllm_engine = VLLMEngine(model_dir, seed=seed,
                                 **{k: v for k, v in engine.items() if k != "backend"})
    else:
        import torch

        dtype = engine["dtype"]
        device = eval_device()
        if dtype == "auto":
            dtype = "bfloat16" if device is not None else "float32"
        model, processor = load_model(model_dir, dtype=getattr(torch, dtype))
        model.eval()
        if device is not None:
            model.to(device)  # CPU runs are unchanged
    if ecfg.benchmark is None:
        enc = VideoPromptEncoder(processor, template)
    else:
        enc = BenchmarkPromptEncoder(processor, template, ecfg.settings, build_prompt_text)
    from rmsd.io import sha256_file

    run_info = {"model": str(model_dir), "items": str(items_path), "template": template,
                "eval_config": dict(ecfg.__dict__),
                "fingerprint": {"model_files": model_fingerprint(model_dir),
                                "items_sha256": sha256_file(items_path)}}
    extra = {"n_missing_frames": n_missing, "frames": frames_summary(frame_recs, frames_meta),
             "modality": {"video_frames": True, "audio": False, "subtitles": False}}
    if ecfg.benchmark is not None:
        # records read, skipped by reason and left out by a setting (import.json of data_import)
        from rmsd.evaluation.benchmarks.importers import import_counts

        extra.update(import_counts(items_path))
    run_info["engine"] = engine
    generator = (VLLMGenerator(vllm_engine, enc) if engine["backend"] == "vllm"
                 else HFGenerator(model, enc, device))
    metrics = run_evaluation(items, frames, out_dir, generator, scorer, ecfg, seed,
                             frame_recs=frame_recs, run_info=run_info, extra=extra)
    if engine["backend"] == "vllm":
        metrics["engine_stats"] = vllm_engine.stats()
        atomic_write_json(Path(out_dir) / "metrics.json", metrics)
    log.info("eval %s on %s: overall %.4f", model_dir, items_path, metrics["overall"])
    return metrics


def BenchmarkPromptEncoder(processor, template: str, settings: dict, build: Callable):  # noqa: N802
    """A :class:`rmsd.models.inputs.VideoPromptEncoder` whose prompt is the benchmark's (system
    prompt + video + filled prompt template) instead of the embedded benchmark's."""
    from rmsd.models.inputs import VideoPromptEncoder

    class _BenchmarkPromptEncoder(VideoPromptEncoder):
        def prompt_text(self, item: dict) -> str:
            msgs = []
            if settings.get("system_prompt"):
                msgs.append({"role": "system", "content": settings["system_prompt"]})
            msgs.append({"role": "user", "content": [
                {"type": "video"}, {"type": "text", "text": build(item, settings, self.template)}]})
            return self.processor.apply_chat_template(msgs, add_generation_prompt=True,
                                                       tokenize=False)

    return _BenchmarkPromptEncoder(processor, template)


def aggregate(recs: list[dict], cfg: EvalConfig, seed: int = 0) -> dict:
    """Per-task and overall scores with 95% bootstrap CIs clustered by video.

    ``overall`` is the macro mean over task types (each task weighs the same); ``micro`` the mean
    over items.
    """
    by_task: dict[str, list[dict]] = defaultdict(list)
    for r in recs:
        by_task[r["task_type"]].append(r)
    per_task = {}
    for t, rs in sorted(by_task.items()):
        sc = [r["score"] for r in rs]
        per_task[t] = {"mean": float(np.mean(sc)), "n": len(rs),
                       "n_unparsed": sum(not r["valid"] for r in rs),
                       "ci95": bootstrap_ci(sc, [r.get("video") or r["item_id"] for r in rs],
                                            cfg.bootstrap, seed)}
    # macro-mean CI: resample items within each task, average the task means
    rng = np.random.default_rng(seed)
    boots = np.zeros(cfg.bootstrap)
    for rs in by_task.values():
        x = np.array([r["score"] for r in rs])
        boots += x[rng.integers(0, len(x), size=(cfg.bootstrap, len(x)))].mean(1)
    boots /= max(1, len(by_task))
    metrics = {
        "overall": float(np.mean([v["mean"] for v in per_task.values()])) if per_task else float("nan"),
        "micro": float(np.mean([r["score"] for r in recs])) if recs else float("nan"),
        "ci95": [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))] if recs else None,
        "per_task": per_task,
        "n_items": len(recs),
        "n_unparsed": sum(not r["valid"] for r in recs),
    }
    if recs and "sample_scores" in recs[0]:
        n = len(recs[0]["sample_scores"])
        metrics["pass_at_k"] = {
            str(k): float(np.mean([pass_at_k(n, sum(s >= cfg.pass_k_threshold for s in r["sample_scores"]), k)
                                   for r in recs]))
            for k in range(1, n + 1)
        }
        metrics["pass_at_k_meta"] = {"n_samples": n, "temperature": cfg.pass_k_temperature,
                                     "threshold": cfg.pass_k_threshold,
                                     "estimator": "unbiased 1 - C(n-c, k) / C(n, k) (Chen et al. 2021)"}
    return metrics
