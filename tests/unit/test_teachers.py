"""Teacher sampling: backend registry and config, the per-sample cache (resume, larger K, new
teachers, re-sharding), sharding and gathering, the hf backend's shared prefill, vLLM requests."""

from __future__ import annotations

import copy
import inspect
import json
import logging
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import yaml

from rmsd.config import check_config
from rmsd.errors import ConfigError, DataError, TeacherError
from rmsd.frames.metadata import video_metadata
from rmsd.io import read_jsonl, write_jsonl
from rmsd.tasks import build_prompt
from rmsd.teachers import (
    BUILTIN_BACKENDS, TeacherSpec, gather_pool, get_backend, get_backend_class, model_dir_revision,
    register_backend, sample_pool, shard_bounds,
)
from rmsd.teachers.base import BACKEND_KEYS, check_teacher_config, derive_seed

ROOT = Path(__file__).resolve().parents[2]
F, S = 8, 56
ITEMS = [
    {"id": "it0", "task_type": "mcq", "question": "What colour is the moving shape?",
     "options": ["red", "green", "blue", "yellow"], "answer": "B"},
    {"id": "it1", "task_type": "open", "question": "Describe the video.", "options": None,
     "answer": "a red circle moves up"},
    {"id": "it2", "task_type": "temporal", "question": "When is the square visible?",
     "options": None, "answer": [0.5, 2.0]},
]


def make_dataset(root: Path, items=ITEMS, seed: int = 0) -> tuple[Path, Path, np.ndarray]:
    """items.jsonl plus an rmsd.frames-layout directory (manifest.jsonl + frames.npy)."""
    frames = np.random.default_rng(seed).integers(0, 256, (len(items), F, S, S, 3), dtype=np.uint8)
    fdir = root / "frames"
    fdir.mkdir(parents=True, exist_ok=True)
    np.save(fdir / "frames.npy", frames)
    write_jsonl(fdir / "manifest.jsonl", [
        {"item_id": it["id"], "row": i, "num_frames": F, "indices": list(range(1, 2 * F, 2)),
         "fps": 2.0, "num_video_frames": 2 * F,
         "stored_size_px": [S, S], "video_sha256": f"sha-{it['id']}"} for i, it in enumerate(items)])
    write_jsonl(root / "items.jsonl", items)
    return root / "items.jsonl", fdir, frames


@register_backend("counting")
class CountingTeacher:
    """Deterministic fake: text = item|seed|j; logs every call; can fail after N calls."""

    calls: list[tuple[list[str], int, int]] = []
    fail_after_calls: int | None = None
    instances = 0

    def __init__(self, template: str = "answer_only"):
        CountingTeacher.instances += 1

    def generate(self, items, frames, k, params, seed):
        if self.fail_after_calls is not None and len(CountingTeacher.calls) >= self.fail_after_calls:
            raise RuntimeError("killed")
        assert all(f.shape == (F, S, S, 3) and f.dtype == np.uint8 for f in frames)
        CountingTeacher.calls.append(([it["id"] for it in items], k, seed))
        return [[{"text": f"{it['id']}|{seed}|{j}", "finish_reason": "stop", "n_tokens": j + 1}
                 for j in range(k)] for it in items]


@pytest.fixture
def counting():
    CountingTeacher.calls = []
    CountingTeacher.fail_after_calls = None
    CountingTeacher.instances = 0
    yield CountingTeacher
    CountingTeacher.fail_after_calls = None


def spec(name="t1", **kw) -> TeacherSpec:
    cfg = {"backend": "counting", "temperature": 0.7, "top_p": 0.9, "top_k": 0, "max_new_tokens": 8,
           "seed": 3, **kw}
    return TeacherSpec.from_config(name, cfg)


def run(tmp_path, ds, sp, K, out="pool.jsonl", **kw):
    items, fdir, _ = ds
    kw.setdefault("cache_dir", tmp_path / "cache" / sp.name)
    return sample_pool(items, fdir, tmp_path / out, sp, K, **kw)


# ---------------------------------------------------------------------------- registry and config


def test_unknown_backend_lists_valid_names():
    with pytest.raises(ConfigError, match=r"unknown teacher backend 'nope'.*'hf'.*'openai'.*'vllm'"):
        get_backend("nope")
    with pytest.raises(ConfigError, match="unknown backend 'nope'"):
        check_teacher_config("x", {"backend": "nope"})


