"""rmsd: Reliable Multi-Sample Distillation (R-MSD) for video understanding.

One subpackage per pipeline stage: data, frames, models, teachers, scoring, train, evaluation, report.
Snakemake rules call into these packages through thin adapters in scripts/.
"""

__version__ = "0.1.0"
