"""Greedy layer-wise unsupervised pretraining: stacked (denoising) autoencoders.

Hinton & Salakhutdinov 2006, Bengio et al. 2007, Vincent et al. 2008 (Goodfellow et al. 2016,
section 15.1): each hidden layer in turn learns to reconstruct its own input, the codes of the
layers below computed on unlabelled X, before the whole network is fine-tuned with labels.
Layer k's autoencoder is [n_in, n_out, n_in]: its encoder is layer k itself (same activation,
alpha and batch norm), its decoder a throwaway linear layer. The output layer is never touched.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import _validate as v
from .model import MLP, Layer, _positive_int
from .schedules import as_schedule
from .training import OPTIMIZERS, _choice, train


def pretrain_autoencoder(model: MLP, X, *, layers=None, epochs: int = 10, lr=1e-3,
                         batch_size: int = 32, optimizer: str = "adam", noise: float = 0.0,
                         seed=None, verbose: int = 0) -> list:
    """Pretrains model's hidden layers greedily as autoencoders on X (n, n_inputs), in place,
    and returns one History (fastmlp.train's, loss = reconstruction MSE) per layer, in order;
    history.params["layer"] is the layer's index, history.autoencoder the trained autoencoder.

    layers: indices of the hidden layers to pretrain, strictly increasing (each layer's input
        is the code of the layers below, so a lower layer must be pretrained first); None =
        every trainable hidden layer. Frozen layers (trainable=False) are rejected if listed:
        they are meant to stay fixed, but they still compute the codes of the layers above.
    noise: std of the Gaussian corruption of each autoencoder's input (denoising autoencoder);
        the target stays the clean input. 0 = a plain autoencoder.
    epochs, lr, batch_size, optimizer, verbose: as in fastmlp.train, per layer.
    seed: seeds the decoders' init, the corruption and the shuffling (None = nondeterministic).
    """
    if not isinstance(model, MLP):
        raise TypeError(f"model: expected a fastmlp.MLP, got {type(model).__name__}")
    X = model._input(X, "X")  # standardised as the model's own inputs are
    epochs = _positive_int(epochs, "epochs")
    batch_size = _positive_int(batch_size, "batch_size")
    noise = v.real(noise, "noise", low=0.0)
    # Checked here, not by the first train call, so a bad value fails before any layer changes.
    _choice(optimizer, "optimizer", OPTIMIZERS)
    as_schedule(lr)
    if verbose not in (0, 1, 2, True, False):
        raise ValueError(f"verbose: expected 0, 1 or 2, got {verbose!r}")
    indices = _hidden_layers(model, layers)

    rng = np.random.default_rng(seed)
    histories = []
    for k in indices:
        layer = model.layers[k]
        ae_seed, train_seed = (int(s) for s in rng.integers(0, 2 ** 63, size=2))
        # Inference mode: the codes the layers below give once training is over.
        H = X if k == 0 else model._network(0, k).predict(X, 1024, False)
        # One corruption per layer, not per epoch: fastmlp.train keeps its optimizer state
        # only within a call, so re-corrupting each epoch would restart Adam's moments.
        H_in = H if noise == 0.0 else \
            (H + rng.standard_normal(H.shape, dtype=np.float32) * np.float32(noise))
        ae = _autoencoder(model, layer, ae_seed)
        ae.layers[0].copy_from(layer)
        h = train(ae, H_in, H, loss="mse", optimizer=optimizer, lr=lr, batch_size=batch_size,
                  epochs=epochs, seed=train_seed, verbose=verbose)
        layer.copy_from(ae.layers[0])
        h.params["layer"] = k
        h.autoencoder = ae  # the trained decoder too, to inspect reconstructions
        histories.append(h)
    return histories


def _hidden_layers(model: MLP, layers) -> list[int]:
    """The validated, strictly increasing hidden-layer indices to pretrain."""
    n_hidden = len(model.layers) - 1
    if layers is None:
        indices = [k for k in range(n_hidden) if model.layers[k].trainable]
        if not indices:
            raise ValueError("model: no trainable hidden layer to pretrain (the output layer "
                             "is never pretrained; unfreeze a hidden layer or add one)")
        return indices
    if isinstance(layers, (numbers.Integral, str)) or not hasattr(layers, "__iter__"):
        raise TypeError(f"layers: expected a list of hidden-layer indices, got {layers!r}; "
                        f"for one layer write [{layers!r}]")
    indices = list(layers)
    if not indices:
        raise ValueError("layers: expected at least one hidden-layer index, got an empty list; "
                         "pass None for every trainable hidden layer")
    for k in indices:
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral):
            raise TypeError(f"layers: expected integer layer indices, got {k!r}")
        if k == n_hidden:
            raise ValueError(f"layers: {k} is the output layer, which is never pretrained (it "
                             f"is learnt by fine-tuning); hidden layers are 0..{n_hidden - 1}")
        if not 0 <= k < n_hidden:
            raise ValueError(f"layers: index {k} is not a hidden layer of this model; expected "
                             f"indices in [0, {n_hidden})" if n_hidden else
                             f"layers: this model has no hidden layer (index {k} given)")
        if not model.layers[k].trainable:
            raise ValueError(f"layers: layer {k} is frozen (trainable=False) and stays fixed; "
                             f"leave it out of layers, or set model.layers[{k}].trainable = True")
    if any(b <= a for a, b in zip(indices, indices[1:])):
        raise ValueError(f"layers: expected strictly increasing indices (a layer's input comes "
                         f"from the layers below, so they are pretrained bottom-up), got "
                         f"{indices}")
    return [int(k) for k in indices]


def _autoencoder(model: MLP, layer: Layer, seed: int) -> MLP:
    """[n_in, n_out, n_in]: layer's twin as the encoder, a linear decoder on top."""
    alpha = layer.alpha if layer.activation in v.DEFAULT_ALPHA else None
    return MLP([layer.n_in, layer.n_out, layer.n_in], activation=layer.activation,
               output_activation="identity", alpha=alpha, batchnorm=[layer.batchnorm, False],
               bn_momentum=model.bn_momentum, bn_eps=model.bn_eps, seed=seed)