def test_teacher_spec_from_config_splits_keys():
    sp = TeacherSpec.from_config("a", {"backend": "hf", "temperature": 0.5, "top_k": 5, "batch_size": 4},
                                 template="think_answer", model_path="m/dir")
    assert sp.params.as_dict() == {"temperature": 0.5, "top_p": 0.8, "top_k": 5, "max_new_tokens": 1024,
                                   "seed": 0}
    assert sp.backend_args == {"batch_size": 4, "template": "think_answer", "model_path": "m/dir"}
    assert sp.template == "think_answer"
    sp = TeacherSpec.from_config("a", {"backend": "hf", "path": "pre/trained", "template": "answer_only"},
                                 model_path="ignored")
    assert sp.backend_args["model_path"] == "pre/trained" and sp.template == "answer_only"
    with pytest.raises(ConfigError, match=r"sampling.teachers.a.*\['tensor_parallel_size'\].*'hf'"):
        TeacherSpec.from_config("a", {"backend": "hf", "tensor_parallel_size": 2}, model_path="m")
    with pytest.raises(ConfigError, match="needs a model"):
        TeacherSpec.from_config("a", {"backend": "hf"})
    with pytest.raises(ConfigError, match=r"needs key\(s\) \['endpoint'\]"):
        TeacherSpec.from_config("a", {"backend": "openai", "model": "m"})
    with pytest.raises(ConfigError, match=r"\['path'\] not valid for backend 'openai'"):
        TeacherSpec.from_config("a", {"backend": "openai", "model": "m", "endpoint": "http://x/v1",
                                      "path": "p"})
    assert TeacherSpec.from_config("a", {"backend": "openai", "model": "m", "endpoint": "http://x/v1",
                                         "revision": "r7"}).model_revision() == "r7"


@pytest.mark.parametrize("name", sorted(BUILTIN_BACKENDS))
def test_backend_keys_match_constructors(name):
    # the vllm module imports vllm lazily, so its class is importable everywhere
    params = set(inspect.signature(get_backend_class(name).__init__).parameters)
    assert BACKEND_KEYS[name] == params - {"self", "model_path", "template", "teacher", "llm"}


def test_check_config_accepts_external_teachers_only_with_path_or_endpoint():
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["sampling"]["teachers"]["served"] = {"backend": "openai", "endpoint": "http://127.0.0.1:1/v1",
                                             "model": "m"}
    cfg["sampling"]["teachers"]["pre"] = {"backend": "hf", "path": "some/dir"}
    cfg["recipe"]["selection"]["teachers"] = ["strong", "served", "pre"]
    check_config(cfg)
    bad = copy.deepcopy(cfg)
    bad["sampling"]["teachers"]["ghost"] = {"backend": "hf"}
    with pytest.raises(ConfigError, match=r"ghost.*without a `path` or `endpoint`"):
        check_config(bad)


def test_shard_bounds_and_seed_exact():
    assert [shard_bounds(3, s, 2) for s in range(2)] == [(0, 1), (1, 3)]
    assert [shard_bounds(10, s, 4) for s in range(4)] == [(0, 2), (2, 5), (5, 7), (7, 10)]
    assert shard_bounds(3, 0, 1) == (0, 3)
    with pytest.raises(ValueError):
        shard_bounds(3, 2, 2)
    assert derive_seed(3, "it0", 0) == derive_seed(3, "it0", 0) != derive_seed(3, "it0", 4)
    assert 0 <= derive_seed("x") < 2**31


# ---------------------------------------------------------------------------- cache and resume


