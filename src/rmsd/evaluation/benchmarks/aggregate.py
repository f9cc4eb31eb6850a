"""Benchmark metrics from scored sample records (benchmarks.md section 2).

Every function here reads only sample records (``samples.jsonl`` rows: ``item_id``, ``video``,
``task_type``, ``score``, ``valid``, ``categories``, ``extra``), so metrics can be recomputed without
a model. Scores are fractions in [0, 1]; 95% CIs are percentile bootstraps clustered by video.

============== ===================================================================================
benchmark      ``overall`` (its ``primary`` entry says so in metrics.json)
============== ===================================================================================
VideoMME, LVB, accuracy over items (micro), with per-category breakdowns
WorldSense,
MathVista,
MathVerse
MLVU_MCQ       M-Avg: macro mean of the per-task-type accuracies; ``micro_avg`` beside it
Video-MMMU     accuracy over the three tracks' items; per-track accuracy; Delta-knowledge from the
               Adaptation items and their question-only baseline
V-STaR         mean of the reported numbers (m_tIoU When and m_vIoU Where of each chain); the
               per-chain values with R@IoU (0.3/0.5/0.7) and AP@IoU (0.1...0.9) under ``vstar``
============== ===================================================================================
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rmsd.evaluation.benchmarks import settings as S
from rmsd.evaluation.benchmarks.scoring import CATEGORY_KEYS
from rmsd.evaluation.metrics import bootstrap_ci, delta_knowledge, group_means_bootstrap

__all__ = ["breakdown", "is_main_record", "summarise_benchmark"]

R_AT_IOU = (0.3, 0.5, 0.7)
AP_AT_IOU = ("0.1", "0.3", "0.5", "0.7", "0.9")
CROSS_BREAKDOWNS: dict[str, tuple[tuple[str, ...], ...]] = {
    S.VIDEOMME: (("duration", "domain", "task_type"), ("duration", "domain")),
}
"""Crossed breakdowns, reported as ``"a x b x c"`` with values ``"va | vb | vc"``."""
NO_BREAKDOWN = frozenset({"source_id"})


def _cluster(r: dict) -> str:
    return str(r.get("video") or r["item_id"])


def _stats(rs: list[dict], n_boot: int, seed: int) -> dict[str, Any]:
    sc = [float(r["score"]) for r in rs]
    return {"mean": float(np.mean(sc)) if sc else float("nan"), "n": len(rs),
            "n_unparsed": sum(not r["valid"] for r in rs),
            "ci95": list(bootstrap_ci(sc, [_cluster(r) for r in rs], n_boot, seed))}


def _values(v: Any) -> list[str]:
    if isinstance(v, (list, tuple)):
        return [str(x) for x in v]
    return [str(v)]


def breakdown(recs: Sequence[dict], keys: str | tuple[str, ...], n_boot: int = 1000,
              seed: int = 0) -> dict[str, dict]:
    """Mean score (with n, unparsed count and clustered CI) per category value.

    Args:
        recs: sample records with ``categories``.
        keys: one category key, or several for a crossed breakdown (values joined by " | ").
            A list-valued category (MathVista skills, WorldSense audio classes) counts the item
            under each of its values. Records without the category are left out.
    """
    keys = (keys,) if isinstance(keys, str) else tuple(keys)
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in recs:
        cats = r.get("categories") or {}
        if any(cats.get(k) is None for k in keys):
            continue
        combos = [[]]
        for k in keys:
            combos = [c + [v] for c in combos for v in _values(cats[k])]
        for c in combos:
            groups[" | ".join(c)].append(r)
    return {g: _stats(rs, n_boot, seed) for g, rs in sorted(groups.items())}


def _breakdowns(name: str, recs: list[dict], n_boot: int, seed: int) -> dict[str, dict]:
    out = {k: breakdown(recs, k, n_boot, seed) for k in CATEGORY_KEYS.get(name, ())
           if k not in NO_BREAKDOWN}
    for keys in CROSS_BREAKDOWNS.get(name, ()):
        out[" x ".join(keys)] = breakdown(recs, keys, n_boot, seed)
    return {k: v for k, v in out.items() if v}


def is_main_record(name: str, rec: dict) -> bool:
    """False for records that are not part of the benchmark's headline items (Video-MMMU's
    question-only baseline)."""
    return not (name == S.VIDEOMMMU and (rec.get("categories") or {}).get("track") == "question_only")


def _grouped_ci(recs: list[dict], key: Callable[[dict], str], stat: Callable[[np.ndarray], np.ndarray],
                n_boot: int, seed: int, order: Sequence[str] | None = None,
                stratified: bool = False) -> list[float]:
    names = list(order) if order is not None else sorted({key(r) for r in recs})
    index = {g: i for i, g in enumerate(names)}
    rs = [r for r in recs if key(r) in index]
    return list(group_means_bootstrap([float(r["score"]) for r in rs], [_cluster(r) for r in rs],
                                      [index[key(r)] for r in rs], len(names), stat, n_boot, seed,
                                      stratified=stratified))


def _denominators(recs: list[dict]) -> dict[str, Any]:
    """Accuracy over all questions (an unparsed answer scores 0; the headline) and over the
    answered ones (a parsed letter), with both counts, so that the denominator is stated."""
    answered = [r for r in recs if r.get("valid", True)]
    return {"all questions": {"n": len(recs), "accuracy": float(np.mean([r["score"] for r in recs]))
                              if recs else float("nan")},
            "answered": {"n": len(answered),
                         "accuracy": float(np.mean([r["score"] for r in answered]))
                         if answered else float("nan")}}


def _accuracy(name: str, recs: list[dict], n_boot: int, seed: int) -> dict[str, Any]:
    st = _stats(recs, n_boot, seed)
    out = {"overall": st["mean"], "ci95": st["ci95"],
           "primary": {"metric": "accuracy", "definition": "mean item score over all items "
                       "(micro); unparsed answers score 0"},
           "breakdowns": _breakdowns(name, recs, n_boot, seed)}
    if name == S.VIDEOMME:
        out["denominators"] = _denominators(recs)
    if any("score_any_letter" in (r.get("extra") or {}) for r in recs):
        # duplicate options: the official rule (score) beside ours (any matching letter)
        out["averages"] = {"official rule": st["mean"], "any matching letter (ours)": float(
            np.mean([(r.get("extra") or {}).get("score_any_letter", r["score"]) for r in recs]))}
    return out


def _mlvu(recs: list[dict], n_boot: int, seed: int) -> dict[str, Any]:
    by_type = breakdown(recs, "task_type", n_boot, seed)
    m_avg = float(np.mean([v["mean"] for v in by_type.values()])) if by_type else float("nan")
    micro = float(np.mean([r["score"] for r in recs])) if recs else float("nan")
    ci = _grouped_ci(recs, lambda r: str(r["categories"].get("task_type")),
                     lambda m: np.nanmean(m, axis=1), n_boot, seed, order=list(by_type),
                     stratified=True)
    ours = [(r.get("extra") or {}).get("score_any_letter", r["score"]) for r in recs]
    by_type_ours: dict[str, list[float]] = defaultdict(list)
    for r, v in zip(recs, ours):
        by_type_ours[str(r["categories"].get("task_type"))].append(v)
    m_avg_ours = float(np.mean([np.mean(v) for v in by_type_ours.values()])) if recs else float("nan")
    averages = {"M-Avg (macro over task types)": m_avg, "micro (over questions)": micro}
    if any("score_any_letter" in (r.get("extra") or {}) for r in recs):
        averages.update({"M-Avg, any matching letter (ours)": m_avg_ours,
                         "micro, any matching letter (ours)": float(np.mean(ours))})
    return {"overall": m_avg, "ci95": ci,
            "primary": {"metric": "M-Avg", "definition": "macro mean over the seven MLVU MCQ task "
                        "types (release names) of the per-type accuracy (official MLVU; "
                        "VLMEvalKit reports the micro mean); a duplicated answer candidate counts "
                        "only at its last position (official choice_bench.py)"},
            "m_avg": m_avg, "micro_avg": micro, "n_task_types": len(by_type),
            "averages": averages, "breakdowns": {"task_type": by_type}}


def _dk_stat(m: np.ndarray) -> np.ndarray:
    """Delta-knowledge of (n_boot, 2) group means [after, before]; NaN where before == 1."""
    after, before = m[:, 0], m[:, 1]
    out = np.full(len(after), np.nan)
    ok = before < 1
    out[ok] = (after[ok] - before[ok]) / (1 - before[ok])
    return out


def _videommmu(recs: list[dict], n_boot: int, seed: int) -> dict[str, Any]:
    main = [r for r in recs if is_main_record(S.VIDEOMMMU, r)]
    base = [r for r in recs if not is_main_record(S.VIDEOMMMU, r)]
    out = _accuracy(S.VIDEOMMMU, main, n_boot, seed)
    out["primary"] = {"metric": "accuracy", "definition": "mean item score over the Perception, "
                      "Comprehension and Adaptation items (question-only baseline excluded)"}
    out["tracks"] = breakdown(recs, "track", n_boot, seed)
    adapt = {r["categories"].get("source_id"): r for r in main
             if r["categories"].get("track") == "adaptation"}
    before = {r["categories"].get("source_id"): r for r in base}
    paired = [k for k in adapt if k in before]
    dk: dict[str, Any] = {
        "definition": "(acc_after - acc_before) / (1 - acc_before): acc_after on the Adaptation "
                      "items, acc_before on the same questions with only the question clip "
                      "(VideoMMMU README; x100 for percent)",
        "n_pairs": len(paired),
    }
    if paired:
        after_acc = float(np.mean([adapt[k]["score"] for k in paired]))
        before_acc = float(np.mean([before[k]["score"] for k in paired]))
        rs = [adapt[k] for k in paired] + [before[k] for k in paired]
        grp = [0] * len(paired) + [1] * len(paired)
        ci = group_means_bootstrap(
            [float(r["score"]) for r in rs], [str(k) for k in paired] * 2, grp, 2,
            _dk_stat, n_boot, seed)
        dk.update(value=delta_knowledge(after_acc, before_acc), acc_after=after_acc,
                  acc_before=before_acc, ci95=list(ci))
    else:
        dk.update(value=float("nan"), acc_after=float("nan"), acc_before=float("nan"),
                  ci95=[float("nan"), float("nan")])
    out["delta_knowledge"] = dk
    out["n_baseline_items"] = len(base)
    out["n_unparsed_baseline"] = sum(not r["valid"] for r in base)
    out["breakdowns"].pop("track", None)
    return out


def _lgm(xs: list[float]) -> float:
    if any(not math.isfinite(x) or x >= 1 for x in xs):
        return float("nan")
    return -float(np.mean([math.log(1 - x) for x in xs]))


def _vstar_cell(rs: list[dict], step: str, n_boot: int, seed: int) -> dict[str, Any]:
    st = _stats(rs, n_boot, seed)
    cell: dict[str, Any] = {"n": st["n"], "n_unparsed": st["n_unparsed"], "ci95": st["ci95"]}
    if step == "when":
        cell["m_tIoU"] = st["mean"]
        for t in R_AT_IOU:
            cell[f"R@{t}"] = float(np.mean([r["score"] >= t for r in rs])) if rs else float("nan")
        robust = [(r.get("extra") or {}).get("score_robust") for r in rs]
        if rs and all(v is not None for v in robust):
            # our robust span parse beside the official regex (rmsd.evaluation.benchmarks.scoring)
            cell["m_tIoU (robust parse)"] = float(np.mean(robust))
            cell["n_swapped"] = int(sum(bool((r.get("extra") or {}).get("swapped")) for r in rs))
    elif step == "where":
        cell["m_vIoU"] = st["mean"]
        for t in AP_AT_IOU:
            aps = [((r.get("extra") or {}).get("ap") or {}).get(t, 0.0) for r in rs]
            cell[f"AP@{t}"] = float(np.mean(aps)) if rs else float("nan")
    else:
        cell["acc"] = st["mean"]
    return cell


def _vstar_tables(recs: list[dict], n_boot: int, seed: int) -> dict[str, Any]:
    cells: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for r in recs:
        c = r.get("categories") or {}
        cells[(str(c.get("step")), int(c.get("chain", 0)))].append(r)
    out: dict[str, Any] = {}
    what = cells.get(("what", 0))
    acc = _vstar_cell(what, "what", n_boot, seed)["acc"] if what else None
    if what:
        out["what"] = _vstar_cell(what, "what", n_boot, seed)
    ams, lgms = [], []
    for chain in (1, 2):
        ch: dict[str, Any] = {}
        for step in ("when", "where"):
            rs = cells.get((step, chain))
            if rs:
                ch[step] = _vstar_cell(rs, step, n_boot, seed)
        if not ch:
            continue
        if acc is not None and "when" in ch and "where" in ch:
            trio = [acc, ch["when"]["m_tIoU"], ch["where"]["m_vIoU"]]
            ch["AM"] = float(np.mean(trio))
            ch["LGM"] = _lgm(trio)
            ams.append(ch["AM"])
            lgms.append(ch["LGM"])
        out[f"chain{chain}"] = ch
    if len(ams) == 2:
        out["mAM"] = float(np.mean(ams))
        out["mLGM"] = float(np.mean(lgms))
    elif acc is None and any(f"chain{c}" in out for c in (1, 2)):
        # AM/LGM need the judged "what" accuracy; no proxy stands in for it
        out["mAM"] = out["mLGM"] = "not scored (the 'what' step needs evaluation.judge)"
    return out


def _vstar(recs: list[dict], n_boot: int, seed: int) -> dict[str, Any]:
    tables = _vstar_tables(recs, n_boot, seed)
    reported = []
    for chain in (1, 2):
        ch = tables.get(f"chain{chain}", {})
        if "when" in ch:
            reported.append((f"when{chain}", ch["when"]["m_tIoU"]))
        if "where" in ch:
            reported.append((f"where{chain}", ch["where"]["m_vIoU"]))
    overall = float(np.mean([v for _, v in reported])) if reported else float("nan")

    def key(r: dict) -> str:
        c = r.get("categories") or {}
        return f"{c.get('step')}{c.get('chain')}"

    ci = _grouped_ci(recs, key, lambda m: np.nanmean(m, axis=1), n_boot, seed,
                     order=[k for k, _ in reported]) if reported else [float("nan")] * 2
    by: dict[str, dict] = {}
    for cat in ("domain", "length"):
        groups: dict[str, list[dict]] = defaultdict(list)
        for r in recs:
            v = (r.get("categories") or {}).get(cat)
            if v is not None:
                groups[str(v)].append(r)
        by[cat] = {g: _vstar_tables(rs, n_boot, seed) for g, rs in sorted(groups.items())}
    return {"overall": overall, "ci95": ci,
            "primary": {"metric": "mean of reported V-STaR numbers",
                        "definition": "mean of " + ", ".join(
                            f"{k[:-1]} chain {k[-1]} ({'m_tIoU' if k.startswith('when') else 'm_vIoU'})"
                            for k, _ in reported),
                        "reported": dict(reported)},
            "vstar": tables, "breakdowns": {f"vstar by {k}": v for k, v in by.items()}}


def summarise_benchmark(name: str, recs: list[dict], n_boot: int = 1000, seed: int = 0) -> dict:
    """The benchmark-specific part of metrics.json: ``overall``, ``ci95``, ``primary``,
    ``breakdowns`` and, per benchmark, ``m_avg``/``micro_avg`` (MLVU), ``tracks`` and
    ``delta_knowledge`` (Video-MMMU), ``vstar`` (V-STaR)."""
    if name == S.MLVU:
        return _mlvu(recs, n_boot, seed)
    if name == S.VIDEOMMMU:
        return _videommmu(recs, n_boot, seed)
    if name == S.VSTAR:
        return _vstar(recs, n_boot, seed)
    return _accuracy(name, recs, n_boot, seed)
