"""Importers: each benchmark's native annotation format -> the item schema (rmsd.tasks).

One function per benchmark, ``import_<name>(data_root, settings, out_dir=None) -> Imported``; the
fields each reads are those of benchmarks.md section 2. Items carry the benchmark's categories in
``meta`` (used for the per-category breakdowns) and ``meta.prompt_key`` (which prompt template of
the benchmark settings applies). :func:`import_benchmark` dispatches by name and
:func:`write_benchmark_items` writes ``items.jsonl`` plus ``import.json`` (counts, files, hashes).

Failures: a missing annotation file raises MissingArtifactError naming it; a malformed record
(missing field, wrong type, duplicate id, answer not among the options) raises DataError naming the
file and record. Media files are not opened here (frame extraction checks them).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rmsd.errors import ConfigError, DataError
from rmsd.evaluation.benchmarks import settings as S
from rmsd.evaluation.benchmarks.common import (
    Record,
    check_unique_ids,
    expand_annotation_paths,
    letter_of,
    load_records,
    media_path,
    options_from_text,
    strip_option_prefixes,
)
from rmsd.io import atomic_write_json, sha256_file, write_jsonl
from rmsd.scoring.formats import parse_number

__all__ = ["Imported", "import_benchmark", "write_benchmark_items", "IMPORTERS"]
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
                     out_dir: str | os.PathLike | None = None) -> Imported:
    """Import benchmark ``name`` from ``data_root`` into items (ids checked unique).

    Args:
        name: one of :data:`rmsd.evaluation.benchmarks.settings.BENCHMARK_NAMES`.
        data_root: the benchmarks' data directory (``evaluation.data_root``).
        settings: overrides of the benchmark's default settings (or already resolved ones).
        out_dir: where embedded image bytes are written (``out_dir/media``), if any.

    Raises:
        ConfigError: unknown benchmark or bad settings.
        MissingArtifactError: an annotation file is missing (names it).
        DataError: a malformed record (names file and record), or no items at all.
    """
    if name not in IMPORTERS:
        raise ConfigError(f"unknown benchmark {name!r}; valid: {list(IMPORTERS)}")
    s = S.resolve_settings(name, settings)
    res = IMPORTERS[name](str(data_root), s, None if out_dir is None else str(out_dir))
    check_unique_ids(res.items, res.locs)
    if s["limit"] is not None:
        res.items, res.locs = res.items[: s["limit"]], res.locs[: s["limit"]]
    if not res.items:
        raise DataError(f"{name}: no items imported from {[str(p) for p in res.files]}")
    return res


def write_benchmark_items(name: str, data_root: str | os.PathLike, settings: dict | None,
                          out_path: str | os.PathLike) -> dict:
    """Import ``name`` and write ``out_path`` (items.jsonl) and ``import.json`` beside it.

    Returns:
        The import stats: benchmark, data_root, files (path + sha256), n_records, n_items,
        skipped (reason -> count), task_types (counts), settings.
    """
    out_path = Path(out_path)
    res = import_benchmark(name, data_root, settings, out_dir=out_path.parent)
    write_jsonl(out_path, res.items)
    stats = {
        "benchmark": name,
        "data_root": str(data_root),
        "files": [{"path": str(p), "sha256": sha256_file(p)} for p in res.files],
        "n_records": res.n_records,
        "n_items": len(res.items),
        "skipped": dict(res.skipped),
        "task_types": dict(Counter(it["task_type"] for it in res.items)),
        "settings": S.resolve_settings(name, settings),
    }
    atomic_write_json(out_path.parent / "import.json", stats)
    return stats
