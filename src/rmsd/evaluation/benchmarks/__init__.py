"""The paper's eight evaluation benchmarks (paper.md section 4.2; benchmarks.md section 2).

* :mod:`.settings`: benchmark names, per-benchmark defaults (data paths, prompts, generation
  limits) and their resolution from ``evaluation.benchmark_settings``.
* one module per benchmark -- :mod:`.videomme`, :mod:`.longvideobench`, :mod:`.mlvu`,
  :mod:`.worldsense`, :mod:`.videommmu`, :mod:`.vstar`, :mod:`.mathvista`, :mod:`.mathverse` --
  holding the layouts of its official release, its importer and its official scoring rule notes;
  :mod:`.base` the import result (counts of skipped / filtered records) and item constructor.
* :mod:`.importers`: the registry and entry points (``import_benchmark``, ``write_benchmark_items``;
  bad records skipped and counted or failing, ``evaluation.on_record_error``).
* :mod:`.extract`: answer extraction (shared MCQ extractor, V-STaR spans/boxes, math-verify).
* :mod:`.judge`: the optional judge hook.
* :mod:`.scoring`: prompts and per-item scoring.
* :mod:`.aggregate`: benchmark metrics and breakdowns from sample records.
"""

from rmsd.evaluation.benchmarks.aggregate import breakdown, summarise_benchmark
from rmsd.evaluation.benchmarks.extract import (
    MathVerifier,
    extract_mcq_letter,
    parse_vstar_boxes,
    parse_vstar_span,
    strip_reasoning,
    vstar_spatial,
)
from rmsd.evaluation.benchmarks.importers import import_benchmark, write_benchmark_items
from rmsd.evaluation.benchmarks.judge import JudgeRequest, JudgeVerdict, load_judge
from rmsd.evaluation.benchmarks.scoring import BenchmarkScorer, build_prompt_text
from rmsd.evaluation.benchmarks.settings import (
    BENCHMARK_NAMES,
    check_evaluation_config,
    eval_params,
    import_params,
    resolve_settings,
)

__all__ = [
    "BENCHMARK_NAMES",
    "BenchmarkScorer",
    "JudgeRequest",
    "JudgeVerdict",
    "MathVerifier",
    "breakdown",
    "build_prompt_text",
    "check_evaluation_config",
    "eval_params",
    "extract_mcq_letter",
    "import_benchmark",
    "import_params",
    "load_judge",
    "parse_vstar_boxes",
    "parse_vstar_span",
    "resolve_settings",
    "strip_reasoning",
    "summarise_benchmark",
    "vstar_spatial",
    "write_benchmark_items",
]
