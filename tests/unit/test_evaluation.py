"""Evaluation statistics: unbiased pass@k, clustered bootstrap, aggregation."""

import math

import pytest

from rmsd.evaluation.metrics import bootstrap_ci, pass_at_k
from rmsd.evaluation.run import EvalConfig, aggregate


def test_pass_at_k_exact():
    assert pass_at_k(16, 0, 1) == 0.0
    assert pass_at_k(16, 16, 1) == 1.0
    assert pass_at_k(16, 4, 1) == pytest.approx(0.25)
    assert pass_at_k(16, 4, 2) == pytest.approx(1 - math.comb(12, 2) / math.comb(16, 2))
    assert pass_at_k(16, 4, 13) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_bootstrap_constant_and_clusters():
    assert bootstrap_ci([0.5] * 10) == (0.5, 0.5)
    lo, hi = bootstrap_ci([0, 1] * 50, seed=1)
    assert 0.38 < lo < 0.5 < hi < 0.62
    # two clusters of identical items: resampling clusters gives only 0, 0.5 or 1
    lo, hi = bootstrap_ci([0, 0, 1, 1], clusters=["a", "a", "b", "b"], n_boot=200)
    assert lo == 0.0 and hi == 1.0


def test_aggregate_macro_micro_unparsed():
    recs = [
        {"item_id": "1", "task_type": "mcq", "score": 1.0, "valid": True},
        {"item_id": "2", "task_type": "mcq", "score": 0.0, "valid": False},
        {"item_id": "3", "task_type": "open", "score": 0.5, "valid": True},
    ]
    m = aggregate(recs, EvalConfig(bootstrap=50))
    assert m["overall"] == pytest.approx((0.5 + 0.5) / 2)
    assert m["micro"] == pytest.approx(0.5)
    assert m["n_unparsed"] == 1
    assert m["per_task"]["mcq"]["n_unparsed"] == 1
    assert m["n_items"] == 3


# --------------------------------------------------------------------------------------------------
# The evaluation loop with a fake generator: resume after a kill, pass@k, benchmark path, frames
# --------------------------------------------------------------------------------------------------

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from rmsd.evaluation.benchmarks import import_benchmark  # noqa: E402
from rmsd.evaluation.run import (  # noqa: E402
    NativeScorer,
    frames_summary,
    make_benchmark_scorer,
    run_evaluation,
    with_question_image,
)

