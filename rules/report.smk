##### tables (CSV + Markdown + LaTeX booktabs + HTML) from cached results; no model runs here #####


rule report_table_main:
    input:
        metrics=REPORT.metrics(REPORT.main),
    output:
        csv=report("results/tables/main.csv", caption="../report/table_main.rst", category="Tables",
                   subcategory="Main results", labels={"table": "1 main results", "format": "csv"}),
        md="results/tables/main.md",
        tex=report("results/tables/main.tex", caption="../report/table_main.rst", category="Tables",
                   subcategory="Main results", labels={"table": "1 main results", "format": "tex"}),
        html=report("results/tables/main.html", caption="../report/table_main.rst", category="Tables",
                    subcategory="Main results", labels={"table": "1 main results", "format": "html"}),
    log:
        "results/logs/report_table_main/main.log",
    params:
        kind="main",
        variants=REPORT.main,
        benchmarks=REPORT.benchmarks,
        benchmark=REPORT.benchmark,
    localrule: True
    script:
        "../scripts/report_table.py"


rule report_table_vstar:
    input:
        metrics=REPORT.vstar_metrics(),
    output:
        csv=report("results/tables/vstar.csv", caption="../report/table_vstar.rst", category="Tables",
                   subcategory="Main results", labels={"table": "2 V-STaR", "format": "csv"}),
        md="results/tables/vstar.md",
        tex=report("results/tables/vstar.tex", caption="../report/table_vstar.rst", category="Tables",
                   subcategory="Main results", labels={"table": "2 V-STaR", "format": "tex"}),
        html=report("results/tables/vstar.html", caption="../report/table_vstar.rst", category="Tables",
                    subcategory="Main results", labels={"table": "2 V-STaR", "format": "html"}),
    log:
        "results/logs/report_table_vstar/vstar.log",
    params:
        kind="vstar",
        variants=REPORT.main,
    localrule: True
    script:
        "../scripts/report_table.py"


rule report_table_teacher:
    input:
        scored_stats=f"results/scored/{DISTILL}.stats.json",
    output:
        csv=report("results/tables/teacher_unreliability.csv", caption="../report/table_teacher.rst",
                   category="Tables", subcategory="Main results",
                   labels={"table": "teacher unreliability", "format": "csv"}),
        md="results/tables/teacher_unreliability.md",
        tex=report("results/tables/teacher_unreliability.tex", caption="../report/table_teacher.rst",
                   category="Tables", subcategory="Main results",
                   labels={"table": "teacher unreliability", "format": "tex"}),
        html=report("results/tables/teacher_unreliability.html", caption="../report/table_teacher.rst",
                    category="Tables", subcategory="Main results",
                    labels={"table": "teacher unreliability", "format": "html"}),
    log:
        "results/logs/report_table_teacher/teacher_unreliability.log",
    params:
        kind="teacher_unreliability",
    localrule: True
    script:
        "../scripts/report_table.py"


rule report_table_ablation:
    input:
        metrics=REPORT.metrics(REPORT.ablation),
        selections=REPORT.selection_stats(REPORT.ablation),
    output:
        csv=report("results/tables/ablation.csv", caption="../report/table_ablation.rst", category="Tables",
                   subcategory="Ablations", labels={"table": "3 component ablation", "format": "csv"}),
        md="results/tables/ablation.md",
        tex=report("results/tables/ablation.tex", caption="../report/table_ablation.rst", category="Tables",
                   subcategory="Ablations", labels={"table": "3 component ablation", "format": "tex"}),
        html=report("results/tables/ablation.html", caption="../report/table_ablation.rst", category="Tables",
                    subcategory="Ablations", labels={"table": "3 component ablation", "format": "html"}),
    log:
        "results/logs/report_table_ablation/ablation.log",
    params:
        kind="ablation",
        rows=REPORT.rows(REPORT.ablation),
        benchmarks=REPORT.benchmarks,
    localrule: True
    script:
        "../scripts/report_table.py"


rule report_table_k:
    input:
        metrics=REPORT.metrics(REPORT.k),
        selections=REPORT.selection_stats(REPORT.k),
    output:
        csv=report("results/tables/k_sensitivity.csv", caption="../report/table_k.rst", category="Tables",
                   subcategory="Ablations", labels={"table": "4 K sensitivity", "format": "csv"}),
        md="results/tables/k_sensitivity.md",
        tex=report("results/tables/k_sensitivity.tex", caption="../report/table_k.rst", category="Tables",
                   subcategory="Ablations", labels={"table": "4 K sensitivity", "format": "tex"}),
        html=report("results/tables/k_sensitivity.html", caption="../report/table_k.rst", category="Tables",
                    subcategory="Ablations", labels={"table": "4 K sensitivity", "format": "html"}),
    log:
        "results/logs/report_table_k/k_sensitivity.log",
    params:
        kind="k_sensitivity",
        rows=REPORT.rows(REPORT.k),
        benchmarks=REPORT.benchmarks,
        not_run=REPORT.not_run["k_variants"],
    localrule: True
    script:
        "../scripts/report_table.py"


