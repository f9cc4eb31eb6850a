rule report_tables:
    input:
        metrics=eval_outputs(report_variants()),
        scored_stats=f"results/scored/{DISTILL}.stats.json",
        selections=[
            f"results/select/{v}/seed{s}.stats.json"
            for v in config["report"]["ablation_variants"]
            if is_trained(v)
            for s in variant_seeds(v)
        ],
    output:
        main="results/tables/main.csv",
        main_md="results/tables/main.md",
        ablation="results/tables/ablation.md",
        teacher="results/tables/teacher_unreliability.md",
    log:
        "results/logs/report_tables/report.log",
    params:
        report=config["report"],
        teachers=sorted(config["models"]["teachers"]),
        benchmark=config["evaluation"]["benchmarks"][0],
    script:
        "../scripts/report_tables.py"


rule report_figures:
    input:
        main="results/tables/main.csv",
        scored=f"results/scored/{DISTILL}.parquet",
    output:
        main="results/figures/main.png",
        variance="results/figures/teacher_variance.png",
    log:
        "results/logs/report_figures/report.log",
    script:
        "../scripts/report_figures.py"
