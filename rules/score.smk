# Scoring and selection hold the whole pool in memory (pandas): items x K x teachers rows, measured
# about 6.5 KB per row in score_pool and 5.6 KB in score_select at paper scale (880K rows: 5.7 and
# 4.9 GB). Their mem_mb is derived from that (slurm/README.md), unless resources.score_pool /
# score_select set it.


def pool_rows(dataset):
    """items x sampling.K x teachers of a dataset whose item count is known at parse time, else None."""
    n = dataset_items_hint(dataset)
    return None if n is None else n * config["sampling"]["K"] * len(config["sampling"]["teachers"])


def score_resources(rule, dataset, kb_per_row):
    """mem_mb = 2000 + rows x kb_per_row x 1.25 (headroom); runtime = 30 + rows / 1000 per minute."""
    own, rows = config.get("resources", {}).get(rule, {}), pool_rows(dataset)
    mem = 2000 + int(1.25 * rows * kb_per_row / 1000) if rows is not None else 4000
    run = 30 + rows // 60000 if rows is not None else 60
    return {"mem_mb": own.get("mem_mb", mem), "runtime": own.get("runtime", run)}


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
    resources:
        mem_mb=lambda wc: score_resources("score_pool", wc.dataset, 6.5)["mem_mb"],
        runtime=lambda wc: score_resources("score_pool", wc.dataset, 6.5)["runtime"],
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
    resources:
        mem_mb=score_resources("score_select", DISTILL, 5.6)["mem_mb"],
        runtime=score_resources("score_select", DISTILL, 5.6)["runtime"],
    script:
        "../scripts/score_select.py"