def test_records_cache_hits_and_raising_k(tmp_path, counting):
    ds = make_dataset(tmp_path)
    sp = spec()
    st = run(tmp_path, ds, sp, K=4)
    assert (st["n_generated"], st["n_cached"], st["n_calls"], st["n_samples"]) == (12, 0, 1, 12)
    assert counting.calls == [(["it0", "it1", "it2"], 4, derive_seed(3, "it0", 0))]
    recs = read_jsonl(tmp_path / "pool.jsonl")
    seed = derive_seed(3, "it0", 0)
    first = {k: v for k, v in recs[0].items() if k not in ("cache_key", "revision")}
    assert first == {"item_id": "it0", "teacher": "t1", "k": 0, "text": f"it0|{seed}|0",
                     "finish_reason": "stop", "n_tokens": 1, "temperature": 0.7, "top_p": 0.9,
                     "top_k": 0, "max_new_tokens": 8, "seed": 3, "backend": "counting", "n_distinct": 4}
    assert [(r["item_id"], r["k"]) for r in recs] == [(i, k) for i in ("it0", "it1", "it2") for k in range(4)]
    assert len({r["cache_key"] for r in recs}) == 12
    before = (tmp_path / "pool.jsonl").read_bytes()

    # the same run again: everything is cached, the backend is not even built
    counting.calls, counting.instances = [], 0
    st = run(tmp_path, ds, sp, K=4)
    assert (st["n_generated"], st["n_cached"], counting.calls, counting.instances) == (0, 12, [], 0)
    assert (tmp_path / "pool.jsonl").read_bytes() == before

    # K 4 -> 8: only k = 4..7, in one call per chunk, from a seed that differs from the first call
    st = run(tmp_path, ds, sp, K=8)
    assert (st["n_generated"], st["n_cached"]) == (12, 12)
    assert counting.calls == [(["it0", "it1", "it2"], 4, derive_seed(3, "it0", 4))]
    recs8 = read_jsonl(tmp_path / "pool.jsonl")
    drop = lambda r: {k: v for k, v in r.items() if k != "n_distinct"}  # noqa: E731  (depends on K)
    assert [drop(r) for r in recs8 if r["k"] < 4] == [drop(r) for r in recs]
    assert {r["n_distinct"] for r in recs8} == {8} and {r["n_distinct"] for r in recs} == {4}
    assert [r["text"] for r in recs8 if r["item_id"] == "it1" and r["k"] >= 4] == [
        f"it1|{derive_seed(3, 'it0', 4)}|{j}" for j in range(4)]

    # K 8 -> 2: a subset, nothing generated
    counting.calls = []
    st = run(tmp_path, ds, sp, K=2)
    assert (st["n_generated"], st["n_samples"], counting.calls) == (0, 6, [])


def test_new_teacher_generates_only_its_samples(tmp_path, counting):
    ds = make_dataset(tmp_path)
    cache = tmp_path / "cache"
    run(tmp_path, ds, spec("a"), K=4, out="a.jsonl", cache_dir=cache)
    assert sum(len(ids) * k for ids, k, _ in counting.calls) == 12
    counting.calls = []
    st = run(tmp_path, ds, spec("b"), K=4, out="b.jsonl", cache_dir=cache)  # same cache dir, keyed by name
    assert st["n_generated"] == 12 and sum(len(ids) * k for ids, k, _ in counting.calls) == 12
    counting.calls = []
    assert run(tmp_path, ds, spec("a"), K=4, out="a.jsonl", cache_dir=cache)["n_generated"] == 0
    assert counting.calls == []


def test_cache_key_covers_sampling_prompt_and_frames(tmp_path, counting):
    items_path, fdir, _ = ds = make_dataset(tmp_path)
    run(tmp_path, ds, spec(), K=2)
    # a new temperature: everything again
    assert run(tmp_path, ds, spec(temperature=1.0), K=2)["n_generated"] == 6
    # chunking is not part of the key
    assert run(tmp_path, ds, spec(), K=2, chunk_items=1)["n_generated"] == 0
    # an edited question: only that item
    items = copy.deepcopy(ITEMS)
    items[1]["question"] = "Describe the video briefly."
    write_jsonl(items_path, items)
    counting.calls = []
    assert run(tmp_path, ds, spec(), K=2)["n_generated"] == 2
    assert [c[0] for c in counting.calls] == [["it1"]]
    # a re-extracted video (new hash in the manifest): only that item
    man = read_jsonl(fdir / "manifest.jsonl")
    man[2]["video_sha256"] = "changed"
    write_jsonl(fdir / "manifest.jsonl", man)
    counting.calls = []
    assert run(tmp_path, ds, spec(), K=2)["n_generated"] == 2
    assert [c[0] for c in counting.calls] == [["it2"]]
    # another template changes every prompt
    assert run(tmp_path, ds, spec(template="think_answer"), K=2)["n_generated"] == 6
    # an explicit revision (a new model) changes every key
    assert run(tmp_path, ds, spec(revision="v2"), K=2)["n_generated"] == 6


