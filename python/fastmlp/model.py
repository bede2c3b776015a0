"""fastmlp.MLP: a multilayer perceptron whose parameters live in one flat float32 buffer.

A layer is dense -> [batch norm] -> activation -> [dropout] (batch norm before the activation,
as in the seeds and Ioffe & Szegedy 2015). Every layer's W (in, out), b (out,), and, with batch
norm, gamma, beta (trainable) and running_mean, running_var (statistics) are NumPy views into
the model's two buffers, so the user reads and writes them directly, the optimizer updates all
of them in one fused pass, and snapshots are one copy.

Frozen layers (``layer.trainable = False``) are fixed feature extractors: they are not updated,
no backward pass runs below the lowest trainable layer, and they always run in inference mode
(batch norm with its running statistics, no dropout), as Keras does for a frozen BatchNorm.
"""
from __future__ import annotations

import numbers
import os
from collections.abc import Iterable

import numpy as np

from . import _core
from . import _validate as v
from ._moments import standardisation
from .backends import check_device, require_cuda
from .initializers import canonical_init, default_init, initialize

OUTPUT_ACTIVATIONS = v.ACTIVATIONS + ("softmax",)
_ALIGN = 16  # tensors start on 64-byte boundaries inside the flat buffers


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def _physical_memory() -> int | None:
    """Bytes of RAM, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _size(nbytes: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if nbytes < 1024:
            break
        nbytes /= 1024
    else:
        unit = "EiB"
    return f"{nbytes:.3g} {unit}"


def _allocate(n_floats: int, sizes: list) -> np.ndarray:
    """A zeroed float32 buffer of n_floats, or MemoryError naming `sizes`.

    The model's peak memory while it is built (the buffer, plus ~16 bytes per weight of the
    largest layer while the initialiser draws it in float64) is checked against the machine's
    RAM first: with Linux overcommit, np.zeros of more memory than exists can succeed (its pages
    are not touched yet), and writing the weights would then get the process killed instead of
    raising."""
    nbytes = 4 * n_floats
    peak = nbytes + 16 * max(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    ram = _physical_memory()
    if ram is not None and peak > ram:
        raise MemoryError(f"sizes: {sizes} needs {n_floats:.3g} float32 parameters "
                          f"({_size(nbytes)}, about {_size(peak)} while initialised), more than "
                          f"this machine's {_size(ram)} of memory; use smaller layers")
    try:
        return np.zeros(n_floats, np.float32)
    except (MemoryError, ValueError) as e:  # ValueError: beyond what NumPy can address
        raise MemoryError(f"sizes: {sizes} needs {n_floats:.3g} float32 parameters "
                          f"({_size(nbytes)}), which cannot be allocated ({e}); use smaller "
                          f"layers") from None


def _real_array(value, name: str) -> np.ndarray:
    """value as an array of real numbers (float, int or bool dtype), else TypeError naming it:
    assigning strings or complex numbers into a float32 view would fail obscurely or silently
    drop the imaginary part."""
    try:
        arr = np.asarray(value)
    except Exception as e:  # ragged lists and the like
        raise TypeError(f"{name}: expected an array of real numbers ({e})") from None
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name}: expected real numbers (a float or integer array), got dtype "
                        f"{arr.dtype}")
    return arr


class Layer:
    """One dense layer of an MLP. Arrays are views into the model's buffers: assign with
    ``layer.W[...] = values`` or ``layer.W = values`` (copied in, shape checked)."""

    _ARRAYS = ("W", "b", "gamma", "beta", "running_mean", "running_var")
    _CHECKED = ("activation", "alpha", "dropout")  # settings checked by __setattr__
    # Set once: W, b and the batch-norm arrays sit where these say, so a later change would
    # make the network read the wrong parts of the buffers.
    _FIXED = ("n_in", "n_out", "batchnorm", "index")

    def __init__(self, model: "MLP", index: int, n_in: int, n_out: int, activation: str,
                 alpha: float, batchnorm: bool, dropout: float, init: str):
        self._model = model
        self.index = index
        self.n_in, self.n_out = n_in, n_out
        self.activation = activation
        self.alpha = alpha
        self.batchnorm = batchnorm
        self.dropout = dropout
        self.init = init
        self.trainable = True
        self._offsets: dict[str, int] = {}

    def _view(self, name: str):
        off = self._offsets.get(name)
        if off is None:
            return None
        if name == "W":
            n = self.n_in * self.n_out
            return self._model._params[off:off + n].reshape(self.n_in, self.n_out)
        buf = self._model._stats if name.startswith("running") else self._model._params
        return buf[off:off + self.n_out]

    def __getattr__(self, name):
        if name in Layer._ARRAYS:
            return self._view(name)
        raise AttributeError(name)

    def __setattr__(self, name, value):
        if name in Layer._ARRAYS:
            view = self._view(name)
            if view is None:
                raise AttributeError(
                    f"b: layer {self.index} has batch norm, whose beta replaces the bias; set "
                    f"layer.beta" if name == "b" else
                    f"{name}: layer {self.index} has no batch norm")
            arr = _real_array(value, name)
            if arr.shape != view.shape:
                raise ValueError(f"{name}: expected shape {view.shape}, got {arr.shape}")
            if not np.all(np.isfinite(v.to_float32(arr))):
                raise ValueError(f"{name}: expected finite values within the float32 range")
            view[...] = arr
            return
        if name == "trainable" and not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"trainable: expected True or False, got {value!r}")
        if name in Layer._FIXED and name in self.__dict__:
            raise AttributeError(f"layers[{self.index}].{name}: fixed when the model is built "
                                 f"(it sets the layout of the parameters); build a new MLP")
        # What the engine reads is checked when it is set, so a bad value never reaches C++.
        where = f"layers[{self.index}].{name}" if name in Layer._CHECKED else name
        if name == "activation":
            allowed = OUTPUT_ACTIVATIONS if self.index == len(self._model.sizes) - 2 \
                else v.ACTIVATIONS
            if not isinstance(value, str) or value not in allowed:
                raise ValueError(f"{where}: expected one of {', '.join(allowed)}, got "
                                 f"{value!r}")
            if allowed is OUTPUT_ACTIVATIONS and "layers" in self._model.__dict__:
                # The output layer's activation is the model's output_activation, which
                # predict reads: one setting, whichever name sets it.
                object.__setattr__(self._model, "output_activation", value)
            if "activation" in self.__dict__ and value != self.activation:
                # A new activation starts from its own alpha (leaky_relu 0.01, elu 1.0, none
                # for the rest): leaky_relu's 0.01 kept as elu's alpha would shrink its
                # negative side 100-fold. Set alpha after the activation to change it.
                object.__setattr__(self, "alpha", v.DEFAULT_ALPHA.get(value, 0.0))
        elif name == "alpha":
            value = v.real(value, where, low=0.0, f32=True)
            act = self.__dict__.get("activation")
            if act is not None and act not in v.DEFAULT_ALPHA and value != 0.0:
                raise ValueError(f"{where}: activation {act!r} takes no alpha, got {value!r}; "
                                 f"alpha is for {' and '.join(v.DEFAULT_ALPHA)}")
        elif name == "dropout":
            value = _dropout_rate(value, where)
        object.__setattr__(self, name, value)

    def copy_from(self, src: "Layer") -> None:
        """Copies src's arrays (W, then b or gamma, beta and the running statistics) into
        this layer's storage; the layers must have the same shape and batch-norm setting."""
        for name in Layer._ARRAYS:
            view = src._view(name)
            if view is not None:
                setattr(self, name, view)

    @property
    def n_params(self) -> int:
        """Trainable parameters: W, then b, or gamma and beta with batch norm (no bias)."""
        return self.n_in * self.n_out + self.n_out * (2 if self.batchnorm else 1)

    def __repr__(self) -> str:
        extra = (", batchnorm" if self.batchnorm else "") + \
            (f", dropout={self.dropout}" if self.dropout else "") + \
            ("" if self.trainable else ", frozen")
        return f"Layer({self.n_in} -> {self.n_out}, {self.activation}{extra})"


