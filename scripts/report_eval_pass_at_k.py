"""Adapter: rule report_eval_pass_at_k -> rmsd.report.passk.evaluate_pass_at_k."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.report.passk import evaluate_pass_at_k
from rmsd.utils import log_to

with log_to(snakemake.log[0]):
    evaluate_pass_at_k(
        model_dir=snakemake.input.model,
        items_path=snakemake.input.jsonl,
        frames_dir=snakemake.input.frames.rsplit("/", 1)[0],
        out_dir=snakemake.output.metrics.rsplit("/", 1)[0],
        cfg=snakemake.params.cfg,
        scoring=snakemake.params.scoring,
        template=snakemake.params.template,
        frames_meta=snakemake.params.frames,
        engine=snakemake.params.engine,
        seed=int(snakemake.wildcards.seed),
        threads=snakemake.threads,
        **snakemake.params.pass_at_k,
    )
