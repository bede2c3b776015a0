"""The estimators' parameters: checks, and their translation into fastmlp.MLP / fastmlp.train.

Mapping onto fastmlp (the why of each number lives here, once):

* Objective scale. fastmlp's losses average over every output (``mse``: mean of squared
  errors over rows and outputs; ``binary_cross_entropy``: mean over rows and labels;
  ``cross_entropy``: mean over rows). scikit-learn's gradients are those of a per-row *sum* over
  outputs (squared error halved), so sklearn's gradient = ``c_grad`` x fastmlp's with
  ``c_grad`` = 1 (cross_entropy), n_outputs (binary_cross_entropy), n_outputs / 2 (mse).
  sklearn's *reported* loss is ``c_loss`` x fastmlp's, ``c_loss`` = ``c_grad`` except for mse,
  where sklearn reports the mean over outputs (``c_loss`` = 1/2).
* alpha. sklearn's batch objective adds ``0.5 * alpha * sum(W**2) / S_b`` (``_backprop``;
  S_b = the batch's weight sum, its row count without sample_weight). fastmlp adds
  ``l2 * sum(W**2)`` to its own (1 / c_grad smaller) loss, so ``l2 = alpha / (2 c_grad S)``
  with S = batch_size x the mean sample weight: exact for full batches, approximate for the
  last, smaller batch of an epoch and for uneven weights.
* Step sizes. fastmlp then follows 1 / c_grad times sklearn's gradient: SGD (with momentum)
  takes ``lr x c_grad`` to make sklearn's step, Adam (invariant to the gradient's scale but for
  eps) takes ``eps / c_grad``.
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from .. import _validate
from ..training import OPTIMIZERS

# sklearn's hidden activations, by fastmlp's name for each; fastmlp's own names pass through.
SKLEARN_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh",
                       "relu": "relu"}
ACCEPTED_ACTIVATIONS = tuple(SKLEARN_ACTIVATIONS) + tuple(
    a for a in _validate.ACTIVATIONS if a not in SKLEARN_ACTIVATIONS)
# fastmlp's SGD family: the optimizers sklearn's learning_rate schedules and momentum apply to.
SGD_FAMILY = ("sgd", "momentum", "nesterov")


def sklearn_name(activation: str) -> str:
    """The name sklearn gives an activation in out_activation_ ('logistic' for 'sigmoid')."""
    return "logistic" if activation == "sigmoid" else activation


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and \
        math.isfinite(v)


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _is_bool(v) -> bool:
    return isinstance(v, (bool, np.bool_))


# name: (test, what is accepted). Checked at fit, as sklearn does (never in __init__).
_RULES = {
    "alpha": (lambda v: _is_real(v) and v >= 0, "a real number >= 0"),
    "learning_rate": (lambda v: v in ("constant", "invscaling", "adaptive"),
                      "'constant', 'invscaling' or 'adaptive'"),
    "learning_rate_init": (lambda v: _is_real(v) and v > 0, "a real number > 0"),
    "power_t": (lambda v: _is_real(v) and v >= 0, "a real number >= 0"),
    "max_iter": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "shuffle": (_is_bool, "True or False"),
    "tol": (lambda v: _is_real(v) and v >= 0, "a real number >= 0"),
    "verbose": (lambda v: _is_bool(v) or (_is_int(v) and v >= 0), "True/False or an int >= 0"),
    "warm_start": (_is_bool, "True or False"),
    "momentum": (lambda v: _is_real(v) and 0 <= v <= 1, "a real number in [0, 1]"),
    "nesterovs_momentum": (_is_bool, "True or False"),
    "early_stopping": (_is_bool, "True or False"),
    "validation_fraction": (lambda v: _is_real(v) and 0 <= v < 1, "a real number in [0, 1)"),
    "beta_1": (lambda v: _is_real(v) and 0 <= v < 1, "a real number in [0, 1)"),
    "beta_2": (lambda v: _is_real(v) and 0 <= v < 1, "a real number in [0, 1)"),
    "epsilon": (lambda v: _is_real(v) and v > 0, "a real number > 0"),
    "n_iter_no_change": (lambda v: (_is_int(v) and v >= 1) or v == np.inf,
                         "an integer >= 1 or np.inf"),
    "max_fun": (lambda v: _is_int(v) and v >= 1, "an integer >= 1 (unused: lbfgs only)"),
    "batch_size": (lambda v: v == "auto" if isinstance(v, str) else (_is_int(v) and v >= 1),
                   "'auto' or an integer >= 1"),
    "optimizer": (lambda v: v is None or v in OPTIMIZERS,
                  "None (use solver) or one of " + ", ".join(map(repr, OPTIMIZERS))),
}


def check_params(est) -> None:
    """Raises ValueError naming the first parameter outside what it accepts."""
    cls = type(est).__name__
    if est.solver == "lbfgs":
        raise ValueError(f"solver='lbfgs' is not available in fastmlp.sklearn.{cls} (fastmlp "
                         f"trains with minibatch optimizers only); use solver='adam' or "
                         f"solver='sgd', or any fastmlp optimizer through optimizer= "
                         f"({', '.join(OPTIMIZERS)}), or sklearn.neural_network.{cls} for "
                         f"L-BFGS")
    if est.solver not in ("sgd", "adam"):
        raise ValueError(f"solver: expected 'adam' or 'sgd', got {est.solver!r}")
    for name, (ok, accepted) in _RULES.items():
        value = getattr(est, name)
        if not ok(value):
            raise ValueError(f"{name}: {cls} expects {accepted}, got {value!r}")


def hidden_sizes(value) -> list[int]:
    """hidden_layer_sizes (an int or a sequence of ints >= 1, possibly empty) as a list."""
    sizes = [value] if _is_int(value) else value
    try:
        sizes = list(sizes)
    except TypeError:
        sizes = None
    if sizes is None or not all(_is_int(s) and s >= 1 for s in sizes):
        raise ValueError(f"hidden_layer_sizes: expected an integer >= 1 or a sequence of them "
                         f"(one per hidden layer), got {value!r}")
    return [int(s) for s in sizes]


def hidden_activations(value, n_hidden: int):
    """activation (a name, or one name per hidden layer) in fastmlp's names."""
    def one(a, name):
        if not isinstance(a, str) or a not in ACCEPTED_ACTIVATIONS:
            raise ValueError(f"{name}: expected one of {', '.join(ACCEPTED_ACTIVATIONS)}, "
                             f"got {a!r}")
        return SKLEARN_ACTIVATIONS.get(a, a)
    if isinstance(value, (list, tuple)):
        if len(value) != n_hidden:
            raise ValueError(f"activation: a list needs one name per hidden layer ({n_hidden}), "
                             f"got {len(value)}: {value!r}")
        return [one(a, f"activation[{i}]") for i, a in enumerate(value)]
    return one(value, "activation")


