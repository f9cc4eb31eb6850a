rule models_processor:
    input:
        jsonl=f"results/data/{TRAIN}/items.jsonl",
    output:
        directory("results/models/processor"),
    log:
        "results/logs/models_processor/processor.log",
    params:
        tokenizer=config["models"].get("tokenizer"),
        processor=config["models"].get("processor"),
        template=config["template"],
    script:
        "../scripts/models_processor.py"


rule models_teacher:
    input:
        processor="results/models/processor",
        jsonl=f"results/data/{TRAIN}/items.jsonl",
        frames=f"results/frames/{TRAIN}/manifest.jsonl",
    output:
        directory("results/models/teachers/{teacher}"),
    log:
        "results/logs/models_teacher/{teacher}.log",
    benchmark:
        "results/benchmarks/models_teacher/{teacher}.tsv"
    params:
        cfg=lambda wc: config["models"]["teachers"][wc.teacher],
        template=config["template"],
        on_missing=config["frames"]["on_error"],
    threads: 1
    resources:
        **rule_resources("models_teacher"),
    script:
        "../scripts/models_train.py"


rule models_student_base:
    input:
        processor="results/models/processor",
        jsonl=f"results/data/{TRAIN}/items.jsonl",
        frames=f"results/frames/{TRAIN}/manifest.jsonl",
    output:
        directory("results/models/student_base"),
    log:
        "results/logs/models_student_base/student_base.log",
    benchmark:
        "results/benchmarks/models_student_base/student_base.tsv"
    params:
        cfg=config["models"]["student"],
        template=config["template"],
        on_missing=config["frames"]["on_error"],
    threads: 1
    resources:
        **rule_resources("models_student_base"),
    script:
        "../scripts/models_train.py"
