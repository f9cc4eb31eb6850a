"""Adapter: rule frames_extract -> rmsd.frames.shards.gather_shards (shards -> manifest + index)."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from pathlib import Path

from rmsd.frames.shards import gather_shards
from rmsd.utils import get_logger, log_to

with log_to(snakemake.log[0]):
    stats = gather_shards(Path(snakemake.output.manifest).parent, snakemake.params.n_shards)
    get_logger("rmsd.frames").info("gathered %s: %s", snakemake.output.manifest, stats)
