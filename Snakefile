# rmsd: Reliable Multi-Sample Distillation for video understanding, as a Snakemake workflow.
# This file is a table of contents: configuration, validation, rule files in stage order, targets.

from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless a complete experiment is given with --configfile (config/paper.yaml,
# tests/workflow/config.yaml): those replace it instead of being deep-merged into it.
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


# Rebuilt from the files: duplicate keys are errors, a file may name a `base` file it is merged over
# and `replace` whole sections (docs/howto.md); --config overrides are merged last.
from rmsd.config import load_config_files

_config = load_config_files(workflow.config_settings.configfiles or ["config/config.yaml"],
                            dict(workflow.config_settings.config))
config.clear()
config.update(_config)


report: "report/workflow.rst"


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


rule report:
    input:
        get_report_outputs(),
