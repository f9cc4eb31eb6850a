# Validation and input functions. No rules here.
import os

from snakemake.utils import validate

from rmsd.config import check_config, resolve_variant

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

validate(config, schema="../config/schema.yaml")
check_config(config)

SYNTH_SPLITS = ["train", "distill", "test"]
DISTILL = "synth-distill"


wildcard_constraints:
    split="|".join(SYNTH_SPLITS),
    dataset=r"[A-Za-z0-9_.\-]+",
    teacher="|".join(config["models"]["teachers"]),
    variant=r"[A-Za-z0-9_.\-]+",
    seed=r"\d+",


def variant_cfg(variant):
    return resolve_variant(config, variant)


def is_trained(variant):
    return variant_cfg(variant)["train"]


def variant_seeds(variant):
    """Untrained models are deterministic: one seed."""
    return config["seeds"] if is_trained(variant) else config["seeds"][:1]


def model_dir(variant, seed):
    v = variant_cfg(variant)
    if "teacher" in v:
        return f"results/models/teachers/{v['teacher']}"
    if not v["train"]:
        return "results/models/student_base"
    return f"results/models/{variant}/seed{seed}"


def get_model_dir(wildcards):
    return model_dir(wildcards.variant, wildcards.seed)


def selection_teachers(wildcards):
    return variant_cfg(wildcards.variant)["selection"]["teachers"]


def get_pool_files(wildcards):
    return expand("results/pool/{teacher}/{dataset}.jsonl", teacher=sorted(config["models"]["teachers"]),
                  dataset=wildcards.dataset)


def eval_outputs(variants):
    return [
        f"results/eval/{v}/seed{s}/{b}/metrics.json"
        for v in variants
        for s in variant_seeds(v)
        for b in config["evaluation"]["benchmarks"]
    ]


def report_variants():
    names = list(dict.fromkeys(config["report"]["main_variants"] + config["report"].get("ablation_variants", [])))
    return names + [f"teacher-{t}" for t in config["models"]["teachers"]]


def get_main_outputs():
    out = [
        "results/tables/main.csv",
        "results/tables/ablation.md",
        "results/tables/teacher_unreliability.md",
        "results/figures/main.png",
        "results/figures/teacher_variance.png",
    ]
    if config["data"].get("clips", False):
        out.append("results/frames/clips/manifest.jsonl")
    return out


def get_ablation_outputs():
    return ["results/tables/ablation.md"]
