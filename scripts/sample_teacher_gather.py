"""Adapter: rule sample_teacher -> rmsd.teachers.gather_pool (shards -> one pool file)."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.teachers import gather_pool
from rmsd.utils import get_logger, log_to

with log_to(snakemake.log[0]):
    stats = gather_pool(list(snakemake.input.shards), snakemake.output.pool, K=snakemake.params.K)
    get_logger("rmsd.teachers").info("gathered %s: %s", snakemake.output.pool, stats)
