"""Adapter: rule report_figure_sensitivity -> rmsd.report.figures.sensitivity_figure."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.report.figures import sensitivity_figure
from rmsd.utils import log_to

with log_to(snakemake.log[0]):
    sensitivity_figure(k_csv=snakemake.input.k, tau_csv=snakemake.input.tau,
                       benchmark=snakemake.params.benchmark, out_png=snakemake.output.png)
