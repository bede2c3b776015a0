"""BaseMLP: what MLPClassifier and MLPRegressor share. fit / partial_fit run one fastmlp.train
call (all epochs; the SklearnEpochs callback applies sklearn's stopping rule), prediction runs
fastmlp.MLP.predict, and sklearn's fitted attributes are kept up to date.

Subclasses provide _validate_input (X checked, y turned into fastmlp targets), predict and
_validation_score (accuracy or R^2 for early stopping).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import _validate
from ..model import MLP
from ..training import OptimizerState, train
from . import _params as p
from ._stopping import LearningRate, SklearnEpochs


@dataclass
class Targets:
    """y as fastmlp trains on it, with what the estimator needs around it.

    values: int64 labels (n,) for cross_entropy, else float32 (n, n_outputs).
    loss, output_activation: fastmlp's names for the network's head.
    stratify: None, or what the early-stopping split is stratified by (sklearn: binary only).
    scored: y as the validation score compares predictions with (labels, or y itself).
    """
    values: np.ndarray
    loss: str
    output_activation: str
    n_outputs: int
    stratify: np.ndarray | None
    scored: np.ndarray


def float32_values(a: np.ndarray, name: str) -> np.ndarray:
    """A validated (finite) array as C-contiguous float32; ValueError naming `name` where a
    value lies beyond the float32 range (NumPy would make it Inf with only a RuntimeWarning).
    The range check is two reductions (max, min), so no n x d mask is allocated."""
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(a, dtype=np.float32)
    if a.dtype.kind == "f" and a.dtype.itemsize > 4 and a.size and \
            (a.max() > _validate.F32_MAX or a.min() < -_validate.F32_MAX) and \
            not np.isfinite(out).all():
        raise _validate.nonfinite_error(name, out, a)
    return out


def dense_float32(X) -> np.ndarray:
    """A validated X (dense or scipy sparse) as the C-contiguous float32 fastmlp reads."""
    if sparse.issparse(X):
        X = X.toarray()  # fastmlp's kernels are dense: a sparse X costs n x d floats here
    return float32_values(X, "X")


def sample_weights(sample_weight, n: int) -> np.ndarray | None:
    """None, or float64 weights (n,): a scalar applies to every row; finite, >= 0, not all 0."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim == 0:
        w = np.full(n, float(w))
    if w.shape != (n,):
        raise ValueError(f"sample_weight: expected shape ({n},), one weight per row of X, got "
                         f"shape {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("sample_weight: expected finite weights >= 0")
    if n and not w.any():
        raise ValueError("sample_weight: every weight is zero, so nothing would be learned; "
                         "give some rows a positive weight")
    return w


class BaseMLP(BaseEstimator):
    """Shared implementation; see MLPClassifier and MLPRegressor for the parameters."""

    def __init__(self, hidden_layer_sizes, activation, *, solver, alpha, batch_size,
                 learning_rate, learning_rate_init, power_t, max_iter, shuffle, random_state,
                 tol, verbose, warm_start, momentum, nesterovs_momentum, early_stopping,
                 validation_fraction, beta_1, beta_2, epsilon, n_iter_no_change, max_fun,
                 optimizer, init, batchnorm, dropout, clip_norm, clip_value, weight_decay):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.optimizer = optimizer
        self.init = init
        self.batchnorm = batchnorm
        self.dropout = dropout
        self.clip_norm = clip_norm
        self.clip_value = clip_value
        self.weight_decay = weight_decay

    # ---- fitting ---------------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Fit the model to X (n_samples, n_features) and y; sample_weight (n_samples,) or None.

        Returns self. Runs up to max_iter epochs in one fastmlp.train call."""
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight, incremental: bool):
        p.check_params(self)
        hidden = p.hidden_sizes(self.hidden_layer_sizes)
        activations = p.hidden_activations(self.activation, len(hidden))
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True (as in "
                             "scikit-learn); use fit, or set early_stopping=False")
        first_pass = not hasattr(self, "model_") or (not self.warm_start and not incremental)
        X, targets = self._validate_input(X, y, incremental, reset=first_pass)
        X = dense_float32(X)
        sw = sample_weights(sample_weight, X.shape[0])
        rs = check_random_state(self.random_state)
        sizes = [X.shape[1], *hidden, targets.n_outputs]
        if first_pass:
            self._initialize(sizes, activations, targets, rs)
        elif self.model_.sizes != sizes:
            raise ValueError(f"{'partial_fit' if incremental else 'warm_start'}: the fitted "
                             f"network has layer sizes {self.model_.sizes}, but "
                             f"hidden_layer_sizes and this data give {sizes}; call fit with "
                             f"warm_start=False to start a new network")
        self._fit_stochastic(X, targets, sw, rs, incremental)
        return self

    def _initialize(self, sizes, activations, targets: Targets, rs) -> None:
        """A fresh network and sklearn's per-fit state (sklearn's _initialize)."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = targets.n_outputs
        self.n_layers_ = len(sizes)
        self.out_activation_ = p.sklearn_name(targets.output_activation)
        named_init = self.init is not None
        model = MLP(sizes, activation=activations, output_activation=targets.output_activation,
                    init=self.init if named_init else "zeros", batchnorm=self.batchnorm,
                    dropout=self.dropout,
                    seed=int(rs.randint(np.iinfo(np.int32).max)) if named_init else 0)
        if not named_init:
            p.sklearn_init(model, activations, rs)
        self.model_ = model
        self._best_weights = model.get_weights()
        self.loss_curve_ = []
        self._no_improvement_count = 0
        self.validation_scores_ = self.best_validation_score_ = self.best_loss_ = None
        self._start_stopping_state()

    def _start_stopping_state(self) -> None:
        """What the stopping rule tracks: the validation score with early_stopping, else the
        loss. Also called on a warm start that switched early_stopping (sklearn would fail)."""
        if self.early_stopping and self.validation_scores_ is None:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        elif not self.early_stopping and self.best_loss_ is None:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _fit_stochastic(self, X, targets: Targets, sw, rs, incremental: bool) -> None:
        X_train, y_train, sw_train, validation = X, targets.values, sw, None
        if self.early_stopping:
            # Splitting row indices draws from rs exactly as sklearn's split of (X, y) does.
            rows, val = train_test_split(np.arange(X.shape[0]), random_state=rs,
                                         test_size=self.validation_fraction,
                                         stratify=targets.stratify)
            if len(val) < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            validation = (X[val], targets.scored[val], None if sw is None else sw[val])
            X_train, y_train = X[rows], targets.values[rows]
            sw_train = None if sw is None else sw[rows]
        n_train = X_train.shape[0]
        batch_size = p.batch_size(self.batch_size, n_train)
        c_grad, c_loss = p.objective_scale(targets.loss, self.n_outputs_)
        optimizer, lr_scale, opt_kwargs = p.optimizer_settings(self, c_grad)
        mean_w = 1.0 if sw_train is None else float(sw_train.mean())
        l2 = self.alpha / (2.0 * c_grad * batch_size * mean_w) if mean_w > 0 else 0.0
        # sklearn keeps its optimizer (and so the current SGD rate) across partial_fit calls.
        if not incremental or not hasattr(self, "_learning_rate"):
            self._learning_rate = float(self.learning_rate_init)
        # ... and its momentum / Adam moments (fit, warm or not, starts a new optimizer).
        if not incremental or getattr(self, "_optimizer_state", None) is None:
            self._optimizer_state = OptimizerState()
        schedule = self.learning_rate if optimizer in p.SGD_FAMILY else "constant"
        lr = LearningRate(self._learning_rate, schedule, lr_scale, float(self.learning_rate_init),
                          float(self.power_t))
        self._start_stopping_state()
        epoch_end = SklearnEpochs(self, n_train, c_loss, (c_grad - c_loss) * l2, validation, lr)
        self.n_iter_ = 0
        seed = int(rs.randint(np.iinfo(np.int32).max))
        history = None
        try:
            with warnings.catch_warnings():
                # A diverged run becomes sklearn's ValueError below instead.
                warnings.filterwarnings("ignore", message="fastmlp.train: diverged",
                                        category=RuntimeWarning)
                history = train(
                    self.model_, X_train, y_train, loss=targets.loss, optimizer=optimizer,
                    lr=lr if schedule != "constant" else lr(0), batch_size=batch_size,
                    epochs=1 if incremental else self.max_iter, l2=l2, callbacks=[epoch_end],
                    verbose=0, seed=seed, shuffle=bool(self.shuffle), sample_weight=sw_train,
                    optimizer_state=self._optimizer_state, **opt_kwargs)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        self._learning_rate = lr.value
        self.history_ = history
        if history is not None and "diverged" in (history.stopped_reason or ""):
            raise ValueError("Solver produced non-finite parameter weights. The input data may "
                             "contain large values and need to be preprocessed (for example "
                             "with StandardScaler), or lower learning_rate_init.")
        if self.early_stopping:
            self.model_.set_weights(self._best_weights)
        if not incremental and not epoch_end.converged and self.n_iter_ == self.max_iter:
            warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the "
                          "optimization hasn't converged yet." % self.max_iter,
                          ConvergenceWarning)

    # ---- prediction ------------------------------------------------------------------------
    def _forward(self, X) -> np.ndarray:
        """The network's outputs (n, n_outputs) for X, in X's float dtype (as sklearn)."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=["csr", "csc"],
                          dtype=(np.float64, np.float32), reset=False)
        return self.model_.predict(dense_float32(X)).astype(X.dtype, copy=False)

    # ---- sklearn's view of the weights ---------------------------------------------------
    def _affine_layers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        layers = []
        for layer in self.model_.layers:
            if layer.batchnorm:
                # Inference-mode batch norm is affine: fold it into W and b (copies).
                scale = layer.gamma / np.sqrt(layer.running_var + np.float32(self.model_.bn_eps))
                layers.append((layer.W * scale, layer.beta - layer.running_mean * scale))
            else:
                layers.append((layer.W, layer.b))
        return layers

    @property
    def coefs_(self) -> list[np.ndarray]:
        """Weight matrices W[i] (n_in, n_out), float32 views into model_ (editing them edits
        the model, as in sklearn); batch-norm layers give folded copies (see the class doc)."""
        return [w for w, _ in self._affine_layers()]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Bias vectors b[i] (n_out,), float32 views into model_ (folded copies for batch-norm
        layers)."""
        return [b for _, b in self._affine_layers()]

    # ---- pickling, tags --------------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # accepted and densified (fastmlp's kernels are dense)
        return tags
