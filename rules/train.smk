rule train_config:
    input:
        student=student_base_dir(),
        selection="results/select/{variant}/seed{seed}.jsonl",
        jsonl=f"results/data/{DISTILL}/items.jsonl",
        frames=f"results/frames/{DISTILL}/manifest.jsonl",
    output:
        cfg="results/train/{variant}/seed{seed}/config.yaml",
    log:
        "results/logs/train_config/{variant}/seed{seed}.log",
    params:
        stage1=lambda wc: variant_cfg(wc.variant)["stage1"],
        stage2=lambda wc: variant_cfg(wc.variant)["stage2"],
        scoring=config["scoring"],
        template=config["template"],
    script:
        "../scripts/train_config.py"


rule train_student:
    input:
        cfg="results/train/{variant}/seed{seed}/config.yaml",
    output:
        directory("results/models/{variant}/seed{seed}"),
    log:
        "results/logs/train_student/{variant}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train_student/{variant}/seed{seed}.tsv"
    params:
        launch=launch_cmd("train_student", "rmsd.train"),
    threads: 1
    resources:
        **rule_resources("train_student"),
    shell:
        "{params.launch} --config {input.cfg} --out {output} --threads {threads} > {log} 2>&1"