def _per_layer(value, name: str, n: int, what: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name}: expected one entry per {what} ({n}), got {len(value)}")
        return list(value)
    return [value] * n


class MLP:
    """A multilayer perceptron.

    sizes: [n_inputs, hidden..., n_outputs] (at least two entries).
    activation: hidden layers' activation, or a list with one per hidden layer.
    output_activation: "identity" (default), "softmax", "sigmoid" or any activation. With
        loss="cross_entropy" the softmax (and with "binary_cross_entropy" the sigmoid) is fused
        into the loss, so those are the natural choices for classifiers.
    alpha: leaky_relu / elu slope (None = 0.01 / 1.0), or a list per hidden layer.
    init: initialiser name per layer (scalar or list of len(sizes) - 1), or a callable
        init(fan_in, fan_out, rng) -> (fan_in, fan_out) array; None picks the default for the
        layer's activation: He for the ReLU family, LeCun for SELU, Glorot otherwise.
    bias_init: constant initial bias (scalar or per layer). Batch-norm layers have no bias
        (layer.b is None): the normalisation would subtract it again; beta is their shift.
    batchnorm: True = batch norm on every hidden layer; a list of len(sizes) - 1 chooses per
        layer, including the output layer (the seeds normalise the logits too).
    dropout: rate after each hidden layer's activation (scalar or list per hidden layer).
    bn_momentum, bn_eps: batch-norm running-average momentum (Keras convention) and epsilon.
    seed: seeds the initialisers (None = nondeterministic).
    """

    def __setattr__(self, name, value):
        # Settings the engine reads, checked whenever they are set (a bn_eps of None reached
        # C++ as "Unable to cast"; a bn_momentum of 5 or an unknown output activation was
        # taken silently).
        if name == "output_activation":
            if not isinstance(value, str) or value not in OUTPUT_ACTIVATIONS:
                raise ValueError(f"output_activation: expected one of "
                                 f"{', '.join(OUTPUT_ACTIVATIONS)}, got {value!r}")
            if "layers" in self.__dict__ and self.layers:  # the output layer's activation too
                object.__setattr__(self.layers[-1], "activation", value)
        elif name == "bn_momentum":
            value = v.real(value, "bn_momentum", low=0.0, high=1.0)
        elif name == "bn_eps":
            value = v.real(value, "bn_eps", low=0.0, low_open=True, f32=True)
        object.__setattr__(self, name, value)

    def __init__(self, sizes, activation="relu", output_activation="identity", init=None,
                 bias_init=0.0, batchnorm=False, dropout=0.0, seed=None, *, alpha=None,
                 bn_momentum=0.9, bn_eps=1e-5):
        if not isinstance(sizes, (list, tuple)) or len(sizes) < 2:
            raise ValueError(f"sizes: expected a list [n_inputs, hidden..., n_outputs] of at "
                             f"least two integers, got {sizes!r}")
        for i, s in enumerate(sizes):
            if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1:
                raise ValueError(f"sizes[{i}]: expected an integer >= 1, got {s!r}")
        self.sizes = [int(s) for s in sizes]
        seed = v.seed(seed)
        n_layers = len(sizes) - 1
        n_hidden = n_layers - 1
        self.output_activation = output_activation  # checked by __setattr__, as the two below
        acts = _per_layer(activation, "activation", n_hidden, "hidden layer")
        alphas = _per_layer(alpha, "alpha", n_hidden, "hidden layer")
        drops = _per_layer(dropout, "dropout", n_hidden, "hidden layer") + [0.0]
        if isinstance(batchnorm, (list, tuple)):
            bns = _per_layer(batchnorm, "batchnorm", n_layers, "layer")
        else:
            bns = [batchnorm] * n_hidden + [False]
        inits = _per_layer(init, "init", n_layers, "layer")
        biases = _per_layer(bias_init, "bias_init", n_layers, "layer")
        self.bn_momentum = bn_momentum
        self.bn_eps = bn_eps

        self.layers: list[Layer] = []
        p_size = s_size = 0
        for i in range(n_layers):
            if i < n_hidden:
                act, a = v.activation(acts[i], alphas[i])
            else:
                act = output_activation
                a = v.DEFAULT_ALPHA.get(act, 0.0)
            d = _dropout_rate(drops[i], f"dropout[{i}]" if isinstance(dropout, (list, tuple))
                              else "dropout")
            bn = bns[i]
            if not isinstance(bn, (bool, np.bool_)):
                raise TypeError(f"batchnorm: expected True/False (or a list of them), got {bn!r}")
            argname = f"init[{i}]" if isinstance(init, (list, tuple)) else "init"
            if inits[i] is None:
                ini = default_init("identity" if act == "softmax" else act)
            elif callable(inits[i]):  # init(fan_in, fan_out, rng) -> array, checked when drawn
                ini = inits[i]
            else:
                ini = canonical_init(inits[i], argname=argname)
            layer = Layer(self, i, self.sizes[i], self.sizes[i + 1], act, a, bool(bn), d, ini)
            offs = {}
            # A batch-norm layer has no bias: normalising subtracts it again (beta shifts).
            tensors = (("W", layer.n_in * layer.n_out),) + (
                (("gamma", layer.n_out), ("beta", layer.n_out)) if bn else (("b", layer.n_out),))
            for name, n in tensors:
                offs[name] = p_size
                p_size += _align(n)
            if bn:
                for name in ("running_mean", "running_var"):
                    offs[name] = s_size
                    s_size += _align(layer.n_out)
            layer._offsets = offs
            self.layers.append(layer)
        self._params = _allocate(max(p_size, 1), self.sizes)
        self._stats = _allocate(max(s_size, 1), self.sizes)
        self._input_mean = self._input_scale = None
        # JSON-serialisable facts about the model (task, feature names, classes, ...), saved
        # and loaded with it; fastmlp itself never reads them to compute anything.
        self.metadata: dict = {}

        rng = np.random.default_rng(seed)
        for layer, b0 in zip(self.layers, biases):
            layer.W = initialize(layer.init, layer.n_in, layer.n_out, rng,
                                 argname=f"init[{layer.index}]")
            if not layer.batchnorm:
                layer.b[...] = v.real(b0, "bias_init", f32=True)
            else:
                layer.gamma[...] = 1.0
                layer.running_var[...] = 1.0

    # ---- introspection -------------------------------------------------------------------
    @property
    def n_inputs(self) -> int:
        """Features per input row: sizes[0]."""
        return self.sizes[0]

    @property
    def n_outputs(self) -> int:
        """Outputs per row: sizes[-1]."""
        return self.sizes[-1]

    def count_params(self) -> int:
        """Number of parameters (weights, biases, batch-norm gamma/beta), frozen included."""
        return sum(l.n_params for l in self.layers)

    def __repr__(self) -> str:
        return "MLP(" + ", ".join(repr(l) for l in self.layers) + ")"

    def summary(self) -> str:
        """A table of the layers (shape, activation, batch norm, dropout, trainable, params)."""
        rows = [f"{'layer':<6}{'shape':<14}{'activation':<12}{'bn':<4}{'dropout':<9}"
                f"{'trainable':<10}{'params':>8}"]
        for l in self.layers:
            n = l.n_params
            rows.append(f"{l.index:<6}{f'{l.n_in}x{l.n_out}':<14}{l.activation:<12}"
                        f"{'yes' if l.batchnorm else '':<4}{l.dropout or '':<9}"
                        f"{str(l.trainable):<10}{n:>8}")
        rows.append(f"total trainable parameters: "
                    f"{sum(l.n_params for l in self.layers if l.trainable)}")
        return "\n".join(rows)

    # ---- weights as arrays ---------------------------------------------------------------
    def get_weights(self) -> list[np.ndarray]:
        """Copies of every layer's arrays, in order: W, b, or for batch-norm layers (which
        have no bias) W, gamma, beta, running_mean, running_var (the Keras order)."""
        out = []
        for l in self.layers:
            for name in Layer._ARRAYS:
                a = l._view(name)
                if a is not None:
                    out.append(a.copy())
        return out

    def set_weights(self, weights) -> None:
        """Copies arrays in get_weights() order and shapes into the model; nothing is changed
        unless every array has the right shape and finite real values (as ``layer.W = ...``)."""
        views = [(l, name, l._view(name)) for l in self.layers for name in Layer._ARRAYS
                 if l._view(name) is not None]
        if not isinstance(weights, (list, tuple)):
            raise TypeError(f"weights: expected a list of {len(views)} arrays (see get_weights), "
                            f"got {type(weights).__name__}")
        if len(weights) != len(views):
            raise ValueError(f"weights: expected {len(views)} arrays (see get_weights), "
                             f"got {len(weights)}")
        checked = []
        for i, ((l, name, view), w) in enumerate(zip(views, weights)):
            w = _real_array(w, f"weights[{i}] (layer {l.index} {name})")
            if w.shape != view.shape:
                raise ValueError(f"weights[{i}]: layer {l.index} {name} expects shape "
                                 f"{view.shape}, got {w.shape}")
            if not np.isfinite(v.to_float32(w)).all():
                raise ValueError(f"weights[{i}]: layer {l.index} {name} has NaN, Inf or values "
                                 f"beyond the float32 range")
            checked.append(w)
        for (_, _, view), w in zip(views, checked):
            view[...] = w

    def __setstate__(self, state: dict) -> None:
        """Unpickling: the flat buffers become private, writable, aligned copies (joblib and
        scikit-learn may hand back read-only memory maps; the engine updates them in place)."""
        self.__dict__.update(state)
        for name in ("_params", "_stats"):
            setattr(self, name, np.array(getattr(self, name), dtype=np.float32, copy=True))

    def _snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        return self._params.copy(), self._stats.copy()

    def _restore(self, snap) -> None:
        self._params[...] = snap[0]
        self._stats[...] = snap[1]

    # ---- engine ---------------------------------------------------------------------------
    def _layer_specs(self, start: int = 0, stop: int | None = None,
                     fused_output: bool = False) -> list[dict]:
        """Layer descriptions for _core.Network. fused_output: the output activation is part
        of the loss (softmax / sigmoid), so the engine's last layer is linear."""
        layers = self.layers[start:stop]
        specs = []
        for l in layers:
            act = l.activation
            if act == "softmax" or (fused_output and l is self.layers[-1]):
                act = "identity"
            o = l._offsets
            specs.append(dict(
                **{"in": l.n_in, "out": l.n_out}, activation=act, alpha=float(l.alpha),
                batchnorm=l.batchnorm, bn_momentum=self.bn_momentum, bn_eps=self.bn_eps,
                dropout=float(l.dropout), trainable=bool(l.trainable), index=l.index,
                w=o["W"], b=o.get("b", -1),
                gamma=o.get("gamma", -1), beta=o.get("beta", -1),
                running_mean=o.get("running_mean", -1), running_var=o.get("running_var", -1)))
        return specs

    def _network(self, start: int = 0, stop: int | None = None, fused_output: bool = False,
                 device: str = "cpu"):
        """The engine's network over this model's buffers: _core's, or with device="cuda"
        _cuda's (a device copy of the weights, at the precision of fastmlp.cuda)."""
        specs = self._layer_specs(start, stop, fused_output)
        if device == "cuda":
            from .cuda import get_precision
            return require_cuda("device='cuda'").Network(specs, self._params, self._stats,
                                                         get_precision())
        return _core.Network(specs, self._params, self._stats)

    # ---- input standardisation -----------------------------------------------------------
    @property
    def input_mean(self):
        """None, or (n_inputs,) float32: subtracted from X before the first layer."""
        return self._input_mean

    @input_mean.setter
    def input_mean(self, value):
        self._input_mean = self._input_vector(value, "input_mean", positive=False)

    @property
    def input_scale(self):
        """None, or (n_inputs,) float32 > 0: X is divided by it (after input_mean)."""
        return self._input_scale

    @input_scale.setter
    def input_scale(self, value):
        self._input_scale = self._input_vector(value, "input_scale", positive=True)

    def _input_vector(self, value, name: str, positive: bool):
        if value is None:
            return None
        a = np.asarray(value)
        if a.dtype.kind not in "fiu":
            raise TypeError(f"{name}: expected {self.n_inputs} numbers, got dtype {a.dtype}")
        a = v.to_float32(a).reshape(-1) if a.ndim <= 1 else a
        if a.shape != (self.n_inputs,):
            raise ValueError(f"{name}: expected shape ({self.n_inputs},) (one per input), got "
                             f"{np.shape(value)}")
        if not np.isfinite(a).all() or (positive and (a <= 0).any()):
            raise ValueError(f"{name}: expected finite values{' > 0' if positive else ''}")
        return a

    def fit_input_scaling(self, X) -> "MLP":
        """Sets input_mean and input_scale to X's per-feature mean and standard deviation
        (scale 1 where a feature is constant), so that every later predict, train, evaluate,
        diagnose and ONNX export standardises its inputs the same way. Returns self."""
        self.input_mean, self.input_scale = standardisation(as_features(X, "X", self.n_inputs))
        return self

    def _input(self, X, name: str = "X") -> np.ndarray:
        """X validated as float32 (n, n_inputs), then standardised with input_mean and
        input_scale when they are set (a new array; the caller's X is never modified)."""
        X = as_features(X, name, self.n_inputs)
        if self._input_mean is None and self._input_scale is None:
            return X
        with np.errstate(over="ignore", invalid="ignore"):  # checked just below
            if self._input_mean is not None:
                X = X - self._input_mean
            if self._input_scale is not None:
                X = X / self._input_scale
        X = np.ascontiguousarray(X, dtype=np.float32)
        if not np.isfinite(X).all():  # a huge value over a tiny scale
            raise ValueError(f"{name}: standardised with input_mean/input_scale, it "
                             f"overflows float32")
        return X

    # ---- inference ------------------------------------------------------------------------
    def predict(self, X, batch_size: int = 1024, device: str = "cpu") -> np.ndarray:
        """The network's outputs (after the output activation) for X (n, n_inputs), computed
        in C++ in inference mode (batch norm with running statistics, no dropout).
        device="cuda" runs it on the GPU (fastmlp.backends() must list "cuda"): networks
        whose layers are all at most 128 wide, without batch norm, run as one fused kernel."""
        X = self._input(X)
        bs = _batch_rows(batch_size, len(X))
        net = self._network(device=check_device(device))
        return net.predict(X, bs, self.output_activation == "softmax")

    def predict_proba(self, X, batch_size: int = 1024, device: str = "cpu") -> np.ndarray:
        """Class probabilities (n, n_classes) for models trained with a classification loss:
        the softmax of the outputs; a single sigmoid output, or a single logit (identity
        output trained with binary_cross_entropy), gives the two columns [1 - p, p]; several
        sigmoid outputs (multi-label) give one probability per label. A multi-label model
        should use output_activation="sigmoid" (identity outputs would get a softmax).
        device: "cpu" or "cuda", as in predict."""
        X = self._input(X)
        bs = _batch_rows(batch_size, len(X))
        # A softmax over one column is always 1: one logit can only mean a sigmoid.
        one_logit = self.output_activation == "identity" and self.n_outputs == 1
        sigmoid = self.output_activation == "sigmoid" or one_logit
        out = self._network(device=check_device(device)).predict(X, bs, not sigmoid)
        if one_logit:  # sigmoid of the logit, in a form where exp never overflows
            out = np.exp(-np.logaddexp(0, -out)).astype(np.float32)
        if sigmoid:
            return np.hstack([1 - out, out]) if out.shape[1] == 1 else out
        return out

    def predict_classes(self, X, batch_size: int = 1024) -> np.ndarray:
        """Predicted class per row (argmax of the outputs; threshold 0.5 for one sigmoid)."""
        p = self.predict_proba(X, batch_size)
        return p.argmax(axis=1)

    # ---- training (Keras-style shortcuts) ------------------------------------------------
    def fit(self, X, y, **kwargs):
        """fastmlp.train(self, X, y, **kwargs); returns the History."""
        from .training import train
        return train(self, X, y, **kwargs)

    def evaluate(self, X, y, **kwargs) -> dict:
        """fastmlp.evaluate(self, X, y, **kwargs): inference-mode loss (and accuracy)."""
        from .training import evaluate
        return evaluate(self, X, y, **kwargs)

    # ---- transfer learning --------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, model: "MLP", n_layers: int, new_sizes=(), *,
                        activation="relu", output_activation="identity", init=None,
                        freeze: bool | int = True, seed=None, **kwargs) -> "MLP":
        """A new model whose first n_layers are copies of model's (weights, batch-norm state,
        activations), topped by fresh layers of sizes new_sizes (seed 002's reuse recipe).

        freeze: True freezes every reused layer, an integer k freezes the first k, False none.
        Remaining keywords (batchnorm, dropout, bias_init, ...) describe the new layers only.
        """
        if not isinstance(model, MLP):
            raise TypeError(f"model: expected a fastmlp.MLP, got {type(model).__name__}")
        if isinstance(n_layers, bool) or not isinstance(n_layers, numbers.Integral) or \
                not 1 <= n_layers <= len(model.layers):
            raise ValueError(f"n_layers: expected an integer in [1, {len(model.layers)}], "
                             f"got {n_layers!r}")
        bad_freeze = (f"freeze: expected True, False or an integer in [0, {n_layers}] (how "
                      f"many of the reused layers to freeze), got {freeze!r}")
        if isinstance(freeze, (bool, np.bool_)):
            n_frozen = n_layers if freeze else 0
        elif isinstance(freeze, numbers.Integral):
            if not 0 <= freeze <= n_layers:
                raise ValueError(bad_freeze)
            n_frozen = int(freeze)
        else:
            raise TypeError(bad_freeze)
        reused = model.layers[:n_layers]
        if isinstance(new_sizes, (str, bytes)) or not isinstance(new_sizes, Iterable):
            raise TypeError(f"new_sizes: expected a list of the new layers' sizes (e.g. "
                            f"[{new_sizes!r}] for one output layer), got "
                            f"{type(new_sizes).__name__} {new_sizes!r}")
        new_sizes = list(new_sizes)
        if not new_sizes and n_layers < len(model.layers):
            raise ValueError("new_sizes: expected at least the output size of the new head")
        sizes = model.sizes[:n_layers + 1] + new_sizes
        n_new = len(new_sizes)
        hidden_acts = [l.activation for l in reused]
        if n_new:
            new_hidden = _per_layer(activation, "activation", n_new - 1, "new hidden layer")
            acts = hidden_acts + list(new_hidden)
            out_act = output_activation
        else:
            acts = hidden_acts[:-1]
            out_act = hidden_acts[-1]
        bn_new = kwargs.pop("batchnorm", False)
        bn_list = [l.batchnorm for l in reused] + (
            _per_layer(bn_new, "batchnorm", n_new, "new layer") if isinstance(bn_new, (list, tuple))
            else [bool(bn_new)] * (n_new - 1) + [False] if n_new else [])
        do_new = kwargs.pop("dropout", 0.0)
        do_list = [l.dropout for l in reused] + (
            _per_layer(do_new, "dropout", n_new - 1, "new hidden layer")
            if isinstance(do_new, (list, tuple)) else [do_new] * max(n_new - 1, 0))
        do_list = do_list[:len(sizes) - 2]
        alphas = [l.alpha for l in reused] + [None] * n_new
        alphas = [a if acts[i] in v.DEFAULT_ALPHA else None
                  for i, a in enumerate(alphas[:len(sizes) - 2])]
        inits = [l.init for l in reused] + _per_layer(init, "init", n_new, "new layer")
        new = cls(sizes, activation=acts, output_activation=out_act, init=inits,
                  batchnorm=bn_list, dropout=do_list, seed=seed, alpha=alphas,
                  bn_momentum=model.bn_momentum, bn_eps=model.bn_eps, **kwargs)
        for i, (src, dst) in enumerate(zip(reused, new.layers)):
            dst.copy_from(src)
            dst.trainable = i >= n_frozen
        # The reused first layer was trained on inputs standardised this way.
        new.input_mean, new.input_scale = model.input_mean, model.input_scale
        return new


