from rmsd.evaluation.benchmarks import check_evaluation_config, eval_params

check_evaluation_config(config["evaluation"])


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
    threads: 1
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
