"""The main job: a 64-300-100-10 ReLU network trained with Adam on the shipped digits, every
batch run in C++ by fastmlp.train, then evaluated on the held-out test rows."""
from __future__ import annotations

import sys
import time

from . import cpu_info
from .datasets import DIGITS_FEATURES, load_digits
from .diagnostics import diagnose
from .io import save
from .model import MLP
from .training import train


def run_demo(epochs: int = 50, batch_size: int = 200, seed: int = 0, lr: float = 1e-3,
             verbose: int = 1, out=None, save_to=None) -> float:
    """Trains on the shipped digits, prints progress and test accuracy, and saves the model to
    save_to (a path; None = not saved); returns the test accuracy."""
    out = sys.stdout if out is None else out  # looked up per call (tests capture stdout)
    X_train, y_train, X_test, y_test = load_digits(seed=seed)
    model = MLP([64, 300, 100, 10], activation="relu", seed=seed)
    # Standardised with the training rows' statistics, which the model keeps for predict.
    model.fit_input_scaling(X_train)
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
    if save_to is not None:
        model.metadata = {"task": "classification", "loss": "cross_entropy",
                          "feature_names": DIGITS_FEATURES,
                          "target": ["digit"], "classes": list(range(10)),
                          "training": {"data": "digits", "epochs": epochs,
                                       "batch_size": batch_size, "lr": lr, "seed": seed},
                          "metrics": {"test": {"accuracy": accuracy}}}
        save(model, save_to)
        print(f"saved the model to {save_to} (try: fastmlp info {save_to}; fastmlp evaluate "
              f"{save_to} digits)", file=out)
    return accuracy
