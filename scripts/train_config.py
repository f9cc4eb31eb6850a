"""Adapter: rule train_config -> rmsd.train.config.write_train_config (the resolved variant config)."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.train.config import write_train_config
from rmsd.utils import log_to

with log_to(snakemake.log[0]):
    write_train_config(
        out_path=snakemake.output.cfg,
        student_init=snakemake.input.student,
        selection=snakemake.input.selection,
        items=snakemake.input.jsonl,
        frames=snakemake.input.frames.rsplit("/", 1)[0],
        template=snakemake.params.template,
        scoring=snakemake.params.scoring,
        stage1=snakemake.params.stage1,
        stage2=snakemake.params.stage2,
        seed=int(snakemake.wildcards.seed),
    )
