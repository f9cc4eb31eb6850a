"""Pass@k samples for the pass@k figure (paper section 5.7), cheaply.

``evaluation.pass_k_samples > 0`` makes every eval_run job sample n answers per item (all variants,
all items). The report only needs the pass@k variants (R-MSD and the baseline), so rule
report_eval_pass_at_k instead evaluates those on the first ``items_per_task`` items of each task
type with ``samples`` sampled answers each, through the same evaluation code
(:func:`rmsd.evaluation.evaluate`, unbiased pass@k estimator).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from rmsd.io import read_jsonl, write_jsonl
from rmsd.utils import get_logger

log = get_logger(__name__)


def subset_items(items: list[dict], items_per_task: int | None) -> list[dict]:
    """The first ``items_per_task`` items of each task type, in file order (all when None)."""
    if not items_per_task:
        return list(items)
    seen: dict[str, int] = defaultdict(int)
    out = []
    for it in items:
        if seen[it["task_type"]] < items_per_task:
            seen[it["task_type"]] += 1
            out.append(it)
    return out


def evaluate_pass_at_k(model_dir: str, items_path: str, frames_dir: str, out_dir: str, cfg: dict,
                       scoring: dict, template: str, samples: int, temperature: float, threshold: float,
                       items_per_task: int | None, seed: int = 0, threads: int = 1,
                       frames_meta: dict | None = None, engine: dict | None = None) -> dict:
    """Evaluate ``model_dir`` with ``samples`` sampled answers per item on an item subset, through
    ``engine`` (:func:`rmsd.evaluation.run.engine_for`: the evaluation's own backend and dtype).

    Writes ``items.jsonl`` (the subset), ``samples.jsonl`` and ``metrics.json`` (with ``pass_at_k``)
    under ``out_dir``.
    """
    from rmsd.evaluation import evaluate

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items = subset_items(read_jsonl(items_path), items_per_task)
    subset = out / "items.jsonl"
    write_jsonl(subset, items)
    log.info("pass@k: %d items (%s per task), %d samples each at T=%s", len(items), items_per_task or "all",
             samples, temperature)
    cfg = {**cfg, "pass_k_samples": samples, "pass_k_temperature": temperature, "pass_k_threshold": threshold}
    return evaluate(model_dir=model_dir, items_path=str(subset), frames_dir=frames_dir, out_dir=out_dir, cfg=cfg,
                    scoring=scoring, template=template, seed=seed, threads=threads, frames_meta=frames_meta,
                    engine=engine)
