"""Adapter: rule sample_teacher_shard -> rmsd.teachers.sample_pool (one shard of one teacher)."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.envs import call, vllm_interpreter
from rmsd.teachers import TeacherSpec, sample_pool
from rmsd.utils import log_to, set_threads

wc = snakemake.wildcards
cfg = dict(snakemake.params.cfg)
if snakemake.params.model_revision and not (cfg.get("path") or cfg.get("endpoint")):
    cfg.setdefault("revision", snakemake.params.model_revision)  # models.teachers.NAME.revision
set_threads(snakemake.threads)
pool_kwargs = dict(
    items_path=snakemake.input.jsonl,
    frames_dir=snakemake.input.frames.rsplit("/", 1)[0],
    out_path=snakemake.output.shard,
    K=snakemake.params.K,
    shard=int(wc.shard),
    n_shards=int(wc.nshards),
    cache_dir=snakemake.params.cache_dir,
    chunk_items=snakemake.params.chunk_items,
    log_every_s=snakemake.config["sampling"].get("log_every_s", 30),  # not a param: no rerun trigger
    on_missing=snakemake.params.on_missing,
    identical_max_share=snakemake.params.identical_max_share,
    on_identical=snakemake.params.on_identical,
)
# a vLLM teacher runs in the vLLM environment's interpreter when one is configured (rmsd.envs)
python = vllm_interpreter(snakemake.config) if cfg.get("backend") == "vllm" else None
if python:
    call(python, "sample_teacher", dict(teacher=wc.teacher, cfg=cfg, template=snakemake.params.template,
                                        model_path=snakemake.input.get("model"), **pool_kwargs),
         log_path=snakemake.log[0])
else:
    with log_to(snakemake.log[0]):
        spec = TeacherSpec.from_config(wc.teacher, cfg, template=snakemake.params.template,
                                       model_path=snakemake.input.get("model"))
        sample_pool(spec=spec, **pool_kwargs)
