# Teacher sampling (paper sections 3.2, 3.11): K samples per item and teacher, scattered over
# sampling.shards shards of the dataset and gathered into results/pool/{teacher}/{dataset}.jsonl.
# Samples are cached per (teacher, revision, prompt, frames, sampling parameters, seed, k) under
# results/cache/pool/{teacher}/{dataset}/ (not a Snakemake output: it survives reruns), so a
# rerun, a larger K or a re-sharding generates only the missing samples.

from rmsd.teachers.base import check_teacher_config

N_SHARDS = config["sampling"].get("shards", 1)
for _name, _cfg in config["sampling"]["teachers"].items():
    check_teacher_config(_name, _cfg)  # fail at parse time, not in the job


localrules:
    sample_teacher,


def sample_env(wildcards):
    """--sdm conda: vLLM teachers sample in envs/vllm.yaml (vLLM's own torch/numpy pins), others
    in the job's default environment."""
    return "../envs/vllm.yaml" if config["sampling"]["teachers"][wildcards.teacher].get("backend") == "vllm" else None


rule sample_teacher_shard:
    input:
        unpack(teacher_model_input),
        jsonl="results/data/{dataset}/items.jsonl",
        frames="results/frames/{dataset}/manifest.jsonl",
    output:
        shard="results/pool/{teacher}/shards/{dataset}/{shard}-of-{nshards}.jsonl",
    log:
        "results/logs/sample_teacher/{teacher}/{dataset}/{shard}-of-{nshards}.log",
    benchmark:
        "results/benchmarks/sample_teacher/{teacher}/{dataset}/{shard}-of-{nshards}.tsv"
    wildcard_constraints:
        shard=r"\d+",
        nshards=r"\d+",
    params:
        K=config["sampling"]["K"],
        chunk_items=config["sampling"].get("chunk_items", 64),
        cfg=lambda wc: config["sampling"]["teachers"][wc.teacher],
        template=config["template"],
        cache_dir=lambda wc: f"results/cache/pool/{wc.teacher}/{wc.dataset}",
        model_revision=lambda wc: config["models"]["teachers"].get(wc.teacher, {}).get("revision"),
        on_missing=config["frames"].get("on_error", "fail"),  # items the frame stage skipped
        identical_max_share=config["sampling"].get("identical_max_share", 0.9),
        on_identical=config["sampling"].get("on_identical", "fail"),
    threads: 1
    conda:
        sample_env
    resources:
        **rule_resources("sample_teacher"),
    script:
        "../scripts/sample_teacher.py"


rule sample_teacher:
    input:
        shards=lambda wc: expand(
            "results/pool/{teacher}/shards/{dataset}/{shard}-of-{n}.jsonl",
            teacher=wc.teacher, dataset=wc.dataset, shard=range(N_SHARDS), n=N_SHARDS,
        ),
    output:
        pool="results/pool/{teacher}/{dataset}.jsonl",
    log:
        "results/logs/sample_teacher/{teacher}/{dataset}.log",
    params:
        K=config["sampling"]["K"],
    script:
        "../scripts/sample_teacher_gather.py"
