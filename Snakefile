# rmsd: Reliable Multi-Sample Distillation for video understanding, as a Snakemake workflow.
# This file is a table of contents: configuration, validation, rule files in stage order, targets.

import os

from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless experiment files are given with --configfile: a complete one
# (config/paper.yaml, tests/workflow/config.yaml) replaces it; a file with `base: <file>` is merged
# over that file and may `replace` whole sections (docs/howto.md).
DEFAULT_CONFIG = os.path.join(workflow.basedir, "config", "config.yaml")  # also under -d elsewhere
if not workflow.config_settings.configfiles:

    configfile: DEFAULT_CONFIG


# Rebuilt from the files: duplicate keys are errors, a file may name a `base` file it is merged over
# and `replace` whole sections (docs/howto.md); --config overrides are merged last.
from rmsd.config import load_config_files

_config = load_config_files(workflow.config_settings.configfiles or [DEFAULT_CONFIG],
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
