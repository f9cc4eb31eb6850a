"""Train one distillation variant.

Example::

    python -m rmsd.train --config results/train/rmsd/seed0/config.yaml --out results/models/rmsd/seed0

Launch under ``torchrun``/``accelerate launch``/``deepspeed`` for several processes (one per GPU).
"""

from __future__ import annotations

import argparse
import sys

import yaml


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rmsd.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="resolved variant config (YAML)")
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (overrides the config)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    with open(args.config, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    if args.threads is not None:
        cfg["threads"] = args.threads
    if args.dry_run:
        yaml.safe_dump(cfg, sys.stdout, sort_keys=False)
        return 0
    from rmsd.train.dist import init_runtime, shutdown
    from rmsd.train.run import train_variant

    rt = init_runtime(args.local_rank)
    try:
        train_variant(cfg, args.out, rt)
    finally:
        shutdown(rt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
