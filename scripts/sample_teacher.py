"""Adapter: rule sample_teacher_shard -> rmsd.teachers.sample_pool (one shard of one teacher)."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.teachers import TeacherSpec, sample_pool
from rmsd.utils import log_to, set_threads

wc = snakemake.wildcards
cfg = dict(snakemake.params.cfg)
if snakemake.params.model_revision and not (cfg.get("path") or cfg.get("endpoint")):
    cfg.setdefault("revision", snakemake.params.model_revision)  # models.teachers.NAME.revision
set_threads(snakemake.threads)
with log_to(snakemake.log[0]):
    spec = TeacherSpec.from_config(wc.teacher, cfg, template=snakemake.params.template,
                                   model_path=snakemake.input.get("model"))
    sample_pool(
        items_path=snakemake.input.jsonl,
        frames_dir=snakemake.input.frames.rsplit("/", 1)[0],
        out_path=snakemake.output.shard,
        spec=spec,
        K=snakemake.params.K,
        shard=int(wc.shard),
        n_shards=int(wc.nshards),
        cache_dir=snakemake.params.cache_dir,
        chunk_items=snakemake.params.chunk_items,
        log_every_s=snakemake.config["sampling"].get("log_every_s", 30),  # not a param: no rerun trigger
        on_missing=snakemake.params.on_missing,
    )
