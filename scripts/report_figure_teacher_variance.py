"""Adapter: rule report_figure_teacher_variance -> rmsd.report.figures.teacher_variance_figure."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.report.figures import teacher_variance_figure
from rmsd.utils import log_to

with log_to(snakemake.log[0]):
    teacher_variance_figure(scored_parquet=snakemake.input.scored, out_png=snakemake.output.png)
