"""Adapter: rule frames_extract_shard -> rmsd.frames.shards.extract_shard (one shard, resumable)."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from pathlib import Path

from rmsd.frames.shards import extract_shard
from rmsd.utils import get_logger, log_to

with log_to(snakemake.log[0]):
    stats = extract_shard(
        items_path=snakemake.input.jsonl,
        frames_dir=Path(snakemake.output.frames).parent.parent,
        shard=int(snakemake.wildcards.shard),
        n_shards=snakemake.params.n_shards,
        threads=snakemake.threads,
        **snakemake.params.settings,
    )
    get_logger("rmsd.frames").info("shard %s: %s", snakemake.output.frames, stats)
