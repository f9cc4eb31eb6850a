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
        cfg={k: v for k, v in config["evaluation"].items() if k != "benchmarks"},
        scoring=config["scoring"],
        template=config["template"],
    threads: 1
    resources:
        **rule_resources("eval_run", teacher_rule="sample_teacher"),
    script:
        "../scripts/eval_run.py"