def test_killed_job_resumes_with_missing_samples_only(tmp_path, counting):
    ds = make_dataset(tmp_path)
    sp = spec()
    counting.fail_after_calls = 2
    with pytest.raises(RuntimeError, match="killed"):
        run(tmp_path, ds, sp, K=4, chunk_items=1)
    assert not (tmp_path / "pool.jsonl").exists()
    cache_file = tmp_path / "cache" / "t1" / "shard0-of-1.jsonl"
    assert len(read_jsonl(cache_file)) == 8
    with open(cache_file, "a") as f:  # a kill in the middle of a line
        f.write('{"key": "0123456789abcdef01234567", "item_id": "it2", "te')
    counting.fail_after_calls, counting.calls = None, []
    st = run(tmp_path, ds, sp, K=4, chunk_items=1)
    assert (st["n_generated"], st["n_cached"]) == (4, 8)
    assert counting.calls == [(["it2"], 4, derive_seed(3, "it2", 0))]
    assert len(read_jsonl(cache_file)) == 12  # the torn line was dropped before appending
    # the result equals an uninterrupted run
    counting.calls = []
    st = run(tmp_path, ds, sp, K=4, out="fresh.jsonl", chunk_items=1, cache_dir=tmp_path / "fresh")
    assert read_jsonl(tmp_path / "fresh.jsonl") == read_jsonl(tmp_path / "pool.jsonl")


def test_partially_sampled_items_are_grouped_by_missing_k(tmp_path, counting):
    ds = make_dataset(tmp_path)
    run(tmp_path, ds, spec(), K=2, chunk_items=1)
    cache_file = tmp_path / "cache" / "t1" / "shard0-of-1.jsonl"
    lines = cache_file.read_text().splitlines(keepends=True)
    cache_file.write_text("".join(lines[:3]))  # it0 complete, it1 has k=0 only, it2 nothing
    counting.calls = []
    st = run(tmp_path, ds, spec(), K=2, chunk_items=1)
    assert st["n_generated"] == 3
    assert sorted((c[0], c[1]) for c in counting.calls) == [(["it1"], 1), (["it2"], 2)]
    recs = read_jsonl(tmp_path / "pool.jsonl")
    assert [r["k"] for r in recs if r["item_id"] == "it1"] == [0, 1]


def test_shards_gather_to_the_unsharded_pool(tmp_path, counting):
    ds = make_dataset(tmp_path)
    sp = spec()
    cache = tmp_path / "cache"
    outs = []
    for s in range(2):
        st = run(tmp_path, ds, sp, K=3, out=f"shard{s}.jsonl", shard=s, n_shards=2, cache_dir=cache)
        assert st["n_items"] == [1, 2][s]
        outs.append(tmp_path / f"shard{s}.jsonl")
    assert sorted(p.name for p in cache.iterdir()) == ["shard0-of-2.jsonl", "shard1-of-2.jsonl"]
    assert gather_pool(outs, tmp_path / "pool.jsonl", K=3) == {"n_shards": 2, "n_items": 3, "n_samples": 9}
    gathered = read_jsonl(tmp_path / "pool.jsonl")
    assert [(r["item_id"], r["k"]) for r in gathered] == [(i, k) for i in ("it0", "it1", "it2") for k in range(3)]
    # re-sharding reads the other writers' files: nothing is generated again
    counting.calls = []
    st = run(tmp_path, ds, sp, K=3, out="one.jsonl", cache_dir=cache)
    assert (st["n_generated"], counting.calls) == (0, [])
    assert read_jsonl(tmp_path / "one.jsonl") == gathered
    with pytest.raises(DataError, match="duplicate sample"):
        gather_pool([outs[0], outs[0]], tmp_path / "dup.jsonl")
    with pytest.raises(DataError, match="lack K=4"):
        gather_pool(outs, tmp_path / "k.jsonl", K=4)


def test_bad_backend_output_and_missing_frames(tmp_path, counting):
    items_path, fdir, _ = ds = make_dataset(tmp_path)

    @register_backend("short")
    class Short:
        def __init__(self, template="answer_only"):
            pass

        def generate(self, items, frames, k, params, seed):
            return [[{"text": "x", "finish_reason": "stop", "n_tokens": 1}] for _ in items]

    with pytest.raises(TeacherError, match=r"teacher 't1', item 'it0'.*1 samples, expected 2"):
        run(tmp_path, ds, TeacherSpec.from_config("t1", {"backend": "short"}), K=2)
    write_jsonl(items_path, ITEMS[:1] + [{"id": "it3", "task_type": "open", "question": "q", "answer": "a"}]
                + ITEMS[1:])
    with pytest.raises(DataError, match=r"'it3' has no frames.*1 item\(s\) without frames"):
        run(tmp_path, ds, spec(), K=2)
    # frames.on_error: skip -> the item is left out (and counted); shards are cut from the rest
    st = run(tmp_path, ds, spec(), K=2, on_missing="skip", shard=1, n_shards=2)
    assert (st["n_items"], st["n_missing_frames"]) == (2, 1)
    assert {r["item_id"] for r in read_jsonl(tmp_path / "pool.jsonl")} == {"it1", "it2"}


