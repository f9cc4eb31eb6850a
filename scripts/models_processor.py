"""Adapter: rule models_processor -> rmsd.models.build.build_processor_dir."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.models.build import build_processor_dir
from rmsd.utils import log_to

with log_to(snakemake.log[0]):
    build_processor_dir(
        items_paths=[snakemake.input.jsonl],
        out_dir=snakemake.output[0],
        vocab_size=snakemake.params.tokenizer["vocab_size"],
        min_pixels=snakemake.params.processor["min_pixels"],
        max_pixels=snakemake.params.processor["max_pixels"],
        template=snakemake.params.template,
    )
