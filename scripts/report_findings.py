"""Adapter: rules report_table_comparisons / report_table_findings -> rmsd.report.findings."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

import json
from pathlib import Path

from rmsd.report.findings import comparisons_table, findings_table
from rmsd.report.tables import write_table
from rmsd.utils import log_to


def files(name):
    """A named input as a list (Snakemake gives a str for one file, nothing for an empty list)."""
    x = snakemake.input.get(name, [])
    return [x] if isinstance(x, str) else list(x)


p = snakemake.params
with log_to(snakemake.log[0]):
    if p.kind == "comparisons":
        table = comparisons_table(files("metrics"), [list(x) for x in p.pairs], p.benchmark,
                                  list(p.deterministic))
    else:
        stats = json.loads(Path(snakemake.input.scored_stats).read_text())
        table = findings_table(files("metrics"), files("pass_at_k"), stats, dict(p.roles), p.benchmark)
    write_table(table, snakemake.output.csv[: -len(".csv")])
