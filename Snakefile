# rmsd: Reliable Multi-Sample Distillation for video understanding, as a Snakemake workflow.
# This file is a table of contents: configuration, validation, rule files in stage order, targets.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


##### setup: validation, variant resolution, input functions #####
include: "rules/common.smk"
##### stages, in DAG order #####
include: "rules/data.smk"
include: "rules/frames.smk"
include: "rules/models.smk"
include: "rules/sample.smk"
include: "rules/score.smk"
include: "rules/train.smk"
include: "rules/eval.smk"
include: "rules/report.smk"


##### targets #####
rule all:
    default_target: True
    input:
        get_main_outputs(),


rule ablations:
    input:
        get_ablation_outputs(),
