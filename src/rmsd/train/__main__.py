"""Train one distillation variant.

Example::

    python -m rmsd.train --config results/train/rmsd/seed0/config.yaml --out results/models/rmsd/seed0

On SIGUSR1 or SIGTERM (``--stop-signals``) it writes a checkpoint after the current optimizer step
and exits with status 75; the same command then resumes (:mod:`rmsd.train.preempt`).

Launch under ``torchrun``/``accelerate launch``/``deepspeed`` for several processes (one per GPU).
"""

from __future__ import annotations

import argparse
import sys

import yaml

from rmsd.train.preempt import DEFAULT_SIGNALS, EXIT_PREEMPTED


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rmsd.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="resolved variant config (YAML)")
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (overrides the config)")
    p.add_argument("--stop-signals", default=DEFAULT_SIGNALS,
                   help="signals that make training write a checkpoint after the current optimizer step "
                        f"and exit with status {EXIT_PREEMPTED} (comma-separated; 'none': keep the default "
                        "actions); a rerun resumes from that checkpoint (default: %(default)s)")
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
    from rmsd.train import preempt
    from rmsd.train.dist import init_runtime, shutdown
    from rmsd.train.run import train_variant

    if why := preempt.stopped_in_this_job(args.out):
        print(why, file=sys.stderr, flush=True)
        return EXIT_PREEMPTED
    preempt.install(preempt.parse_signals(args.stop_signals))
    rt = init_runtime(args.local_rank)
    try:
        train_variant(cfg, args.out, rt)
    except preempt.Preempted as e:
        if rt.is_main:
            preempt.mark_stopped(args.out, e)
            preempt.log.warning("%s", e)
        return EXIT_PREEMPTED
    finally:
        shutdown(rt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
