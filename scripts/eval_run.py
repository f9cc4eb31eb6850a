"""Adapter: rule eval_run -> rmsd.evaluation.evaluate (in the vLLM environment's interpreter
for a vLLM engine when envs.vllm_python is set, rmsd.envs)."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.envs import call, vllm_interpreter
from rmsd.utils import log_to

kwargs = dict(
    model_dir=snakemake.input.model,
    items_path=snakemake.input.jsonl,
    frames_dir=snakemake.input.frames.rsplit("/", 1)[0],
    out_dir=snakemake.output.metrics.rsplit("/", 1)[0],
    cfg=snakemake.params.cfg,
    scoring=snakemake.params.scoring,
    template=snakemake.params.template,
    seed=int(snakemake.wildcards.seed),
    threads=snakemake.threads,
    frames_meta=snakemake.params.frames,
    engine=snakemake.params.engine,
)
python = vllm_interpreter(snakemake.config) if snakemake.params.engine["backend"] == "vllm" else None
if python:
    call(python, "evaluate", kwargs, log_path=snakemake.log[0])
else:
    from rmsd.evaluation import evaluate

    with log_to(snakemake.log[0]):
        evaluate(**kwargs)