def objective_scale(loss: str, n_outputs: int) -> tuple[float, float]:
    """(c_grad, c_loss): sklearn's gradient and reported loss as multiples of fastmlp's."""
    if loss == "mse":
        return n_outputs / 2.0, 0.5
    if loss == "binary_cross_entropy":
        return float(n_outputs), float(n_outputs)
    return 1.0, 1.0


def optimizer_settings(est, c_grad: float) -> tuple[str, float, dict]:
    """(fastmlp optimizer, multiplier of learning_rate_init, its keyword arguments to train)."""
    name = est.optimizer if est.optimizer is not None else est.solver
    kwargs = dict(weight_decay=est.weight_decay, clip_norm=est.clip_norm,
                  clip_value=est.clip_value)
    if name in SGD_FAMILY:
        momentum = float(est.momentum)
        # solver='sgd' ignores nesterovs_momentum without momentum (sklearn); fastmlp would
        # refuse it. optimizer='nesterov' asks for it explicitly, so fastmlp's check stands.
        nesterov = name == "nesterov" or (name == "sgd" and bool(est.nesterovs_momentum)
                                          and momentum > 0)
        kwargs.update(momentum=momentum, nesterov=nesterov)
        return name, c_grad, kwargs
    if name in ("adam", "adamw"):
        kwargs.update(beta1=float(est.beta_1), beta2=float(est.beta_2),
                      eps=float(est.epsilon) / c_grad)
    return name, 1.0, kwargs


def sklearn_init(model, activation, rs: np.random.RandomState) -> None:
    """sklearn's _init_coef: W and b of each layer ~ U(-l, l), l = sqrt(f / (fan_in + fan_out)),
    f = 2 for logistic hidden units, else 6; drawn in sklearn's order (W, then b, layer by
    layer) from rs, so a given random_state starts from sklearn's weights (in float32).
    Batch-norm layers have no bias: theirs is drawn and dropped to keep the stream aligned."""
    acts = activation if isinstance(activation, list) else [activation]
    factor = 2.0 if acts and all(a == "sigmoid" for a in acts) else 6.0
    for layer in model.layers:
        bound = np.sqrt(factor / (layer.n_in + layer.n_out))
        layer.W = rs.uniform(-bound, bound, (layer.n_in, layer.n_out))
        b = rs.uniform(-bound, bound, layer.n_out)
        if not layer.batchnorm:
            layer.b = b


def batch_size(value, n: int) -> int:
    """sklearn's rule: 'auto' = min(200, n); larger than n warns and clips (as sklearn)."""
    if value == "auto":
        return min(200, n)
    if value > n:
        warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going "
                      "to be clipped", UserWarning, stacklevel=4)
    return int(np.clip(value, 1, n))
