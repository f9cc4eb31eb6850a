"""Adapter: rule eval_run -> rmsd.evaluation.evaluate."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.evaluation import evaluate
from rmsd.utils import log_to

with log_to(snakemake.log[0]):
    evaluate(
        model_dir=snakemake.input.model,
        items_path=snakemake.input.jsonl,
        frames_dir=snakemake.input.frames.rsplit("/", 1)[0],
        out_dir=snakemake.output.metrics.rsplit("/", 1)[0],
        cfg=snakemake.params.cfg,
        scoring=snakemake.params.scoring,
        template=snakemake.params.template,
        seed=int(snakemake.wildcards.seed),
        threads=snakemake.threads,
        frames_meta=snakemake.params.frames,
        engine=snakemake.params.engine,
    )
