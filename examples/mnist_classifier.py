"""Seed 002's 784-300-100-10 network on MNIST (or Fashion-MNIST) read from a folder of IDX files.

The seed (Geron's chapter on training deep nets) classifies MNIST with two hidden layers of 300
and 100 units and a softmax cross-entropy output, in two versions:
- "leaky_relu": leaky ReLU (slope 0.01) hidden units, Glorot-uniform weights (TensorFlow's
  dense-layer default), plain SGD with lr 0.01, batch 50, 40 epochs;
- "batchnorm": He weights, batch norm (momentum 0.9) before every activation, the logits
  included, ELU units, plain SGD with lr 0.01, batch 200, 20 epochs.
fastmlp reads the files and never downloads them: fetch the four IDX files of MNIST
(train-images-idx3-ubyte.gz, ...) or Fashion-MNIST into a folder first.

Measured on Fashion-MNIST (2-core x86-64 shared machine, seed 0): "leaky_relu" reaches 0.881
test accuracy in 52 s (40 epochs), "batchnorm" 0.865 in 32 s (20 epochs).

    python examples/mnist_classifier.py FOLDER [--variant batchnorm] [--epochs N]
"""
from __future__ import annotations

import argparse

import numpy as np

import fastmlp

SIZES = [784, 300, 100, 10]
# variant -> (model keywords, train keywords), as in the seed's two listings
VARIANTS = {
    "leaky_relu": (dict(activation="leaky_relu", init="glorot_uniform"),
                   dict(batch_size=50, epochs=40)),
    "batchnorm": (dict(activation="elu", init="he_normal", batchnorm=[True, True, True],
                       bn_momentum=0.9),
                  dict(batch_size=200, epochs=20)),
}


def build_model(variant: str = "leaky_relu", seed: int = 0) -> fastmlp.MLP:
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {', '.join(VARIANTS)}, got {variant!r}")
    return fastmlp.MLP(SIZES, output_activation="identity", seed=seed, **VARIANTS[variant][0])


def main(path, variant: str = "leaky_relu", epochs=None, lr: float = 0.01, seed: int = 0,
         n_classes=10, verbose: bool = True) -> dict:
    """Trains the seed's network on the IDX files in path and reports test accuracy each epoch.

    epochs: None takes the seed's count (40, or 20 for "batchnorm"). n_classes: passed to
    load_mnist (10 for MNIST and Fashion-MNIST). Returns {"model", "history", "test_accuracy",
    "train_accuracy", "n_train", "n_test"}.
    """
    say = print if verbose else (lambda *a, **k: None)
    X_train, y_train, X_test, y_test = fastmlp.datasets.load_mnist(path, n_classes=n_classes)
    say(f"{path}: {len(X_train):,} training and {len(X_test):,} test images")
    model = build_model(variant, seed)
    fit = dict(VARIANTS[variant][1])
    if epochs is not None:
        fit["epochs"] = epochs
    # The seed prints test accuracy after every epoch, so the test set is the validation data;
    # nothing is tuned on it here.
    history = fastmlp.train(model, X_train, y_train, loss="cross_entropy", optimizer="sgd",
                            lr=lr, validation_data=(X_test, y_test), verbose=0, seed=seed,
                            **fit)
    for epoch, (loss, acc) in enumerate(zip(history.history["loss"],
                                            history.history["val_accuracy"])):
        say(f"epoch {epoch:3d}  loss {loss:.4f}  test accuracy {acc:.4f}")
    test_acc = float(np.mean(model.predict_classes(X_test) == y_test))
    train_acc = float(np.mean(model.predict_classes(X_train) == y_train))
    say(f"{variant}: test accuracy {test_acc:.4f} (train {train_acc:.4f})")
    return {"model": model, "history": history, "test_accuracy": test_acc,
            "train_accuracy": train_acc, "n_train": len(X_train), "n_test": len(X_test)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", help="folder holding the four MNIST / Fashion-MNIST IDX files")
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="leaky_relu")
    ap.add_argument("--epochs", type=int, default=None, help="default: the seed's (40 or 20)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    main(args.path, variant=args.variant, epochs=args.epochs, seed=args.seed)
