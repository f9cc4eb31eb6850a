"""Adapter: rule report_figure_training -> rmsd.report.figures.training_curves_figure."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.report.figures import training_curves_figure
from rmsd.utils import log_to

models = snakemake.input.get("models", [])
with log_to(snakemake.log[0]):
    training_curves_figure(model_dirs=[models] if isinstance(models, str) else list(models),
                           out_png=snakemake.output.png)
