from rmsd.evaluation.benchmarks import check_evaluation_config, eval_params
from rmsd.evaluation.run import engine_for

check_evaluation_config(config["evaluation"])
engine_for(config["evaluation"])  # a bad evaluation.backend / vllm setting fails at parse time


def eval_engine(wildcards):
    """The generation engine of an evaluation: evaluation.backend, or for a teacher evaluated as
    is (variant teacher-NAME) that teacher's own sampling backend and engine settings."""
    teacher = variant_cfg(wildcards.variant).get("teacher")
    return engine_for(config["evaluation"], config["sampling"]["teachers"].get(teacher) if teacher else None)


rule eval_run:
    input:
        model=get_model_dir,
        jsonl="results/data/{dataset}/items.jsonl",
        frames="results/frames/{dataset}/manifest.jsonl",
    output:
        metrics="results/eval/{variant}/seed{seed}/{dataset}/metrics.json",
        samples="results/eval/{variant}/seed{seed}/{dataset}/samples.jsonl",
    log:
        "results/logs/eval_run/{variant}/seed{seed}/{dataset}.log",
    benchmark:
        "results/benchmarks/eval_run/{variant}/seed{seed}/{dataset}.tsv"
    params:
        # general evaluation keys; for one of the paper's benchmarks also its resolved settings
        # (prompts, generation limits), so editing one benchmark reruns only its evaluations
        cfg=lambda wc: eval_params(config["evaluation"], wc.dataset),
        scoring=config["scoring"],
        template=config["template"],
        frames=config["frames"],
        engine=eval_engine,
    threads: 1
    conda:
        lambda wc: "../envs/vllm.yaml" if eval_engine(wc)["backend"] == "vllm" else None
    resources:
        **rule_resources("eval_run", teacher_rule="sample_teacher"),
    script:
        "../scripts/eval_run.py"


rule eval_paired:
    # Per-item paired difference of a variant against the base student on one dataset, with a
    # bootstrap CI clustered by video (rmsd.evaluation.paired_comparison). Requested by target.
    input:
        a="results/eval/{variant}/seed{seed}/{dataset}/samples.jsonl",
        b=f"results/eval/base/seed{config['seeds'][0]}/{{dataset}}/samples.jsonl",
    output:
        "results/eval/{variant}/seed{seed}/{dataset}/paired_vs_base.json",
    params:
        bootstrap=config["evaluation"].get("bootstrap", 1000),
    run:
        from rmsd.evaluation import paired_comparison
        from rmsd.io import atomic_write_json

        res = paired_comparison(input.a, input.b, n_boot=params.bootstrap, seed=int(wildcards.seed))
        atomic_write_json(output[0], {"a": input.a, "b": input.b, **res})
