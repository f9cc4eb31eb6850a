rule sample_teacher:
    input:
        model="results/models/teachers/{teacher}",
        jsonl="results/data/{dataset}/items.jsonl",
        frames="results/frames/{dataset}/manifest.jsonl",
    output:
        pool="results/pool/{teacher}/{dataset}.jsonl",
    log:
        "results/logs/sample_teacher/{teacher}/{dataset}.log",
    benchmark:
        "results/benchmarks/sample_teacher/{teacher}/{dataset}.tsv"
    params:
        K=config["sampling"]["K"],
        chunk_items=config["sampling"].get("chunk_items", 64),
        cfg=lambda wc: config["sampling"]["teachers"][wc.teacher],
        template=config["template"],
    threads: 1
    script:
        "../scripts/sample_teacher.py"
