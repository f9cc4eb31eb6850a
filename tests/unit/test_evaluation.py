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
