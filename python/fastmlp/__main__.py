"""``python -m fastmlp demo``: the package's main job on the data it ships with.
``python -m fastmlp diagnose DATA``: why a network does not learn (see cli_diagnose)."""
from __future__ import annotations

import argparse
import sys

from . import cli_diagnose
from .demo import run_demo


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fastmlp")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train a digits classifier and report test accuracy")
    demo.add_argument("--epochs", type=int, default=50)
    demo.add_argument("--batch-size", type=int, default=200)
    demo.add_argument("--seed", type=int, default=0)
    cli_diagnose.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "diagnose":
        return cli_diagnose.run(args)
    if args.command == "demo":
        if args.epochs < 1 or args.batch_size < 1:
            parser.error("--epochs and --batch-size must be >= 1")
        run_demo(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
