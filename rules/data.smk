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


rule data_external:
    input:
        source=lambda wc: config["data"]["external"][wc.split],
    output:
        jsonl="results/data/{split}/items.jsonl",
    log:
        "results/logs/data_external/{split}.log",
    wildcard_constraints:
        split="train|distill",
    script:
        "../scripts/data_external.py"
