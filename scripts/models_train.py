"""Adapter: rules models_teacher / models_student_base -> rmsd.models.build.train_from_scratch."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.models.build import train_from_scratch
from rmsd.utils import log_to

cfg = snakemake.params.cfg
with log_to(snakemake.log[0]):
    train_from_scratch(
        processor_dir=snakemake.input.processor,
        items_path=snakemake.input.jsonl,
        frames_dir=snakemake.input.frames.rsplit("/", 1)[0],
        out_dir=snakemake.output[0],
        arch=cfg["arch"],
        sft=cfg["train"],
        seed=cfg["seed"],
        template=snakemake.params.template,
        threads=snakemake.threads,
        on_missing=snakemake.params.on_missing,
    )
