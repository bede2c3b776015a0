"""Stress of the engine's threading: short trainings at random thread counts, bits against 1 thread.

    PYTHONPATH=python python bench/experiments/stress_threads.py SECONDS [SEED] [--delays]

Each training is 2 epochs of 600 random rows at batch 200 through fastmlp.train, followed by a
predict. Its params, batch-norm statistics and predictions must equal, bit for bit, those of
the same training on 1 thread (README, "Threads and reproducibility"). The thread counts
include more threads than cores, so helpers get preempted mid-job. --delays turns on the pool's
yields at its claim's race points for every job (_core._set_pool_delays), which makes rare
interleavings common. This found the pool race of bench/NOTES.md (2026-12-07, sixth part):
3 of 50,234 trainings differed before the fix.
"""
import faulthandler
import sys
import time

import numpy as np

import fastmlp
from fastmlp import _core

CONFIGS = [  # sizes, MLP options, train options
    ([784, 300, 100, 10], dict(batchnorm=True), dict()),
    ([784, 300, 100, 10], dict(dropout=0.2), dict()),
    ([64, 300, 100, 10], dict(batchnorm=True, activation="elu"),
     dict(optimizer="rmsprop", l2=1e-4, validation_split=0.2)),
    ([257, 300, 17, 3], dict(activation="leaky_relu", batchnorm=True),
     dict(optimizer="sgd", momentum=0.9, nesterov=True, clip_value=0.5)),
    ([64] * 9 + [10], dict(), dict(optimizer="adamw", weight_decay=1e-2)),
    ([512, 256, 10], dict(batchnorm=True, dropout=0.1), dict(optimizer="adagrad", l1=1e-5)),
    ([33, 129, 129, 3], dict(activation="selu"), dict(max_norm=2.0)),
]
THREADS = [2, 2, 3, 4, 8]


def data(i):
    rng = np.random.default_rng(i)
    sizes = CONFIGS[i][0]
    return (rng.standard_normal((600, sizes[0]), dtype=np.float32),
            rng.integers(0, sizes[-1], 600))


def train(i, threads, X, y):
    sizes, mlp_kw, train_kw = CONFIGS[i]
    fastmlp.set_num_threads(threads)
    model = fastmlp.MLP(sizes, seed=0, **mlp_kw)
    clip = {} if "clip_value" in train_kw else {"clip_norm": 1.0}
    fastmlp.train(model, X, y, loss="cross_entropy", batch_size=200, epochs=2, lr=1e-3,
                  verbose=0, seed=0, **clip, **train_kw)
    return np.concatenate([model._params, model._stats, model.predict(X[:300]).ravel()])


def main():
    faulthandler.enable()
    args = [a for a in sys.argv[1:] if a != "--delays"]
    seconds, seed = float(args[0]), int(args[1]) if len(args) > 1 else 0
    sets = [data(i) for i in range(len(CONFIGS))]
    base = [train(i, 1, *sets[i]) for i in range(len(CONFIGS))]
    _core._set_pool_delays("--delays" in sys.argv)
    rng = np.random.default_rng(seed)
    t0, runs, bad = time.time(), 0, 0
    while time.time() - t0 < seconds:
        i, threads = int(rng.integers(len(CONFIGS))), int(rng.choice(THREADS))
        runs += 1
        if not np.array_equal(train(i, threads, *sets[i]), base[i]):
            bad += 1
            print(f"bits differ: config {i} ({CONFIGS[i][0]}), {threads} threads", flush=True)
    _core._set_pool_delays(False)
    print(f"{runs} trainings, {bad} with other bits than on 1 thread")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
