"""Unit tests of the streaming data path's pieces: epoch sampler, step count, stage split, selection
index (SFT on all K), FrameStore, and the ablation switches of selection and the discriminator loss."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from rmsd.errors import ConfigError, DataError, TrainingError
from rmsd.frames import FrameStore, open_frames
from rmsd.io import write_jsonl
from rmsd.scoring import SelectionConfig, item_rng, select_item
from rmsd.train import data as D
from rmsd.train import rl


def test_doctests():
    for mod in (D, rl):
        assert doctest.testmod(mod).failed == 0, mod.__name__


@pytest.mark.parametrize("n,B,world", [(12, 4, 1), (12, 4, 2), (10, 4, 2), (7, 6, 3)])
def test_every_example_once_per_epoch_over_ranks(n, B, world):
    """The global stream (all ranks' slices of every step, in order) is perm(0) ++ perm(1) ++ ...:
    each window of n positions starting at an epoch boundary holds every example once."""
    steps = D.steps_for(3, n, B)
    per_rank = [list(D.EpochBatchSampler(n, B, r, world, seed=5, start=0, stop=steps)) for r in range(world)]
    stream = [i for s in range(steps) for r in range(world) for i in per_rank[r][s]]
    assert len(stream) == steps * B >= 3 * n
    for e in range(3):
        assert sorted(stream[e * n:(e + 1) * n]) == list(range(n))
    # the order differs between epochs and between seeds
    assert stream[:n] != stream[n:2 * n] or n < 3
    other = D.EpochBatchSampler(n, B, 0, 1, seed=6, start=0, stop=1).permutation(0)
    assert list(other) != list(D.EpochBatchSampler(n, B, 0, 1, seed=5, start=0, stop=1).permutation(0))


def test_resume_restores_the_position_in_the_epoch():
    full = list(D.EpochBatchSampler(10, 4, 1, 2, seed=0, start=0, stop=9))
    resumed = list(D.EpochBatchSampler(10, 4, 1, 2, seed=0, start=4, stop=9))
    assert resumed == full[4:] and len(resumed) == 5


def test_sampler_errors():
    with pytest.raises(ConfigError, match="does not divide by the 3 processes"):
        D.EpochBatchSampler(10, 4, 0, 3, 0, 0, 1)
    with pytest.raises(TrainingError, match="no examples"):
        D.EpochBatchSampler(0, 4, 0, 1, 0, 0, 1)
    with pytest.raises(ConfigError, match="epochs must be > 0"):
        D.steps_for(0, 10, 4)
    assert D.steps_for(1, 50_000, 128) == 391 and D.steps_for(1, 60_000, 128) == 469


def _items(tmp_path, n):
    p = tmp_path / "items.jsonl"
    write_jsonl(p, [{"id": f"i{k}", "task_type": "mcq", "question": "q", "answer": "A"} for k in range(n)])
    return p


def test_stage_split_disjoint_seeded_and_sized(tmp_path):
    p = _items(tmp_path, 20)
    a1, a2 = D.stage_split(p, 8, 10, seed=0)
    assert (len(a1), len(a2)) == (8, 10) and not a1 & a2
    b1, b2 = D.stage_split(p, 8, None, seed=0)
    assert b1 == a1 and len(b2) == 12 and not b1 & b2
    c1, _ = D.stage_split(p, 8, 10, seed=1)
    assert c1 != a1  # another seed, another split
    assert D.stage_split(p, None, None) == (None, None)
    n1, n2 = D.stage_split(p, None, 5)
    assert (len(n1), len(n2)) == (15, 5)
    with pytest.raises(ConfigError, match="exceed the 20 items"):
        D.stage_split(p, 15, 10)


def _frames(tmp_path, ids, F=2, px=28):
    fdir = tmp_path / "frames"
    fdir.mkdir()
    arr = np.arange(len(ids) * F * px * px * 3, dtype=np.uint64).astype(np.uint8).reshape(len(ids), F, px, px, 3)
    np.save(fdir / "frames.npy", arr)
    write_jsonl(fdir / "manifest.jsonl", [{"item_id": i, "row": r, "num_frames": F, "fps": 2.0}
                                          for r, i in enumerate(ids)])
    return fdir, arr


def test_frame_store_contract(tmp_path):
    fdir, arr = _frames(tmp_path, ["a", "b", "c"])
    st = open_frames(fdir)
    assert isinstance(st, FrameStore) and len(st) == 3 and "b" in st and "z" not in st
    assert st.ids() == ["a", "b", "c"]
    assert st.record("c") == {"item_id": "c", "row": 2, "num_frames": 2, "fps": 2.0}
    f = st.frames("b")
    assert f.dtype == np.uint8 and f.shape == (2, 28, 28, 3) and np.array_equal(f, arr[1])
    assert not f.flags.writeable
    with pytest.raises(DataError, match="no record for item 'z'"):
        st.record("z")
    (fdir / "manifest.jsonl").write_text((fdir / "manifest.jsonl").read_text() + '{"item_id": "a", "row": 0}\n')
    with pytest.raises(DataError, match="duplicate item_id 'a'"):
        open_frames(fdir)


def test_scan_selection_sft_on_all_k_and_policies(tmp_path):
    items = _items(tmp_path, 4)
    fdir, _ = _frames(tmp_path, ["i0", "i1", "i2"])  # i3 has no frames
    pool = [{"text": "<answer>A</answer>", "q": 1.0, "p": 0.5}, {"text": "<answer>B</answer>", "q": 0.0, "p": 0.5}]
    sel = [{"item_id": "i0", "sft_target": "t0", "sft_targets": ["t0", "u0", "v0"], "pool": pool},
           {"item_id": "i1", "sft_target": "t1", "pool": pool},
           {"item_id": "i2", "sft_target": "t2", "pool": []},
           {"item_id": "i3", "sft_target": "t3", "pool": pool}]
    write_jsonl(tmp_path / "sel.jsonl", sel)
    kw = dict(on_missing="skip", on_empty="skip", need_pool=False)
    ix = D.scan_selection(tmp_path / "sel.jsonl", items, fdir, None, sft=True, **kw)
    assert ix.n_records == 2 and len(ix) == 4  # i0 gives 3 SFT examples (all K), i1 one
    assert ix.ex_rec.tolist() == [0, 0, 0, 1] and ix.ex_tgt.tolist() == [0, 1, 2, 0]
    assert ix.counts == {"n_missing_frames": 1, "n_empty_pool": 1, "n_other_stage": 0}
    ix2 = D.scan_selection(tmp_path / "sel.jsonl", items, fdir, {"i1", "i3"}, sft=False, **kw)
    assert ix2.n_records == 1 and ix2.counts["n_other_stage"] == 2
    with pytest.raises(DataError, match=r"sel.jsonl:3: item 'i2' has an empty pool"):
        D.scan_selection(tmp_path / "sel.jsonl", items, fdir, None, sft=True, on_missing="skip",
                         on_empty="fail", need_pool=False)
    with pytest.raises(DataError, match=r"sel.jsonl:4: item 'i3' has no frames"):
        D.scan_selection(tmp_path / "sel.jsonl", items, fdir, None, sft=True, on_missing="fail",
                         on_empty="skip", need_pool=False)


def test_scan_selection_rejects_malformed_records(tmp_path):
    """A bad selection record is a DataError naming file:line; an empty ``sft_targets`` list is
    counted like an empty pool (or fails under on_empty="fail")."""
    items = _items(tmp_path, 2)
    fdir, _ = _frames(tmp_path, ["i0", "i1"])
    pool = [{"text": "A", "q": 1.0, "p": 1.0}]
    ok = {"item_id": "i1", "sft_target": "A", "pool": pool}
    kw = dict(on_missing="skip", need_pool=False, sft=True)
    cases = [
        ({"item_id": "i0", "sft_target": "A", "sft_targets": [None, "A"], "pool": pool},
         r"sel.jsonl:1: item 'i0': sft_targets must be a list of strings, got \[None, 'A'\]"),
        ({"item_id": "i0", "sft_target": "A", "pool": ["A", "B"]},
         r"sel.jsonl:1: item 'i0': pool\[0\] must be an object with a string 'text', got 'A'"),
        ({"item_id": ["i0"], "sft_target": "A", "pool": []},
         r"sel.jsonl:1: item_id must be a non-empty string, got list \['i0'\]"),
    ]
    for bad, msg in cases:
        write_jsonl(tmp_path / "sel.jsonl", [bad, ok])
        with pytest.raises(DataError, match=msg):
            D.scan_selection(tmp_path / "sel.jsonl", items, fdir, None, on_empty="skip", **kw)
    first = {"item_id": "i0", "sft_target": "A", "pool": pool}
    write_jsonl(tmp_path / "sel.jsonl", [first, first, ok])
    with pytest.raises(DataError, match=r"sel.jsonl:2: item 'i0' is selected twice \(first at line 1\)"):
        D.scan_selection(tmp_path / "sel.jsonl", items, fdir, None, on_empty="skip", **kw)
    write_jsonl(tmp_path / "sel.jsonl", [dict(first, sft_targets=[]), ok])
    ix = D.scan_selection(tmp_path / "sel.jsonl", items, fdir, None, on_empty="skip", **kw)
    assert (ix.n_records, len(ix), ix.sel_off.tolist()[0] > 0) == (1, 1, True)
    assert ix.counts == {"n_missing_frames": 0, "n_empty_pool": 1, "n_other_stage": 0}
    with pytest.raises(DataError, match=r"sel.jsonl:1: item 'i0' has an empty sft_targets list"):
        D.scan_selection(tmp_path / "sel.jsonl", items, fdir, None, on_empty="fail", **kw)
    # Stage 2 does not read sft_targets: the record is kept
    ix2 = D.scan_selection(tmp_path / "sel.jsonl", items, fdir, None, on_empty="skip",
                           on_missing="skip", need_pool=True, sft=False)
    assert (ix2.n_records, ix2.counts["n_empty_pool"]) == (2, 0)


def test_select_item_sft_on_all_kept_rows():
    rows = [{"teacher": "a", "k": k, "text": f"a{k}", "q": q, "valid": v}
            for k, (q, v) in enumerate([(1.0, True), (0.2, True), (0.6, False), (0.0, True)])]
    c = SelectionConfig.from_dict({"teachers": ["a"], "assignment": "union", "K": 4, "tau": 0.0,
                                   "format_filter": False, "weighting": {"closed": "uniform"},
                                   "sft_target": {"closed": "all"}})
    r = select_item(rows, "mcq", c, item_rng("x", 0))
    assert r["sft_targets"] == ["a0", "a1", "a2", "a3"] and r["sft_target"] == "a0"
    assert r["sft_target_q"] == pytest.approx(0.45) and [p["p"] for p in r["pool"]] == [0.25] * 4
    c2 = SelectionConfig.from_dict({"teachers": ["a"], "assignment": "union", "K": 4, "tau": 0.3,
                                    "format_filter": True, "sft_target": {"closed": "best"}})
    r2 = select_item(rows, "mcq", c2, item_rng("x", 0))
    assert "sft_targets" not in r2 and r2["sft_target"] == "a0" and r2["n_kept"] == 1


def test_disc_loss_weights_switch_and_group_spread():
    assert rl.disc_weights([0.5, 0.3, 0.9], [True, False, True], "quality").tolist() == [0.5, 1.0, 0.9]
    assert rl.disc_weights([0.5, 0.3], [True, False], "uniform").tolist() == [1.0, 1.0]
    assert rl.group_spread(np.array([0.0, 2.0, 5.0, 5.0, 1.0, 3.0]), 2) == pytest.approx(2 / 3)
    with pytest.raises(ConfigError, match="disc_weight"):
        rl.RLConfig.from_dict({"disc_weight": "q"})
    with pytest.raises(ConfigError, match="disc_head_init"):
        rl.RLConfig.from_dict({"disc_head_init": "xavier"})


def test_discriminator_head_init():
    import torch

    class Backbone(torch.nn.Module):
        def forward(self, **kw):
            raise AssertionError

    z = rl.Discriminator(Backbone(), 16, init="zeros")
    assert torch.count_nonzero(z.head.weight) == 0
    n1 = rl.Discriminator(Backbone(), 4096, init="normal", std=0.02, seed=3)
    n2 = rl.Discriminator(Backbone(), 4096, init="normal", std=0.02, seed=3)
    assert torch.equal(n1.head.weight, n2.head.weight) and float(n1.head.bias.detach()) == 0.0
    assert float(n1.head.weight.std()) == pytest.approx(0.02, rel=0.05)


def test_engine_prefix_lr_group():
    import torch

    from rmsd.train.dist import Runtime
    from rmsd.train.engine import Engine, ExecConfig

    m = torch.nn.Sequential()
    m.add_module("body", torch.nn.Linear(2, 2))
    m.add_module("head", torch.nn.Linear(2, 1))
    eng = Engine(m, 1e-3, 0.0, 1.0, Runtime(), ExecConfig(), prefix_lrs={"head.": 1e-1})
    lrs = sorted(g["lr"] for g in eng.optimizer.param_groups)
    assert lrs == [1e-3, 1e-1]
    eng.set_lr(2e-3)
    assert sorted(g["lr"] for g in eng.optimizer.param_groups) == pytest.approx([2e-3, 2e-1])


def test_frame_store_rejects_shared_rows_and_non_string_ids(tmp_path):
    fdir, _ = _frames(tmp_path, ["a", "b"])
    man = fdir / "manifest.jsonl"
    good = man.read_text()
    man.write_text(good + '{"item_id": "c", "row": 0}\n')
    with pytest.raises(DataError, match=r"manifest.jsonl:3: item 'c' points at row 0 of "
                                        r".*frames\.npy, which line 1 already holds"):
        open_frames(fdir)
    for bad, shown in (('["a"]', r"list \['a'\]"), ("7", "int 7"), ('""', "str ''")):
        man.write_text('{"item_id": %s, "row": 0}\n' % bad + good.split("\n", 1)[1])
        with pytest.raises(DataError, match=r"manifest.jsonl:1: item_id must be a non-empty "
                                            r"string, got " + shown):
            open_frames(fdir)
