"""Adapter: rule report_figure_main -> rmsd.report.figures.main_figure."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.report.figures import main_figure
from rmsd.utils import log_to

metrics = snakemake.input.metrics
with log_to(snakemake.log[0]):
    main_figure(metrics=[metrics] if isinstance(metrics, str) else list(metrics),
                variants=snakemake.params.variants, benchmark=snakemake.params.benchmark,
                out_png=snakemake.output.png)
