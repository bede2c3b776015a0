"""The main job: a 64-300-100-10 ReLU network trained with Adam on the shipped digits, every
batch run in C++ by fastmlp.train, then evaluated on the held-out test rows."""
from __future__ import annotations

import sys
import time

import numpy as np

from . import cpu_info
from .datasets import load_digits
from .diagnostics import diagnose
from .model import MLP
from .training import train


def run_demo(epochs: int = 50, batch_size: int = 200, seed: int = 0, lr: float = 1e-3,
             verbose: int = 1, out=sys.stdout) -> float:
    """Trains on the shipped digits, prints progress and test accuracy; returns the accuracy."""
    X_train, y_train, X_test, y_test = load_digits(seed=seed)
    # Standardise with the training statistics only.
    mean, std = X_train.mean(0), X_train.std(0) + np.float32(1e-6)
    X_train, X_test = (X_train - mean) / std, (X_test - mean) / std
    model = MLP([64, 300, 100, 10], activation="relu", seed=seed)
    info = cpu_info()
    print(f"fastmlp demo: digits {X_train.shape[0]} train / {X_test.shape[0]} test, network "
          f"{'-'.join(map(str, model.sizes))} ({model.count_params()} parameters, He init), "
          f"Adam lr={lr}, batch {batch_size}, {info['isa']} x {info['num_threads']} threads",
          file=out, flush=True)
    t0 = time.perf_counter()
    history = train(model, X_train, y_train, loss="cross_entropy", optimizer="adam", lr=lr,
                    batch_size=batch_size, epochs=epochs, seed=seed, verbose=verbose)
    elapsed = time.perf_counter() - t0
    accuracy = float((model.predict_classes(X_test) == y_test).mean())
    print(f"final training loss {history.history['loss'][-1]:.4f}, test accuracy "
          f"{accuracy:.4f} ({elapsed:.2f} s for {len(history.epoch)} epochs, "
          f"{len(history.epoch) * history.params['steps']} steps)", file=out)
    # Gradient health of the trained network (no probe run: a few backward passes).
    report = diagnose(model, X_train, y_train, loss="cross_entropy", batch_size=batch_size,
                      probe_steps=0, seed=seed)
    print(report.summary(), file=out)
    return accuracy
