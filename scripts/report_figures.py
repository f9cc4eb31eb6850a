"""Adapter: rule report_figures -> rmsd.report.figures."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.report.figures import main_figure, teacher_variance_figure
from rmsd.utils import log_to

with log_to(snakemake.log[0]):
    main_figure(main_csv=snakemake.input.main, out_png=snakemake.output.main)
    teacher_variance_figure(scored_parquet=snakemake.input.scored, out_png=snakemake.output.variance)
