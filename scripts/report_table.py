"""Adapter: rules report_table_* -> rmsd.report.tables.write_report_table."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.report.tables import write_report_table
from rmsd.utils import log_to


def files(name):
    """A named input as a list (Snakemake gives a str for one file, nothing for an empty list)."""
    x = snakemake.input.get(name, [])
    return [x] if isinstance(x, str) else list(x)


params = dict(snakemake.params.items())
with log_to(snakemake.log[0]):
    write_report_table(
        kind=params.pop("kind"),
        out_stem=snakemake.output.csv[: -len(".csv")],
        metrics=files("metrics"),
        selections=files("selections"),
        scored_stats=snakemake.input.get("scored_stats"),
        **params,
    )
