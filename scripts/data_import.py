"""Adapter: rule data_import -> rmsd.evaluation.benchmarks.write_benchmark_items."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.evaluation.benchmarks import write_benchmark_items
from rmsd.utils import get_logger, log_to

with log_to(snakemake.log[0]):
    stats = write_benchmark_items(
        name=snakemake.wildcards.benchmark,
        data_root=snakemake.params.cfg["data_root"],
        settings=snakemake.params.cfg["settings"],
        out_path=snakemake.output.jsonl,
        on_record_error=snakemake.params.cfg.get("on_record_error", "skip"),
        min_import_share=snakemake.params.cfg.get("min_import_share", 0.9),
    )
    get_logger("rmsd.data_import").info(
        "%s: %d items from %d records (skipped: %s)", stats["benchmark"], stats["n_items"],
        stats["n_records"], stats["n_skipped"] or "none")
