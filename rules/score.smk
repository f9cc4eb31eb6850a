rule score_pool:
    input:
        jsonl="results/data/{dataset}/items.jsonl",
        pools=get_pool_files,
    output:
        scored="results/scored/{dataset}.parquet",
        stats="results/scored/{dataset}.stats.json",
    log:
        "results/logs/score_pool/{dataset}.log",
    params:
        cfg=config["scoring"],
    script:
        "../scripts/score_pool.py"


rule score_select:
    input:
        scored=f"results/scored/{DISTILL}.parquet",
        jsonl=f"results/data/{DISTILL}/items.jsonl",
    output:
        selection="results/select/{variant}/seed{seed}.jsonl",
        stats="results/select/{variant}/seed{seed}.stats.json",
    log:
        "results/logs/score_select/{variant}/seed{seed}.log",
    params:
        cfg=lambda wc: variant_cfg(wc.variant)["selection"],
        template=config["template"],
    script:
        "../scripts/score_select.py"