def test_progress_log_line(tmp_path, counting):
    ds = make_dataset(tmp_path)
    lines = []
    handler = logging.Handler()
    handler.emit = lambda rec: lines.append(rec.getMessage())
    logger = logging.getLogger("rmsd.teachers.pool")
    logger.addHandler(handler)
    try:
        run(tmp_path, ds, spec(), K=2, chunk_items=1, log_every_s=1e-9)
    finally:
        logger.removeHandler(handler)
    progress = [m for m in lines if "samples/s" in m]
    assert [m.split(":")[1].split(",")[0].strip() for m in progress] == ["2/6 samples", "4/6 samples",
                                                                         "6/6 samples"]


# ---------------------------------------------------------------------------- real backends


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from rmsd.models import TinyVLMConfig, build_model, build_processor, build_tokenizer

    d = tmp_path_factory.mktemp("tiny")
    corpus = [build_prompt(it, t) for it in ITEMS for t in ("answer_only", "think_answer")]
    corpus += ["<answer>B</answer>", "<think>x</think><answer>a red circle</answer>"]
    tok = build_tokenizer(corpus, 400)
    proc = build_processor(tok, 784, 3136)
    arch = TinyVLMConfig(hidden=64, layers=1, heads=1, kv_heads=1, intermediate=128, vision_dim=32,
                         vision_depth=1, vision_heads=1)
    build_model(tok, arch, seed=0).save_pretrained(d)
    proc.save_pretrained(d)
    return d


def test_hf_backend_shares_prefill_and_records_finish(tmp_path, tiny_model_dir):
    ds = make_dataset(tmp_path)
    sp = TeacherSpec.from_config("tiny", {"backend": "hf", "temperature": 1.0, "top_p": 1.0, "top_k": 0,
                                          "max_new_tokens": 6, "batch_size": 2},
                                 model_path=str(tiny_model_dir))
    from transformers.generation.utils import GenerationMixin

    seen = []
    orig = GenerationMixin.generate

    def counting_generate(self, *a, **kw):
        seen.append((kw["input_ids"].shape[0], kw["num_return_sequences"]))
        return orig(self, *a, **kw)

    GenerationMixin.generate = counting_generate
    try:
        st = run(tmp_path, ds, sp, K=3)
    finally:
        GenerationMixin.generate = orig
    assert seen == [(2, 3), (1, 3)]  # one generate per batch of items, K rows from each prefill
    recs = read_jsonl(tmp_path / "pool.jsonl")
    assert st["n_generated"] == 9 and len(recs) == 9
    for r in recs:
        assert r["finish_reason"] in ("stop", "length") and isinstance(r["text"], str)
        assert 1 <= r["n_tokens"] <= 6 and (r["finish_reason"] == "stop" or r["n_tokens"] == 6)
    assert recs[0]["revision"] == model_dir_revision(tiny_model_dir)


def test_model_dir_revision_tracks_model_files(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "model.safetensors").write_bytes(b"\0" * 5000)
    r0 = model_dir_revision(d)
    (d / "summary.json").write_text('{"seconds": 3}')  # run summaries are not the model
    (d / "train_log.jsonl").write_text("{}\n")
    assert model_dir_revision(d) == r0
    (d / "model.safetensors").write_bytes(b"\0" * 4999 + b"\1")
    r1 = model_dir_revision(d)
    assert r1 != r0
    # large files: sampled blocks, so a change in a sampled block is seen
    assert model_dir_revision(d, full_hash_max_bytes=10) == model_dir_revision(d, full_hash_max_bytes=10)
    with pytest.raises(ConfigError, match="not a directory"):
        model_dir_revision(tmp_path / "nope")


