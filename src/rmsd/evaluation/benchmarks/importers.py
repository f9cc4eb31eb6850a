"""The benchmark registry: name -> importer, and the import entry points.

Each benchmark's module (``videomme.py``, ``longvideobench.py``, ``mlvu.py``, ``worldsense.py``,
``videommmu.py``, ``vstar.py``, ``mathvista.py``, ``mathverse.py``) holds its layouts, importer,
protocol settings and official scoring rule; ``import_<name>(data_root, settings, out_dir, res)
-> Imported`` reads every layout of its release. :func:`import_benchmark` dispatches by name and
:func:`write_benchmark_items` writes ``items.jsonl`` plus ``import.json`` (counts, files, hashes).

Bad records: a malformed record (missing field, wrong type, answer not among the options, empty
question...) is skipped and counted by reason (``on_record_error="skip"``, the default) or raises
DataError naming file and record (``"fail"``). A benchmark whose imported share
``n_items_from_records / (n_records - n_filtered)`` falls under ``min_import_share`` fails with the
counts. A missing annotation file always raises MissingArtifactError naming it. Media files are not
opened here (frame extraction checks them).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from rmsd.errors import ConfigError, DataError
from rmsd.evaluation.benchmarks import settings as S
from rmsd.evaluation.benchmarks.base import Imported
from rmsd.evaluation.benchmarks.common import check_unique_ids
from rmsd.evaluation.benchmarks.longvideobench import import_longvideobench
from rmsd.evaluation.benchmarks.mathverse import import_mathverse
from rmsd.evaluation.benchmarks.mathvista import import_mathvista
from rmsd.evaluation.benchmarks.mlvu import import_mlvu
from rmsd.evaluation.benchmarks.videomme import import_videomme
from rmsd.evaluation.benchmarks.videommmu import import_videommmu
from rmsd.evaluation.benchmarks.vstar import import_vstar, vstar_length_group
from rmsd.evaluation.benchmarks.worldsense import import_worldsense
from rmsd.io import atomic_write_json, sha256_file, write_jsonl

__all__ = ["IMPORTERS", "ON_RECORD_ERROR", "Imported", "import_benchmark", "import_counts",
           "import_stats",
           "vstar_length_group", "import_worldsense", "write_benchmark_items"]

ON_RECORD_ERROR = ("skip", "fail")
DEFAULT_MIN_IMPORT_SHARE = 0.9
"""Default floor on the share of (unfiltered) records that import; the official releases import
at 0.99 or more (MLVU: 2 needle answers outside the options, 1 empty record of 2,175)."""


IMPORTERS: dict[str, Callable[..., Imported]] = {
    S.VIDEOMME: import_videomme,
    S.LVB: import_longvideobench,
    S.MLVU: import_mlvu,
    S.WORLDSENSE: import_worldsense,
    S.VIDEOMMMU: import_videommmu,
    S.VSTAR: import_vstar,
    S.MATHVISTA: import_mathvista,
    S.MATHVERSE: import_mathverse,
}


def import_benchmark(name: str, data_root: str | os.PathLike, settings: dict | None = None,
                     out_dir: str | os.PathLike | None = None, on_record_error: str = "skip",
                     min_import_share: float = DEFAULT_MIN_IMPORT_SHARE) -> Imported:
    """Import benchmark ``name`` from ``data_root`` into items (ids checked unique).

    Args:
        name: one of :data:`rmsd.evaluation.benchmarks.settings.BENCHMARK_NAMES`.
        data_root: the benchmarks' data directory (``evaluation.data_root``).
        settings: overrides of the benchmark's default settings (or already resolved ones).
        out_dir: where embedded image bytes are written (``out_dir/media``), if any.
        on_record_error: ``"skip"`` (count a bad record by reason and go on) or ``"fail"``.
        min_import_share: the least share of the records not filtered by a setting that must
            import (0..1).

    Raises:
        ConfigError: unknown benchmark or bad settings.
        MissingArtifactError: an annotation file is missing (names it).
        DataError: a malformed record with ``on_record_error="fail"`` (names file and record), an
            imported share under ``min_import_share`` (with the counts by reason), or no items.
    """
    if name not in IMPORTERS:
        raise ConfigError(f"unknown benchmark {name!r}; valid: {list(IMPORTERS)}")
    if on_record_error not in ON_RECORD_ERROR:
        raise ConfigError(f"evaluation.on_record_error: {on_record_error!r} is not one of "
                          f"{list(ON_RECORD_ERROR)}")
    if not 0.0 <= float(min_import_share) <= 1.0:
        raise ConfigError(f"evaluation.min_import_share: {min_import_share!r} is not in [0, 1]")
    s = S.resolve_settings(name, settings)
    res = Imported(on_error=on_record_error)
    IMPORTERS[name](str(data_root), s, None if out_dir is None else str(out_dir), res)
    check_unique_ids(res.items, res.locs)
    considered = res.n_records - sum(res.filtered.values())
    ok = considered - sum(res.skipped.values())
    if considered and ok / considered < float(min_import_share):
        raise DataError(
            f"{name}: only {ok} of {considered} records imported ({ok / considered:.1%} < "
            f"evaluation.min_import_share {float(min_import_share):.0%}); skipped by reason: "
            f"{dict(res.skipped)} (e.g. {res.skipped_examples}); files "
            f"{[str(p) for p in res.files]}")
    if s["limit"] is not None:
        res.items, res.locs = res.items[: s["limit"]], res.locs[: s["limit"]]
    if not res.items:
        raise DataError(
            f"{name}: no items imported from {[str(p) for p in res.files]} ({res.n_records} "
            f"records; skipped by reason: {dict(res.skipped)}; filtered by reason: "
            f"{dict(res.filtered)}; limit {s['limit']})")
    return res


def import_stats(res: Imported) -> dict:
    """The counts of an import: ``n_records``, ``n_items``, ``n_skipped`` (reason -> count, bad
    records), ``skipped_examples``, ``n_filtered`` (reason -> count, left out by a setting) and
    ``notes`` (reason -> count, records imported with a documented repair)."""
    return {"n_records": res.n_records, "n_items": len(res.items),
            "n_skipped": dict(res.skipped), "skipped_examples": dict(res.skipped_examples),
            "n_filtered": dict(res.filtered), "notes": dict(res.notes)}


def import_counts(items_path: str | os.PathLike) -> dict:
    """The import counts metrics.json carries (``n_records``, ``n_skipped`` by reason,
    ``n_filtered`` by reason), read from ``import.json`` beside ``items_path``; {} when there is
    none (items not made by :func:`write_benchmark_items`).

    Raises:
        DataError: ``import.json`` exists but is not a JSON object.
    """
    path = Path(items_path).parent / "import.json"
    if not path.is_file():
        return {}
    try:
        st = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{path}: unreadable import stats ({e})") from None
    if not isinstance(st, dict):
        raise DataError(f"{path}: expected a JSON object")
    return {k: st[k] for k in ("n_records", "n_skipped", "n_filtered") if k in st}


def write_benchmark_items(name: str, data_root: str | os.PathLike, settings: dict | None,
                          out_path: str | os.PathLike, on_record_error: str = "skip",
                          min_import_share: float = DEFAULT_MIN_IMPORT_SHARE) -> dict:
    """Import ``name`` and write ``out_path`` (items.jsonl) and ``import.json`` beside it.

    Returns:
        The import stats: benchmark, data_root, files (path + sha256), the counts of
        :func:`import_stats` (``skipped`` as well, the same as ``n_skipped``), task_types
        (counts), settings.
    """
    out_path = Path(out_path)
    res = import_benchmark(name, data_root, settings, out_dir=out_path.parent,
                           on_record_error=on_record_error, min_import_share=min_import_share)
    write_jsonl(out_path, res.items)
    stats = {
        "benchmark": name,
        "data_root": str(data_root),
        "files": [{"path": str(p), "sha256": sha256_file(p)} for p in res.files],
        **import_stats(res),
        "skipped": dict(res.skipped),
        "task_types": dict(Counter(it["task_type"] for it in res.items)),
        "settings": S.resolve_settings(name, settings),
    }
    atomic_write_json(out_path.parent / "import.json", stats)
    return stats
