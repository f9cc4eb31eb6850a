"""Adapter: rule sample_teacher -> rmsd.teachers.sample_pool."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.teachers import sample_pool
from rmsd.utils import log_to, set_threads

cfg = dict(snakemake.params.cfg)
backend = cfg.pop("backend")
set_threads(snakemake.threads)
with log_to(snakemake.log[0]):
    sample_pool(
        items_path=snakemake.input.jsonl,
        frames_dir=snakemake.input.frames.rsplit("/", 1)[0],
        out_path=snakemake.output.pool,
        teacher=snakemake.wildcards.teacher,
        backend=backend,
        backend_args={"model_path": snakemake.input.model, "template": snakemake.params.template},
        K=snakemake.params.K,
        sampling=cfg,
        chunk_items=snakemake.params.chunk_items,
    )
