"""MLPRegressor: sklearn.neural_network.MLPRegressor's interface on fastmlp."""
from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils import column_or_1d
from sklearn.utils.validation import check_is_fitted, validate_data

from .._validate import ACTIVATIONS
from . import _docs
from ._base import BaseMLP, Targets, float32_values


class MLPRegressor(RegressorMixin, BaseMLP):
    __doc__ = f"""Multi-layer perceptron regressor trained by fastmlp: a drop-in replacement for
sklearn.neural_network.MLPRegressor (same parameters, defaults, fitted attributes and stopping
rule), with fastmlp's extras as extra keyword parameters. y may be 1-D or (n_samples,
n_outputs) for multi-output regression; the loss is half the squared error, as sklearn's.

Parameters
----------
loss : {{'squared_error'}}, default='squared_error'
    sklearn's squared error. Differs from sklearn: 'poisson' is not available (fastmlp has
    no exp output / Poisson deviance) and raises ValueError at fit.

{_docs.fill(_docs.PARAMETERS, score="R^2")}
output_activation : str, default='identity'
    fastmlp extension: activation of the output layer, any of fastmlp's ('identity',
    'sigmoid' for targets in (0, 1), 'relu' for non-negative targets, 'tanh', ...).

Attributes
----------
{_docs.fill(_docs.ATTRIBUTES, score="R^2", out="output_activation; 'logistic' for 'sigmoid'")}
Notes
-----
{_docs.NOTES}
Examples
--------
>>> import numpy as np
>>> from fastmlp.sklearn import MLPRegressor
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(300, 5)); y = X @ rng.normal(size=5)
>>> reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=500, random_state=0).fit(X, y)
>>> reg.score(X, y) > 0.95
True
"""

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 optimizer=None, init=None, batchnorm=False, dropout=0.0, clip_norm=None,
                 clip_value=None, weight_decay=0.0, output_activation="identity"):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
            max_fun=max_fun, optimizer=optimizer, init=init, batchnorm=batchnorm,
            dropout=dropout, clip_norm=clip_norm, clip_value=clip_value,
            weight_decay=weight_decay)
        self.loss = loss
        self.output_activation = output_activation

    def _validate_input(self, X, y, incremental, reset):
        if self.loss != "squared_error":
            raise ValueError(f"loss: fastmlp.sklearn.MLPRegressor supports 'squared_error' "
                             f"only, got {self.loss!r}; use sklearn.neural_network.MLPRegressor "
                             f"for loss='poisson'")
        if self.output_activation not in ACTIVATIONS:
            raise ValueError(f"output_activation: expected one of {', '.join(ACTIVATIONS)}, "
                             f"got {self.output_activation!r}")
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        values = float32_values(y.reshape(len(y), -1), "y")
        return X, Targets(values, "mse", self.output_activation, values.shape[1],
                          stratify=None, scored=y)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing from the current network. Returns self."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predictions (n_samples,), or (n_samples, n_outputs) for multi-output y."""
        check_is_fitted(self)
        out = self._forward(X)
        return out.ravel() if out.shape[1] == 1 else out

    def _validation_score(self, X, y, sample_weight) -> float:
        out = self.model_.predict(X)
        if not np.isfinite(out).all():
            return np.nan
        return r2_score(y, out.ravel() if out.shape[1] == 1 else out,
                        sample_weight=sample_weight)
