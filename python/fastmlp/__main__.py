"""The ``fastmlp`` command (also ``python -m fastmlp``):

  demo      the package's main job on the data it ships with
  train     train a classifier or regressor on a CSV/NPZ table and save it (cli_train)
  predict   predictions of a saved model as CSV (cli_use)
  evaluate  scores of a saved model on labelled data (cli_use)
  info      what a saved model is and how it was trained (cli_use)
  diagnose  why a network does not learn (cli_diagnose)
  bench     training-step speed, fastmlp vs a NumPy loop (cli_bench)

Every command exits 0 on success and 2 on unusable input, with one ``fastmlp <command>: error:``
line on stderr.
"""
from __future__ import annotations

import argparse
import os
import sys

from . import cli_bench, cli_diagnose, cli_train, cli_use
from .demo import run_demo


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fastmlp")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train a digits classifier and report test accuracy")
    demo.add_argument("--epochs", type=int, default=50)
    demo.add_argument("--batch-size", type=int, default=200)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default="fastmlp-digits.npz",
                      help="where to save the trained model (default fastmlp-digits.npz; '' "
                           "to not save)")
    cli_train.add_parser(sub)
    cli_use.add_parsers(sub)
    cli_diagnose.add_parser(sub)
    cli_bench.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "diagnose":
        return cli_diagnose.run(args)
    if args.command == "demo":
        if args.epochs < 1 or args.batch_size < 1:
            parser.error("--epochs and --batch-size must be >= 1")
        run_demo(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                 save_to=args.out or None)
        return 0
    try:
        return args.run(args)
    except BrokenPipeError:
        # The reader went away (`fastmlp predict ... | head`): not an error worth a traceback.
        # Point stdout at devnull so that Python's exit-time flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
