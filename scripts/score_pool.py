"""Adapter: rule score_pool -> rmsd.scoring.score_pool."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.scoring import ScoringConfig, score_pool
from rmsd.utils import log_to

with log_to(snakemake.log[0]):
    score_pool(
        items_path=snakemake.input.jsonl,
        pool_paths=list(snakemake.input.pools),
        out_parquet=snakemake.output.scored,
        out_stats=snakemake.output.stats,
        cfg=ScoringConfig.from_dict(snakemake.params.cfg),
    )
