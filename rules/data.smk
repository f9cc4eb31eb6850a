import re

rule data_synth:
    output:
        jsonl="results/data/synth-{split}/items.jsonl",
        videos=directory("results/data/synth-{split}/videos"),
    log:
        "results/logs/data_synth/{split}.log",
    params:
        cfg=lambda wc: config["data"],
    script:
        "../scripts/data_synth.py"


rule data_clips:
    output:
        jsonl="results/data/clips/items.jsonl",
    log:
        "results/logs/data_clips/clips.log",
    script:
        "../scripts/data_clips.py"


EVAL_ITEMS = config["evaluation"].get("items") or {}  # own evaluation sets, NAME: items file


rule data_external:
    input:
        source=lambda wc: EVAL_ITEMS[wc.split] if wc.split in EVAL_ITEMS else config["data"]["external"][wc.split],
    output:
        jsonl="results/data/{split}/items.jsonl",
    log:
        "results/logs/data_external/{split}.log",
    wildcard_constraints:
        split="|".join(["train", "distill"] + [re.escape(n) for n in EVAL_ITEMS]),
    script:
        "../scripts/data_external.py"


from rmsd.evaluation.benchmarks import BENCHMARK_NAMES, import_params
from rmsd.evaluation.benchmarks.settings import annotation_files


rule data_import:
    # One of the paper's eight benchmarks, from its native annotation files under
    # evaluation.data_root (no benchmark data ships; a missing file is reported by name).
    input:
        annotations=lambda wc: annotation_files(config["evaluation"], wc.benchmark),
    output:
        jsonl="results/data/{benchmark}/items.jsonl",
        stats="results/data/{benchmark}/import.json",
    log:
        "results/logs/data_import/{benchmark}.log",
    wildcard_constraints:
        benchmark="|".join(re.escape(b) for b in BENCHMARK_NAMES),
    params:
        cfg=lambda wc: import_params(config["evaluation"], wc.benchmark),
    script:
        "../scripts/data_import.py"