rule report_table_tau:
    input:
        metrics=REPORT.metrics(REPORT.tau),
        selections=REPORT.selection_stats(REPORT.tau),
    output:
        csv=report("results/tables/tau_sensitivity.csv", caption="../report/table_tau.rst", category="Tables",
                   subcategory="Ablations", labels={"table": "5 tau sensitivity", "format": "csv"}),
        md="results/tables/tau_sensitivity.md",
        tex=report("results/tables/tau_sensitivity.tex", caption="../report/table_tau.rst", category="Tables",
                   subcategory="Ablations", labels={"table": "5 tau sensitivity", "format": "tex"}),
        html=report("results/tables/tau_sensitivity.html", caption="../report/table_tau.rst", category="Tables",
                    subcategory="Ablations", labels={"table": "5 tau sensitivity", "format": "html"}),
    log:
        "results/logs/report_table_tau/tau_sensitivity.log",
    params:
        kind="tau_sensitivity",
        rows=REPORT.rows(REPORT.tau),
        benchmarks=REPORT.benchmarks,
        not_run=REPORT.not_run["tau_variants"],
    localrule: True
    script:
        "../scripts/report_table.py"


rule report_table_task_adaptive:
    input:
        metrics=REPORT.metrics(REPORT.task_adaptive, [REPORT.benchmark]),
    output:
        csv=report("results/tables/task_adaptive.csv", caption="../report/table_task_adaptive.rst",
                   category="Tables", subcategory="Ablations", labels={"table": "6 task-adaptive 2x2", "format": "csv"}),
        md="results/tables/task_adaptive.md",
        tex=report("results/tables/task_adaptive.tex", caption="../report/table_task_adaptive.rst",
                   category="Tables", subcategory="Ablations", labels={"table": "6 task-adaptive 2x2", "format": "tex"}),
        html=report("results/tables/task_adaptive.html", caption="../report/table_task_adaptive.rst",
                    category="Tables", subcategory="Ablations",
                    labels={"table": "6 task-adaptive 2x2", "format": "html"}),
    log:
        "results/logs/report_table_task_adaptive/task_adaptive.log",
    params:
        kind="task_adaptive",
        rows=REPORT.rows(REPORT.task_adaptive),
        benchmark=REPORT.benchmark,
        default_weighting=config["recipe"]["selection"]["weighting"],
        not_run=REPORT.not_run["task_adaptive_variants"],
    localrule: True
    script:
        "../scripts/report_table.py"


##### the pass@k samples: a small sampled evaluation of the pass@k variants (report.pass_at_k) #####


rule report_eval_pass_at_k:
    input:
        model=get_model_dir,
        jsonl="results/data/{dataset}/items.jsonl",
        frames="results/frames/{dataset}/manifest.jsonl",
    output:
        metrics="results/pass_at_k/{variant}/seed{seed}/{dataset}/metrics.json",
        samples="results/pass_at_k/{variant}/seed{seed}/{dataset}/samples.jsonl",
        subset="results/pass_at_k/{variant}/seed{seed}/{dataset}/items.jsonl",
    log:
        "results/logs/report_eval_pass_at_k/{variant}/seed{seed}/{dataset}.log",
    benchmark:
        "results/benchmarks/report_eval_pass_at_k/{variant}/seed{seed}/{dataset}.tsv"
    params:
        cfg=get_pass_at_k_eval_cfg,
        pass_at_k={k: REPORT.pass_at_k[k] for k in ("samples", "temperature", "threshold", "items_per_task")},
        scoring=config["scoring"],
        template=config["template"],
        frames=config["frames"],
        engine=eval_engine,
    threads: 1
    resources:
        **rule_resources("eval_run"),
    script:
        "../scripts/report_eval_pass_at_k.py"


##### figures (PNG + PDF) #####


rule report_figure_main:
    input:
        metrics=REPORT.metrics(REPORT.main, [REPORT.benchmark]),
    output:
        png=report("results/figures/main.png", caption="../report/figure_main.rst", category="Figures",
                   subcategory="Main results", labels={"figure": "main results", "format": "png"}),
        pdf="results/figures/main.pdf",
    log:
        "results/logs/report_figure_main/main.log",
    params:
        variants=REPORT.main,
        benchmark=REPORT.benchmark,
    localrule: True
    script:
        "../scripts/report_figure_main.py"


rule report_figure_teacher_variance:
    input:
        scored=f"results/scored/{DISTILL}.parquet",
    output:
        png=report("results/figures/teacher_variance.png", caption="../report/figure_teacher_variance.rst",
                   category="Figures", subcategory="Main results",
                   labels={"figure": "teacher variance", "format": "png"}),
        pdf="results/figures/teacher_variance.pdf",
    log:
        "results/logs/report_figure_teacher_variance/teacher_variance.log",
    localrule: True
    script:
        "../scripts/report_figure_teacher_variance.py"


