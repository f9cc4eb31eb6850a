"""Adapter: rule data_external -> rmsd.data.import_items (validate and copy an external items file)."""
snakemake = globals()["snakemake"]  # injected by Snakemake's script preamble

from rmsd.data import import_items  # noqa: E402
from rmsd.utils import log_to  # noqa: E402

with log_to(snakemake.log[0]):
    import_items(src=snakemake.input.source, out_path=snakemake.output.jsonl)