class FakeVLLM(types.ModuleType):
    """Stands in for the vllm module: records engine and sampling arguments."""

    def __init__(self):
        super().__init__("vllm")
        fake = self
        self.engines, self.generated = [], []

        class SamplingParams:
            def __init__(self, **kw):
                self.kw = kw

        class Out:
            def __init__(self, text, ids, reason):
                self.text, self.token_ids, self.finish_reason = text, ids, reason

        class LLM:
            def __init__(self, **kw):
                fake.engines.append(kw)

            def generate(self, prompts, sps, use_tqdm=True):
                fake.generated.append((prompts, sps))
                return [types.SimpleNamespace(outputs=[Out(f"s{j}", list(range(j + 2)), "length" if j else "stop")
                                                       for j in range(sp.kw["n"])]) for sp in sps]

        self.SamplingParams, self.LLM = SamplingParams, LLM


def test_vllm_backend_builds_requests(tmp_path, tiny_model_dir, monkeypatch):
    fake = FakeVLLM()
    monkeypatch.setitem(sys.modules, "vllm", fake)
    ds = make_dataset(tmp_path)
    sp = TeacherSpec.from_config("v", {"backend": "vllm", "path": str(tiny_model_dir), "tensor_parallel_size": 2,
                                       "temperature": 0.7, "top_p": 0.8, "top_k": 0, "max_new_tokens": 16,
                                       "seed": 1, "engine_args": {"enforce_eager": True}})
    st = run(tmp_path, ds, sp, K=3)
    assert fake.engines == [{"model": str(tiny_model_dir), "tensor_parallel_size": 2, "dtype": "auto",
                             "gpu_memory_utilization": 0.85, "max_model_len": 32768, "max_num_seqs": 256,
                             "limit_mm_per_prompt": {"image": 0, "video": 1}, "seed": 0,
                             "load_format": "safetensors", "enforce_eager": True}]
    (prompts, sps), = fake.generated  # one engine call for the chunk
    frames = ds[2]
    recs = {r["item_id"]: r for r in read_jsonl(Path(ds[1]) / "manifest.jsonl")}
    assert len(prompts) == 3
    for i, (p, s) in enumerate(zip(prompts, sps)):
        assert p["prompt"].count("<|vision_start|><|video_pad|><|vision_end|>") == 1
        assert build_prompt(ITEMS[i], "answer_only") in p["prompt"]
        assert p["prompt"].endswith("<|im_start|>assistant\n")
        video, meta = p["multi_modal_data"]["video"]  # (frames, metadata), as vLLM's Qwen-VL take it
        np.testing.assert_array_equal(video, frames[i])
        assert meta == video_metadata(recs[ITEMS[i]["id"]])
        assert meta["do_sample_frames"] is False
        assert s.kw == {"n": 3, "temperature": 0.7, "top_p": 0.8, "top_k": 0, "max_tokens": 16,
                        "seed": derive_seed(derive_seed(1, "it0", 0), ITEMS[i]["id"])}
    assert len({s.kw["seed"] for s in sps}) == 3
    recs = read_jsonl(tmp_path / "pool.jsonl")
    assert [(r["k"], r["text"], r["n_tokens"], r["finish_reason"]) for r in recs[:3]] == [
        (0, "s0", 2, "stop"), (1, "s1", 3, "length"), (2, "s2", 4, "length")]
    assert st["n_generated"] == 9


def test_vllm_missing_gives_install_line(monkeypatch, tiny_model_dir):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    sp = TeacherSpec.from_config("v", {"backend": "vllm", "path": str(tiny_model_dir)})
    with pytest.raises(ConfigError, match=r"bash setup.sh --vllm"):
        sp.build()


def _vllm_importable() -> bool:
    try:
        import vllm  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _vllm_importable(), reason="vllm is not installed (its own environment: bash setup.sh --vllm)")
def test_vllm_engine_samples_tiny_model(tmp_path, tiny_model_dir):
    ds = make_dataset(tmp_path)
    sp = TeacherSpec.from_config("v", {"backend": "vllm", "path": str(tiny_model_dir), "dtype": "float32",
                                       "temperature": 1.0, "top_p": 1.0, "top_k": 0, "max_new_tokens": 8,
                                       "engine_args": {"enforce_eager": True, "kv_cache_memory_bytes": 1 << 30}})
    st = run(tmp_path, ds, sp, K=4)
    recs = read_jsonl(tmp_path / "pool.jsonl")
    assert st["n_generated"] == 12 and all(1 <= r["n_tokens"] <= 8 for r in recs)
    assert {r["finish_reason"] for r in recs} <= {"stop", "length"}
