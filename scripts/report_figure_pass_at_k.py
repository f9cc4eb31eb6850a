"""Adapter: rule report_figure_pass_at_k -> rmsd.report.figures.pass_at_k_figure."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.report.figures import pass_at_k_figure
from rmsd.utils import log_to

metrics = snakemake.input.get("metrics", [])
with log_to(snakemake.log[0]):
    pass_at_k_figure(metrics=[metrics] if isinstance(metrics, str) else list(metrics),
                     settings=dict(snakemake.params.settings), out_png=snakemake.output.png)
