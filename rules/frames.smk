rule frames_extract:
    input:
        jsonl="results/data/{dataset}/items.jsonl",
    output:
        manifest="results/frames/{dataset}/manifest.jsonl",
        frames="results/frames/{dataset}/frames.npy",
        stats="results/frames/{dataset}/stats.json",
        skipped="results/frames/{dataset}/skipped.json",
    log:
        "results/logs/frames_extract/{dataset}.log",
    benchmark:
        "results/benchmarks/frames_extract/{dataset}.tsv"
    params:
        cfg=config["frames"],
    script:
        "../scripts/frames_extract.py"
