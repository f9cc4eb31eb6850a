"""Adapter: rule frames_extract -> rmsd.frames.extract_frames."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.frames import extract_frames
from rmsd.utils import log_to

cfg = snakemake.params.cfg
with log_to(snakemake.log[0]):
    extract_frames(
        items_path=snakemake.input.jsonl,
        out_dir=snakemake.output.manifest.rsplit("/", 1)[0],
        num_frames=cfg["num_frames"],
        size_px=cfg["size_px"],
        policy=cfg["policy"],
        decoders=cfg["decoders"],
        on_error=cfg["on_error"],
    )
