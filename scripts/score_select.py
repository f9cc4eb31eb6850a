"""Adapter: rule score_select -> rmsd.scoring.select_variant."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.scoring import SelectionConfig, select_variant
from rmsd.utils import log_to

with log_to(snakemake.log[0]):
    select_variant(
        scored_parquet=snakemake.input.scored,
        items_path=snakemake.input.jsonl,
        out_jsonl=snakemake.output.selection,
        out_stats=snakemake.output.stats,
        cfg=SelectionConfig.from_dict(snakemake.params.cfg),
        seed=int(snakemake.wildcards.seed),
        template=snakemake.params.template,
    )