rule report_figure_pass_at_k:
    input:
        metrics=REPORT.pass_at_k_metrics(),
    output:
        png=report("results/figures/pass_at_k.png", caption="../report/figure_pass_at_k.rst", category="Figures",
                   subcategory="Main results", labels={"figure": "pass@k", "format": "png"}),
        pdf="results/figures/pass_at_k.pdf",
    log:
        "results/logs/report_figure_pass_at_k/pass_at_k.log",
    params:
        settings=REPORT.pass_at_k_params(),
    localrule: True
    script:
        "../scripts/report_figure_pass_at_k.py"


rule report_figure_training:
    input:
        models=REPORT.model_dirs(REPORT.curves),
    output:
        png=report("results/figures/training_curves.png", caption="../report/figure_training.rst",
                   category="Figures", subcategory="Main results",
                   labels={"figure": "training curves", "format": "png"}),
        pdf="results/figures/training_curves.pdf",
    log:
        "results/logs/report_figure_training/training_curves.log",
    localrule: True
    script:
        "../scripts/report_figure_training.py"


rule report_figure_sensitivity:
    input:
        k="results/tables/k_sensitivity.csv",
        tau="results/tables/tau_sensitivity.csv",
    output:
        png=report("results/figures/sensitivity.png", caption="../report/figure_sensitivity.rst", category="Figures",
                   subcategory="Ablations", labels={"figure": "K and tau sensitivity", "format": "png"}),
        pdf="results/figures/sensitivity.pdf",
    log:
        "results/logs/report_figure_sensitivity/sensitivity.log",
    params:
        benchmark=REPORT.benchmark,
    localrule: True
    script:
        "../scripts/report_figure_sensitivity.py"


rule report_figure_pipeline:
    input:
        sources=get_workflow_sources(),
    output:
        dot="results/figures/pipeline.dot",
        png=report("results/figures/pipeline.png", caption="../report/figure_pipeline.rst", category="Figures",
                   subcategory="Pipeline", labels={"figure": "pipeline (rule graph)", "format": "png"}),
        pdf="results/figures/pipeline.pdf",
    log:
        "results/logs/report_figure_pipeline/pipeline.log",
    params:
        snakefile=workflow.main_snakefile,
        targets=["all", "ablations"],
    localrule: True
    script:
        "../scripts/report_figure_pipeline.py"


##### paired comparisons and the paper's findings (rmsd.report.findings) #####


rule report_table_comparisons:
    input:
        metrics=REPORT.metrics(REPORT.comparison_variants(), [REPORT.benchmark]),
    output:
        csv=report("results/tables/comparisons.csv", caption="../report/table_comparisons.rst", category="Tables",
                   subcategory="Main results", labels={"table": "paired comparisons", "format": "csv"}),
        md="results/tables/comparisons.md",
        tex="results/tables/comparisons.tex",
        html=report("results/tables/comparisons.html", caption="../report/table_comparisons.rst",
                    category="Tables", subcategory="Main results",
                    labels={"table": "paired comparisons", "format": "html"}),
    log:
        "results/logs/report_table_comparisons/comparisons.log",
    params:
        kind="comparisons",
        pairs=REPORT.comparisons,
        deterministic=[v for v in REPORT.comparison_variants() if not REPORT.trained(v)],
        benchmark=REPORT.benchmark,
    localrule: True
    script:
        "../scripts/report_findings.py"


rule report_table_findings:
    input:
        metrics=REPORT.metrics(REPORT.roles_variants(), [REPORT.benchmark]),
        pass_at_k=REPORT.pass_at_k_metrics(),
        scored_stats=f"results/scored/{DISTILL}.stats.json",
    output:
        csv=report("results/tables/findings.csv", caption="../report/table_findings.rst", category="Tables",
                   subcategory="Findings", labels={"table": "paper findings", "format": "csv"}),
        md="results/tables/findings.md",
        tex="results/tables/findings.tex",
        html=report("results/tables/findings.html", caption="../report/table_findings.rst", category="Tables",
                    subcategory="Findings", labels={"table": "paper findings", "format": "html"}),
    log:
        "results/logs/report_table_findings/findings.log",
    params:
        kind="findings",
        roles=REPORT.roles(),
        benchmark=REPORT.benchmark,
    localrule: True
    script:
        "../scripts/report_findings.py"


rule run_config:
    # The config this run was made with (files merged, defaults filled, keys in canonical order):
    # what `snakemake --report` checks its own config against (rmsd.report.run_config), and where
    # a reader finds every setting of the run. Rewritten whenever a config value changes.
    output:
        "results/config/resolved.yaml",
    params:
        config=lambda wc: canonical(config),
    localrule: True
    run:
        from rmsd.report.run_config import write_resolved

        write_resolved(params.config, output[0])
