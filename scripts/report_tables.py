"""Adapter: rule report_tables -> rmsd.report.tables.write_report_tables."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.report.tables import write_report_tables
from rmsd.utils import log_to

with log_to(snakemake.log[0]):
    write_report_tables(
        metrics=list(snakemake.input.metrics),
        selections=list(snakemake.input.selections),
        scored_stats=snakemake.input.scored_stats,
        main_variants=snakemake.params.report["main_variants"],
        ablation_variants=snakemake.params.report.get("ablation_variants", []),
        benchmark=snakemake.params.benchmark,
        teachers=snakemake.params.teachers,
        out_dir=snakemake.output.main.rsplit("/", 1)[0],
    )
