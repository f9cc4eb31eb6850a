"""Adapter: rule report_figure_pipeline -> rmsd.report.rulegraph.pipeline_figure.

The nested `snakemake --rulegraph` gets this run's config as a file (merged over config/config.yaml
like any --configfile), so the figure shows the rules of the configured pipeline.
"""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

import tempfile
from pathlib import Path

import yaml

from rmsd.report.rulegraph import pipeline_figure
from rmsd.utils import log_to

with log_to(snakemake.log[0]), tempfile.TemporaryDirectory() as tmp:
    cfg = Path(tmp) / "config.yaml"
    cfg.write_text(yaml.safe_dump(dict(snakemake.config), sort_keys=False))
    pipeline_figure(snakefile=snakemake.params.snakefile, configfiles=[str(cfg)],
                    targets=list(snakemake.params.targets), out_dot=snakemake.output.dot,
                    out_png=snakemake.output.png)
