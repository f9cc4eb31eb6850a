"""The pipeline figure: ``snakemake --rulegraph`` as DOT, drawn with graphviz ``dot`` when it is
installed, else with networkx + matplotlib from the same DOT text (paper.md section 7.3)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from rmsd.io import atomic_path, atomic_write_text
from rmsd.utils import get_logger

log = get_logger(__name__)

_NODE = re.compile(r'^\s*(\d+)\s*\[\s*label\s*=\s*"([^"]*)"', re.M)
_EDGE = re.compile(r"^\s*(\d+)\s*->\s*(\d+)", re.M)

STAGE_COLORS = {"data": "#cfe2f3", "frames": "#d9ead3", "models": "#fff2cc", "sample": "#fce5cd",
                "score": "#f4cccc", "train": "#d9d2e9", "eval": "#d0e0e3", "report": "#e8e8e8"}
"""Fill colour per rule-name prefix (the stage); targets and other rules are white."""


def rulegraph_dot(snakefile: str, configfiles: list[str], targets: list[str], cwd: str = ".") -> str:
    """DOT text of ``snakemake --rulegraph TARGETS`` for the same Snakefile and config files.

    Runs a nested Snakemake (``--nolock``: the outer run holds the lock; no job is executed).
    """
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", snakefile, "--rulegraph", "--nolock",
           "--workflow-profile", "none", *targets]
    if configfiles:
        cmd += ["--configfile", *configfiles]
    env = dict(os.environ)
    env.pop("SNAKEMAKE_PROFILE", None)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return extract_dot(proc.stdout)


def extract_dot(text: str) -> str:
    """The ``digraph { ... }`` part of Snakemake's output (other lines, if any, dropped)."""
    start = text.find("digraph")
    end = text.rfind("}")
    if start < 0 or end < start:
        raise ValueError("no digraph in snakemake --rulegraph output")
    return text[start:end + 1] + "\n"


def parse_dot(dot: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Nodes ``{id: rule name}`` and edges ``[(from, to)]`` of a Snakemake rulegraph."""
    nodes = dict(_NODE.findall(dot))
    edges = [(a, b) for a, b in _EDGE.findall(dot) if a in nodes and b in nodes]
    return nodes, edges


def stage_of(rule: str) -> str | None:
    prefix = rule.split("_", 1)[0]
    return prefix if prefix in STAGE_COLORS else None


def styled_dot(dot: str) -> str:
    """The rulegraph with one fill colour per stage and a left-to-right layout."""
    nodes, edges = parse_dot(dot)
    lines = ["digraph rmsd_pipeline {", '  graph [rankdir=LR, bgcolor=white, margin=0.1, nodesep=0.25, ranksep=0.45, '
             'fontname="sans", label="rmsd pipeline (snakemake --rulegraph); colour = stage", labelloc=t];',
             '  node [shape=box, style="rounded,filled", fontname="sans", fontsize=11, penwidth=1.2];',
             "  edge [color=grey40, arrowsize=0.7];"]
    for i, name in nodes.items():
        fill = STAGE_COLORS.get(stage_of(name) or "", "white")
        lines.append(f'  {i} [label="{name}", fillcolor="{fill}"];')
    lines += [f"  {a} -> {b};" for a, b in edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_with_dot(dot: str, out_png: Path) -> bool:
    """Render with graphviz ``dot`` (PNG and PDF); False when ``dot`` is not installed."""
    exe = shutil.which("dot")
    if exe is None:
        return False
    for fmt, path in (("png", out_png), ("pdf", out_png.with_suffix(".pdf"))):
        with atomic_path(path, suffix=path.suffix) as tmp:
            args = [exe, f"-T{fmt}", "-o", str(tmp)] + (["-Gdpi=150"] if fmt == "png" else [])
            subprocess.run(args, input=dot, text=True, check=True, capture_output=True)
    return True


def render_with_networkx(dot: str, out_png: Path) -> None:
    """Layered drawing (one column per longest-path depth) with networkx + matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    from rmsd.report.figures import save_figure

    nodes, edges = parse_dot(dot)
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    depth = {}
    for n in nx.topological_sort(g):
        depth[n] = max((depth[p] + 1 for p in g.predecessors(n)), default=0)
    for n in g.nodes:
        g.nodes[n]["layer"] = depth[n]
    pos = nx.multipartite_layout(g, subset_key="layer", align="vertical")
    n_layers = max(depth.values(), default=0) + 1
    height = max((sum(1 for d in depth.values() if d == k) for k in range(n_layers)), default=1)
    fig, ax = plt.subplots(figsize=(max(8, 2.3 * n_layers), max(4, 0.7 * height + 1)))
    nx.draw_networkx_edges(g, pos, ax=ax, arrows=True, arrowsize=10, edge_color="0.5",
                           min_source_margin=30, min_target_margin=30)
    for n, (x, y) in pos.items():
        ax.text(x, y, nodes[n], ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round", "fc": STAGE_COLORS.get(stage_of(nodes[n]) or "", "white"), "ec": "0.3"})
    ax.set_title("rmsd pipeline (snakemake --rulegraph, drawn with networkx; colour = stage)")
    ax.axis("off")
    save_figure(fig, out_png)


def pipeline_figure(snakefile: str, configfiles: list[str], targets: list[str], out_dot: str, out_png: str,
                    engine: str = "auto") -> str:
    """Write the rulegraph DOT (``out_dot``) and the figure (PNG + PDF); return the engine used.

    ``engine``: auto (``dot`` if installed, else networkx), dot, networkx.
    """
    raw = rulegraph_dot(snakefile, configfiles, targets)
    dot = styled_dot(raw)
    atomic_write_text(out_dot, dot)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    if engine in ("auto", "dot") and render_with_dot(dot, out):
        used = "dot"
    elif engine == "dot":
        raise RuntimeError("graphviz `dot` is not installed (apt-get install graphviz)")
    else:
        render_with_networkx(dot, out)
        used = "networkx"
    log.info("pipeline figure: %d rules, drawn with %s", len(parse_dot(dot)[0]), used)
    return used