def _dropout_rate(value, name: str) -> float:
    return v.real(value, name, low=0.0, high=1.0, high_open=True, f32=True)


def _batch_rows(batch_size, n: int) -> int:
    """batch_size checked, then at most n: the engine's buffers hold one batch, and a batch_size
    beyond the rows is one batch of all of them (2**63 no longer reaches its 64-bit argument)."""
    return min(_positive_int(batch_size, "batch_size"), n)


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    return int(value)


def as_features(X, name: str, n_features: int) -> np.ndarray:
    """X as a C-contiguous float32 (n, n_features) array, converted from any real dtype (float64,
    integers, bool, lists; strided, Fortran-ordered and read-only arrays are copied), rejecting
    other dtypes, masked values, NaN/Inf, values beyond the float32 range, empty input and the
    wrong feature count with the argument named."""
    if isinstance(X, np.ma.MaskedArray) and np.ma.is_masked(X):
        # np.asarray would drop the mask and compute with whatever the masked cells hold.
        raise ValueError(f"{name}: is a masked array with masked values; fill them "
                         f"({name}.filled(value)) or drop those rows first")
    source = None
    if isinstance(X, np.ndarray) and X.dtype == np.float32:
        arr = X
    else:
        try:
            source = np.asarray(X)
        except Exception as e:  # ragged lists and the like
            raise TypeError(f"{name}: expected a 2-D array of numbers ({e})") from None
        if source.dtype.kind not in "fiub":
            raise TypeError(f"{name}: expected real numbers (a float, integer or bool array), "
                            f"got dtype {source.dtype}" +
                            ("; pass its real part or magnitude (np.abs)"
                             if source.dtype.kind == "c" else ""))
        arr = v.to_float32(source)
    if arr.ndim == 1 and n_features == 1:
        arr = arr.reshape(-1, 1)
        source = None if source is None else source.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n_samples, {n_features}), got shape "
                         f"{arr.shape}")
    if arr.shape[1] != n_features:
        raise ValueError(f"{name}: the model takes {n_features} features, got {arr.shape[1]} "
                         f"(shape {arr.shape})")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one row, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr)
    # In blocks of ~4M elements: np.isfinite over all of X allocates an n x d bool array (47 MB
    # for 60,000 MNIST rows: all of train's memory beyond the data) and is slower.
    rows = max(1, (1 << 22) // arr.shape[1])
    if not all(np.isfinite(arr[i:i + rows]).all() for i in range(0, arr.shape[0], rows)):
        raise v.nonfinite_error(name, arr, source)
    return arr
