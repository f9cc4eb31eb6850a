"""Adapter: rule data_synth -> rmsd.data.generate_split."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.data import generate_split
from rmsd.utils import log_to

cfg = snakemake.params.cfg
with log_to(snakemake.log[0]):
    generate_split(
        out_dir=snakemake.output.jsonl.rsplit("/", 1)[0],
        split=snakemake.wildcards.split,
        tasks=cfg["tasks"],
        n_per_task=cfg["n_per_task"][snakemake.wildcards.split],
        seed=cfg["seed"],
        size_px=cfg["size_px"],
        fps=cfg["fps"],
        duration_s=cfg["duration_s"],
        videos_dir=snakemake.output.videos,
        mcq_attributes=cfg.get("mcq_attributes", ["colour"]),
        mcq_shuffle_options=cfg.get("mcq_shuffle_options", False),
    )