FIX = str(Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks")


def native_items(n):
    """Embedded-benchmark style items: mcq with answer cycling A..D."""
    return [{"id": f"i{k:02d}", "dataset": "synth-test", "task_type": "mcq", "video": f"v{k // 2}",
             "question": "Which?", "options": ["a", "b", "c", "d"], "answer": "ABCD"[k % 4]}
            for k in range(n)]


class FakeGenerator:
    """Answers the right letter for even items, "B" otherwise; raises after ``fail_after`` items."""

    def __init__(self, fail_after=None, n_correct_samples=None):
        self.generated: list[str] = []
        self.fail_after = fail_after
        self.n_correct_samples = n_correct_samples

    def __call__(self, items, frames, n, do_sample, max_new_tokens, temperature=1.0, seed=0):
        out = []
        for it in items:
            if not do_sample:
                if self.fail_after is not None and len(self.generated) >= self.fail_after:
                    raise RuntimeError("killed")
                self.generated.append(it["id"])
                letter = it["answer"] if int(it["id"][1:]) % 2 == 0 else "B"
                out.append([{"text": f"<answer>{letter}</answer>", "finish_reason": "stop"}])
            else:
                c = self.n_correct_samples(it)
                out.append([{"text": f"<answer>{it['answer'] if j < c else 'Z'}</answer>",
                             "finish_reason": "stop"} for j in range(n)])
        return out


def frames_for(items):
    return [np.zeros((2, 4, 4, 3), np.uint8) for _ in items]


def test_resume_after_kill_generates_only_missing_items(tmp_path):
    items = native_items(10)
    cfg = EvalConfig(batch_size=3, bootstrap=20)
    scorer = NativeScorer({"template": "answer_only"})
    killed = FakeGenerator(fail_after=7)  # dies in the third batch, after two full batches
    with pytest.raises(RuntimeError, match="killed"):
        run_evaluation(items, frames_for(items), tmp_path, killed, scorer, cfg, run_info={"m": 1})
    partial = tmp_path / "samples.jsonl.partial"
    assert [json.loads(x)["item_id"] for x in partial.read_text().splitlines()] == killed.generated[:6]
    assert not (tmp_path / "metrics.json").exists() and not (tmp_path / "samples.jsonl").exists()
    resumed = FakeGenerator()
    m = run_evaluation(items, frames_for(items), tmp_path, resumed, scorer, cfg, run_info={"m": 1})
    assert resumed.generated == [it["id"] for it in items[6:]]  # only the missing ones
    assert (m["n_generated"], m["n_resumed"], m["n_items"]) == (4, 6, 10)
    assert not partial.exists()
    # identical to an uninterrupted run
    fresh = tmp_path / "fresh"
    m2 = run_evaluation(items, frames_for(items), fresh, FakeGenerator(), scorer, cfg,
                        run_info={"m": 1})
    assert (tmp_path / "samples.jsonl").read_text() == (fresh / "samples.jsonl").read_text()
    # even items answered right (5), odd items "B": right for i01, i05, i09
    assert m["overall"] == m2["overall"] and m["micro"] == pytest.approx(0.8)


def test_partial_from_other_settings_is_discarded(tmp_path):
    items = native_items(4)
    scorer = NativeScorer({"template": "answer_only"})
    with pytest.raises(RuntimeError):
        run_evaluation(items, frames_for(items), tmp_path, FakeGenerator(fail_after=2), scorer,
                       EvalConfig(batch_size=2, bootstrap=20), run_info={"model": "a"})
    gen = FakeGenerator()
    run_evaluation(items, frames_for(items), tmp_path, gen, scorer,
                   EvalConfig(batch_size=2, bootstrap=20), run_info={"model": "b"})
    assert gen.generated == [it["id"] for it in items]  # another model: nothing reused


def test_pass_at_k_wired_into_metrics(tmp_path):
    items = native_items(4)
    correct = {"i00": 0, "i01": 1, "i02": 4, "i03": 2}
    gen = FakeGenerator(n_correct_samples=lambda it: correct[it["id"]])
    m = run_evaluation(items, frames_for(items), tmp_path, gen, NativeScorer({}),
                       EvalConfig(pass_k_samples=4, bootstrap=20), run_info={})
    expect = {k: np.mean([pass_at_k(4, c, k) for c in correct.values()]) for k in range(1, 5)}
    assert m["pass_at_k"] == pytest.approx({str(k): v for k, v in expect.items()})
    assert m["pass_at_k"]["1"] == pytest.approx((0 + 0.25 + 1 + 0.5) / 4)
    assert m["pass_at_k_meta"]["n_samples"] == 4
    rec = json.loads((tmp_path / "samples.jsonl").read_text().splitlines()[2])
    assert rec["sample_scores"] == [1.0, 1.0, 1.0, 1.0]


def test_benchmark_path_end_to_end(tmp_path):
    items = import_benchmark("VideoMME", FIX).items  # answers C, A, D, B
    replies = {"001-1": "The answer is C.", "001-2": "I think B", "002-1": "maybe A or D",
               "003-1": "(B)"}

    def gen(its, frs, n, do_sample, max_new_tokens, temperature=1.0, seed=0):
        assert max_new_tokens == 16  # VideoMME's own limit, not the global one
        return [[{"text": replies[it["id"]], "finish_reason": "stop"}] for it in its]

    cfg = EvalConfig.from_dict({"max_new_tokens": 99, "bootstrap": 50, "benchmark": "VideoMME",
                                "settings": {}})
    frame_recs = [{"num_frames": 2, "policy": "uniform", "indices": [1, 3],
                   "timestamps_s": [0.5, 1.5], "stored_size_px": [4, 4], "decoder": "pyav"}
                  for _ in items]
    m = run_evaluation(items, frames_for(items), tmp_path, gen, make_benchmark_scorer(cfg), cfg,
                       frame_recs=frame_recs, run_info={"model": "fake"},
                       extra={"frames": frames_summary(frame_recs, {"num_frames": 2})})
    for key in ("overall", "micro", "per_task", "n_items", "n_unparsed", "ci95"):
        assert key in m
    assert (m["overall"], m["micro"], m["n_items"], m["n_unparsed"]) == (0.5, 0.5, 4, 1)
    assert m["benchmark"] == "VideoMME" and m["primary"]["metric"] == "accuracy"
    assert m["breakdowns"]["duration"]["short"]["mean"] == 0.5
    assert m["frames"]["num_frames"] == [2] and m["frames"]["policy"] == ["uniform"]
    assert "centre frame" in m["frames"]["sampling"]["uniform"]
    recs = [json.loads(x) for x in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert recs[0]["frames"]["indices"] == [1, 3] and recs[0]["categories"]["duration"] == "short"
    assert [r["parsed"] for r in recs] == ["C", "B", None, "B"]
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["overall"] == 0.5 and written["model"] == "fake"


def test_question_image_replaces_last_frames(tmp_path):
    from PIL import Image

    img = tmp_path / "q.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(img)
    frames = np.zeros((4, 6, 6, 3), np.uint8)
    item = {"id": "a", "meta": {"image": str(img)}}
    out, k = with_question_image(item, frames, {"adaptation_image": "last_frame"})
    assert k == 2 and (out[2:, ..., 0] == 255).all() and (out[:2] == 0).all()
    assert (frames == 0).all()  # input untouched
    assert with_question_image(item, frames, {"adaptation_image": "none"})[1] == 0
    from rmsd.errors import MissingArtifactError
    with pytest.raises(MissingArtifactError, match="missing.png"):
        with_question_image({"id": "b", "meta": {"image": str(tmp_path / "missing.png")}}, frames,
                            {"adaptation_image": "last_frame"})


def test_eval_config_rejects_unknown_keys():
    with pytest.raises(Exception, match="unknown evaluation key"):
        EvalConfig.from_dict({"max_new_token": 3})
    cfg = EvalConfig.from_dict({"benchmark": "LongVideoBench", "settings": {"batch_size": 7}})
    assert (cfg.gen_batch_size, cfg.gen_max_new_tokens) == (7, 32)
    assert EvalConfig.from_dict({"max_new_tokens": 5}).gen_max_new_tokens == 5


def test_resume_survives_a_smaller_batch_size(tmp_path):
    items = native_items(6)
    scorer = NativeScorer({"template": "answer_only"})
    with pytest.raises(RuntimeError):
        run_evaluation(items, frames_for(items), tmp_path, FakeGenerator(fail_after=4), scorer,
                       EvalConfig(batch_size=4, bootstrap=20), run_info={"m": 1})
    gen = FakeGenerator()
    run_evaluation(items, frames_for(items), tmp_path, gen, scorer,
                   EvalConfig(batch_size=1, bootstrap=50), run_info={"m": 1})
    assert gen.generated == ["i04", "i05"]
