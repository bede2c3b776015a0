"""fastmlp.sklearn: scikit-learn's own estimator checks, the same steps as sklearn's MLP from the
same settings, every target type, sklearn's stopping rule, sample weights, and the
sklearn-ecosystem round trips (Pipeline, GridSearchCV, clone, pickle)."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="fastmlp.sklearn needs scikit-learn")

from scipy import sparse  # noqa: E402
from sklearn import neural_network as sk_nn  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import (ConvergenceWarning, DataConversionWarning,  # noqa: E402
                                NotFittedError)
from sklearn.model_selection import (GridSearchCV, cross_val_score,  # noqa: E402
                                     train_test_split)
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastmlp  # noqa: E402
from fastmlp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

from helpers import assert_close  # noqa: E402

no_convergence_warning = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning")


def blobs(n=180, n_in=17, n_classes=3, seed=0, spread=2.5):
    """Gaussian clusters a small MLP separates in a few epochs (float64, like user data)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, n_in)) * spread
    y = rng.integers(0, n_classes, n)
    return centres[y] + rng.standard_normal((n, n_in)), y


def fit_quietly(est, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **kw)


# ---- scikit-learn's estimator checks ---------------------------------------------------------
_FLOAT32 = ("fastmlp trains in float32: fitting on weighted rows and on repeated rows sums the "
            "same terms in a different order, so the predictions agree to float32 rounding "
            "(~2e-7 relative; test_sample_weight_equals_repeating_rows checks them at 1e-4), "
            "not to the check's rtol=1e-7")


def _expected_failures(estimator):
    return {"check_sample_weight_equivalence_on_dense_data": _FLOAT32,
            "check_sample_weight_equivalence_on_sparse_data": _FLOAT32}


@no_convergence_warning
@parametrize_with_checks([MLPClassifier(max_iter=20), MLPRegressor(max_iter=20),
                          MLPClassifier(hidden_layer_sizes=(3, 7), solver="sgd",
                                        learning_rate_init=0.05, max_iter=20)],
                         expected_failed_checks=_expected_failures)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ---- the same steps as sklearn's MLP ---------------------------------------------------------
def _targets(kind, X, rng):
    W = rng.standard_normal((X.shape[1], 3))
    return {"multiclass": (X @ W).argmax(1), "binary": (X @ W[:, 0] > 0).astype(int),
            "multilabel": (X @ W > 0).astype(int), "regression": X @ W[:, 0],
            "multioutput": X @ W}[kind]


@pytest.mark.parametrize("kind", ["multiclass", "binary", "multilabel", "regression",
                                  "multioutput"])
def test_sgd_takes_sklearns_steps(kind):
    """Same init (same random_state), unshuffled full batches: fastmlp's weights and loss
    curve follow sklearn's to float32 precision, so the loss-scale, alpha and learning-rate
    mappings are sklearn's for every head (nesterov momentum, alpha large enough to matter)."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((150, 17))
    y = _targets(kind, X, rng)
    ours, theirs = ((MLPClassifier, sk_nn.MLPClassifier) if kind in ("multiclass", "binary",
                                                                     "multilabel")
                    else (MLPRegressor, sk_nn.MLPRegressor))
    kw = dict(hidden_layer_sizes=(7,), solver="sgd", alpha=0.05, batch_size=50, max_iter=4,
              shuffle=False, random_state=3, learning_rate_init=0.01)
    a = fit_quietly(ours(**kw), X, y)
    b = fit_quietly(theirs(**kw), X, y)
    for i, (wa, wb) in enumerate(zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_)):
        assert_close(wa, wb, rtol=1e-5, atol=1e-6, name=f"parameter {i}")
    # multioutput: the penalty part of sklearn's reported loss is taken at epoch-end weights.
    assert_close(a.loss_curve_, b.loss_curve_, rtol=1e-5 if kind != "multioutput" else 1e-4,
                 name="loss_curve_")
    assert (a.n_iter_, a.t_, a.out_activation_, a.n_outputs_, a.n_layers_) == \
        (b.n_iter_, b.t_, b.out_activation_, b.n_outputs_, b.n_layers_)


def test_adam_follows_sklearn_and_shares_its_start():
    X, y = blobs(n=120)
    kw = dict(hidden_layer_sizes=(9,), max_iter=1, shuffle=False, random_state=5)
    start = fit_quietly(MLPClassifier(**kw, learning_rate_init=1e-12), X, y)
    ref = fit_quietly(sk_nn.MLPClassifier(**kw, learning_rate_init=1e-12), X, y)
    for wa, wb in zip(start.coefs_, ref.coefs_):  # sklearn's initial weights, in float32
        assert_close(wa, wb, rtol=1e-6, atol=1e-7, name="initial W")
    kw["max_iter"] = 6
    a, b = fit_quietly(MLPClassifier(**kw), X, y), fit_quietly(sk_nn.MLPClassifier(**kw), X, y)
    # Adam's epsilon sits at sqrt(v_hat) here, at sqrt(v) in sklearn: equal but for tiny
    # gradients, hence the looser tolerance.
    assert_close(a.loss_curve_, b.loss_curve_, rtol=1e-4, name="loss_curve_")


@no_convergence_warning
def test_digits_accuracy_matches_sklearn():
    X_train, y_train, X_test, y_test = fastmlp.datasets.load_digits()
    kw = dict(hidden_layer_sizes=(32,), max_iter=30, random_state=0)
    ours = MLPClassifier(**kw).fit(X_train, y_train).score(X_test, y_test)
    theirs = sk_nn.MLPClassifier(**kw).fit(X_train, y_train).score(X_test, y_test)
    assert ours > 0.9
    assert abs(ours - theirs) <= 0.03, (ours, theirs)


# ---- target types ------------------------------------------------------------------------------
def test_string_labels():
    X, y = blobs()
    names = np.array(["emu", "cat", "dog"])[y]
    clf = fit_quietly(MLPClassifier(hidden_layer_sizes=(16,), max_iter=60, random_state=0),
                      X, names)
    assert list(clf.classes_) == ["cat", "dog", "emu"]
    pred = clf.predict(X)
    assert pred.dtype == names.dtype and set(pred) <= set(names)
    assert np.mean(pred == names) > 0.95
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3) and clf.out_activation_ == "softmax"
    assert_close(proba.sum(axis=1), np.ones(len(X)), rtol=0, atol=1e-6, name="row sums")
    assert np.array_equal(clf.classes_[proba.argmax(1)], pred)
    assert_close(clf.predict_log_proba(X), np.log(proba), name="log proba")


def test_binary_has_one_logistic_output_and_two_probability_columns():
    X, y = blobs(n_classes=2)
    labels = np.array([-1, 3])[y]
    clf = fit_quietly(MLPClassifier(hidden_layer_sizes=(16,), max_iter=60, random_state=0),
                      X, labels)
    assert clf.n_outputs_ == 1 and clf.model_.n_outputs == 1
    assert clf.out_activation_ == "logistic" and clf.model_.output_activation == "sigmoid"
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    assert_close(proba.sum(axis=1), np.ones(len(X)), rtol=0, atol=1e-6, name="row sums")
    assert np.array_equal(clf.predict(X), np.where(proba[:, 1] > 0.5, 3, -1))
    assert clf.score(X, labels) > 0.95


def test_multilabel_indicator_targets():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((200, 7))
    Y = (X @ rng.standard_normal((7, 3)) > 0).astype(int)
    clf = fit_quietly(MLPClassifier(hidden_layer_sizes=(17,), max_iter=150, random_state=0,
                                    learning_rate_init=0.01), X, Y)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 3
    pred = clf.predict(X)
    assert pred.shape == Y.shape and set(np.unique(pred)) <= {0, 1}
    proba = clf.predict_proba(X)
    assert proba.shape == Y.shape and np.all((proba >= 0) & (proba <= 1))
    assert np.array_equal(pred, (proba > 0.5).astype(int))
    assert np.mean(pred == Y) > 0.9


def test_multioutput_regression():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((250, 5))
    Y = np.tanh(X @ rng.standard_normal((5, 3)))
    reg = fit_quietly(MLPRegressor(hidden_layer_sizes=(32,), max_iter=200, random_state=0,
                                   learning_rate_init=0.01), X, Y)
    assert reg.predict(X).shape == (250, 3) and reg.predict(X).dtype == np.float64
    assert reg.score(X, Y) > 0.9
    assert reg.predict(X.astype(np.float32)).dtype == np.float32  # X's dtype, as sklearn
    with pytest.warns(DataConversionWarning):  # a column vector y, as in sklearn
        fit_quietly(MLPRegressor(hidden_layer_sizes=(3,), max_iter=2), X, Y[:, :1])


def test_sparse_input_gives_the_dense_result():
    X, y = blobs(n=90)
    X[np.abs(X) < 1] = 0
    kw = dict(hidden_layer_sizes=(7,), max_iter=5, random_state=0)
    dense = fit_quietly(MLPClassifier(**kw), X, y)
    csr = fit_quietly(MLPClassifier(**kw), sparse.csr_matrix(X), y)
    assert np.array_equal(dense.predict_proba(X), csr.predict_proba(sparse.csc_matrix(X)))


# ---- sklearn's stopping rule -------------------------------------------------------------------
@pytest.mark.parametrize("n_iter_no_change", [1, 3])
def test_stops_like_sklearn_when_loss_stalls(n_iter_no_change):
    """tol larger than any improvement: both stop after n_iter_no_change + 2 epochs."""
    X, y = blobs(n=60)
    kw = dict(hidden_layer_sizes=(5,), tol=10.0, n_iter_no_change=n_iter_no_change,
              random_state=0, max_iter=50)
    ours, theirs = MLPClassifier(**kw).fit(X, y), sk_nn.MLPClassifier(**kw).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ == n_iter_no_change + 2
    assert len(ours.loss_curve_) == ours.n_iter_ and ours.best_loss_ == min(ours.loss_curve_)
    assert ours.t_ == ours.n_iter_ * len(X)
    assert ours.validation_scores_ is None and ours.best_validation_score_ is None


def test_convergence_warning_at_max_iter():
    X, y = blobs(n=60)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations \\(3\\)"):
        clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0).fit(X, y)
    assert clf.n_iter_ == 3 and len(clf.history_.epoch) == 3  # one fastmlp.train call


@no_convergence_warning
def test_early_stopping_scores_sklearns_split_and_keeps_the_best_weights():
    X, y = blobs(n=300, spread=0.6, seed=4)  # overlapping: the validation score fluctuates
    kw = dict(hidden_layer_sizes=(11,), early_stopping=True, validation_fraction=0.2,
              n_iter_no_change=5, max_iter=40, random_state=7, learning_rate_init=0.01)
    clf = MLPClassifier(**kw).fit(X, y)
    assert clf.best_loss_ is None and len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    # The split sklearn would make: its initial draws (W, b per layer), then train_test_split.
    rs = np.random.RandomState(7)
    for n_in, n_out in ((17, 11), (11, 3)):
        rs.uniform(size=(n_in, n_out))
        rs.uniform(size=n_out)
    _, val = train_test_split(np.arange(len(X)), random_state=rs, test_size=0.2)
    assert clf.score(X[val], y[val]) == pytest.approx(clf.best_validation_score_)
    theirs = sk_nn.MLPClassifier(**kw).fit(X, y)
    assert abs(theirs.best_validation_score_ - clf.best_validation_score_) <= 0.1


def test_adaptive_learning_rate_divides_by_five():
    X, y = blobs(n=60)
    kw = dict(hidden_layer_sizes=(5,), solver="sgd", learning_rate="adaptive", tol=10.0,
              n_iter_no_change=1, max_iter=100, random_state=0, learning_rate_init=0.1)
    clf = MLPClassifier(**kw).fit(X, y)
    rates = sorted(set(clf.history_.history["lr"]), reverse=True)
    assert rates[0] == pytest.approx(0.1) and 1e-6 / 5 < rates[-1] <= 1e-6
    assert_close(np.array(rates[:-1]) / np.array(rates[1:]), np.full(len(rates) - 1, 5.0),
                 name="successive rate ratios")
    # The rule first fires at epoch 3 (no count after the first), then every 2 epochs; it
    # stops training once the rate is <= 1e-6.
    assert clf.n_iter_ == 2 * len(rates) + 1 == sk_nn.MLPClassifier(**kw).fit(X, y).n_iter_


@no_convergence_warning
def test_invscaling_learning_rate():
    X, y = blobs(n=60)
    clf = MLPClassifier(hidden_layer_sizes=(5,), solver="sgd", learning_rate="invscaling",
                        power_t=0.25, max_iter=4, random_state=0,
                        learning_rate_init=0.2).fit(X, y)
    t = np.arange(4) * len(X)
    expected = np.where(t == 0, 0.2, 0.2 / (t + 1.0) ** 0.25)
    assert_close(clf.history_.history["lr"], expected, name="lr per epoch")


# ---- warm start, partial_fit ----------------------------------------------------------------
@no_convergence_warning
def test_warm_start_continues_and_cold_start_repeats():
    X, y = blobs(n=90)
    kw = dict(hidden_layer_sizes=(7,), max_iter=5, random_state=0)
    clf = MLPClassifier(warm_start=True, **kw).fit(X, y)
    first = list(clf.loss_curve_)
    weights = [w.copy() for w in clf.coefs_]
    clf.fit(X, y)
    assert clf.loss_curve_[:5] == first and len(clf.loss_curve_) == 10
    assert clf.loss_curve_[5] < first[0] and clf.n_iter_ == 5 and clf.t_ == 10 * len(X)
    assert not np.array_equal(weights[0], clf.coefs_[0])
    cold = MLPClassifier(**kw).fit(X, y)
    cold.fit(X, y)
    assert cold.loss_curve_ == first  # refit from scratch: the same run again
    with pytest.raises(ValueError, match="layer sizes"):
        clf.set_params(hidden_layer_sizes=(3,)).fit(X, y)
    with pytest.raises(ValueError, match="same classes"):
        MLPClassifier(warm_start=True, **kw).fit(X, y).fit(X[y < 2], y[y < 2])
    switched = MLPClassifier(warm_start=True, **kw).fit(X, y)
    switched.set_params(early_stopping=True).fit(X, y)  # sklearn would fail here
    assert len(switched.validation_scores_) == 5 and switched.best_loss_ is None


def test_partial_fit_classifier():
    X, y = blobs(n=150)
    clf = MLPClassifier(hidden_layer_sizes=(9,), random_state=0, learning_rate_init=0.01)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[:50], y[:50], classes=[0, 1, 2])
    for _ in range(15):
        clf.partial_fit(X[y < 2], y[y < 2])  # a call may miss classes
        clf.partial_fit(X, y)
    assert clf.n_iter_ == 1 and clf.t_ == 50 + 15 * (len(X) + np.sum(y < 2))
    assert len(clf.loss_curve_) == 31 and clf.loss_curve_[-1] < clf.loss_curve_[0] / 2
    assert clf.score(X, y) > 0.95
    with pytest.raises(ValueError, match="classes not in"):
        clf.partial_fit(X[:3], np.array([0, 1, 5]))
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


def test_partial_fit_keeps_the_optimizer_like_sklearn():
    """Momentum carried across partial_fit calls: three calls follow sklearn's three calls
    step for step (with a fresh optimizer per call the momentum would restart)."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((100, 5))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    kw = dict(hidden_layer_sizes=(7,), solver="sgd", momentum=0.9, nesterovs_momentum=False,
              batch_size=25, shuffle=False, random_state=3, learning_rate_init=0.05)
    a, b = MLPClassifier(**kw), sk_nn.MLPClassifier(**kw)
    for _ in range(3):
        a.partial_fit(X, y, classes=[0, 1])
        b.partial_fit(X, y, classes=[0, 1])
    for i, (wa, wb) in enumerate(zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_)):
        assert_close(wa, wb, rtol=1e-5, atol=1e-6, name=f"parameter {i}")
    assert a._optimizer_state.step == 12


def test_partial_fit_regressor_and_sgd_rate_carry_over():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((120, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    reg = MLPRegressor(hidden_layer_sizes=(17,), solver="sgd", learning_rate="invscaling",
                       learning_rate_init=0.05, power_t=0.5, random_state=0)
    for _ in range(3):
        reg.partial_fit(X, y)
    # sklearn's SGD keeps its rate between partial_fit calls: third call at 0.05/sqrt(t_+1).
    scale = 0.5  # sklearn's squared-error gradient is half fastmlp's mse gradient
    assert reg.history_.history["lr"] == [pytest.approx(0.05 / np.sqrt(241) * scale)]
    assert reg.t_ == 360 and reg.n_iter_ == 1 and reg.loss_curve_[-1] < reg.loss_curve_[0]


# ---- sample weights ----------------------------------------------------------------------------
@pytest.mark.parametrize("est", [MLPClassifier(hidden_layer_sizes=(7,), max_iter=30),
                                 MLPRegressor(hidden_layer_sizes=(7,), max_iter=30,
                                              solver="sgd", learning_rate_init=0.01)])
def test_sample_weight_equals_repeating_rows(est):
    """Full batches (n <= 200): integer weights (zeros included) = repeating (dropping) rows,
    to float32 rounding, as in sklearn's check_sample_weight_equivalence."""
    rng = np.random.default_rng(6)
    X = rng.random((31, 9))
    y = rng.integers(0, 3, 31)
    sw = rng.integers(0, 4, 31)
    kw = dict(random_state=0, shuffle=False)
    weighted = fit_quietly(clone(est).set_params(**kw), X, y, sample_weight=sw)
    repeated = fit_quietly(clone(est).set_params(**kw), X.repeat(sw, axis=0), y.repeat(sw))
    assert_close(weighted.predict(X) if isinstance(est, MLPRegressor) else
                 weighted.predict_proba(X),
                 repeated.predict(X) if isinstance(est, MLPRegressor) else
                 repeated.predict_proba(X), rtol=1e-4, atol=1e-6, name="predictions")
    assert_close(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-4, name="loss_curve_")


@no_convergence_warning
def test_heavily_weighted_class_dominates():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((200, 5))  # labels independent of X: only the weights decide
    y = rng.integers(0, 2, 200)
    kw = dict(hidden_layer_sizes=(5,), max_iter=40, random_state=0, learning_rate_init=0.01)
    for heavy in (0, 1):
        clf = MLPClassifier(**kw).fit(X, y, sample_weight=np.where(y == heavy, 20.0, 1.0))
        assert np.mean(clf.predict(X) == heavy) > 0.8


@no_convergence_warning
def test_integer_weight_pulls_the_fit_toward_a_row():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((100, 3))
    y = X.sum(axis=1)
    y[0] += 5.0  # an outlier the unweighted fit mostly ignores
    kw = dict(hidden_layer_sizes=(17,), max_iter=100, random_state=0, learning_rate_init=0.01)
    w = np.ones(100)
    w[0] = 30
    plain = MLPRegressor(**kw).fit(X, y)
    pulled = MLPRegressor(**kw).fit(X, y, sample_weight=w)
    assert abs(pulled.predict(X[:1])[0] - y[0]) < abs(plain.predict(X[:1])[0] - y[0]) - 1.0


def test_sample_weight_errors():
    X, y = blobs(n=30)
    with pytest.raises(ValueError, match="shape"):
        MLPClassifier().fit(X, y, sample_weight=np.ones(29))
    with pytest.raises(ValueError, match=">= 0"):
        MLPClassifier().fit(X, y, sample_weight=-np.ones(30))
    with pytest.raises(ValueError, match="zero"):
        MLPClassifier().fit(X, y, sample_weight=np.zeros(30))


# ---- sklearn-ecosystem round trips -------------------------------------------------------------
@no_convergence_warning
def test_pipeline_gridsearch_and_cross_val_score():
    X, y = blobs(n=150)
    X = X * 50 + 300  # unscaled features: the scaler matters
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=20, random_state=0,
                                                         learning_rate_init=0.01))
    search = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(3,), (17,)],
                                 "mlpclassifier__alpha": [1e-4, 1.0]}, cv=3)
    search.fit(X, y)
    assert search.best_params_["mlpclassifier__hidden_layer_sizes"] in [(3,), (17,)]
    assert search.best_score_ > 0.9
    scores = cross_val_score(MLPRegressor(hidden_layer_sizes=(9,), max_iter=50,
                                          random_state=0, learning_rate_init=0.01),
                             X[:, :4], X[:, 4] - X[:, 5], cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


@no_convergence_warning
def test_clone_and_pickle_give_identical_predictions():
    X, y = blobs(n=90)
    clf = MLPClassifier(hidden_layer_sizes=(17, 3), batchnorm=True, random_state=0,
                        max_iter=10).fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    assert np.array_equal(copy.predict_proba(X), clf.predict_proba(X))
    again = clone(clf).fit(X, y)
    assert np.array_equal(again.predict_proba(X), clf.predict_proba(X))
    # The unpickled model still trains (its buffers are fastmlp's again) and stays separate.
    before = clf.predict_proba(X)
    copy.partial_fit(X, y)
    assert not np.array_equal(copy.predict_proba(X), before)
    assert np.array_equal(clf.predict_proba(X), before)


# ---- sklearn's view of the weights -----------------------------------------------------------
@no_convergence_warning
@pytest.mark.parametrize("batchnorm", [False, True])
def test_coefs_and_intercepts_describe_the_network(batchnorm):
    X, y = blobs(n=63)
    clf = MLPClassifier(hidden_layer_sizes=(3, 7), activation=["tanh", "relu"],
                        batchnorm=batchnorm, max_iter=5, random_state=0).fit(X, y)
    assert [w.shape for w in clf.coefs_] == [(17, 3), (3, 7), (7, 3)]
    assert [b.shape for b in clf.intercepts_] == [(3,), (7,), (3,)]
    h = np.tanh(X @ clf.coefs_[0] + clf.intercepts_[0])
    h = np.maximum(h @ clf.coefs_[1] + clf.intercepts_[1], 0)
    z = h @ clf.coefs_[2] + clf.intercepts_[2]
    p = np.exp(z - z.max(1, keepdims=True))
    assert_close(clf.predict_proba(X), p / p.sum(1, keepdims=True), rtol=1e-4, atol=1e-6,
                 name="manual forward pass")
    if not batchnorm:  # views: editing coefs_ edits the model, as in sklearn
        clf.coefs_[2][...] = 0
        clf.intercepts_[2][...] = 0
        assert_close(clf.predict_proba(X), np.full((63, 3), 1 / 3), name="zeroed output layer")


# ---- fastmlp extras ----------------------------------------------------------------------------
@no_convergence_warning
def test_fastmlp_extras_reach_the_model():
    X, y = blobs(n=90)
    kw = dict(hidden_layer_sizes=(9, 5), max_iter=5, random_state=0)
    base = MLPClassifier(**kw).fit(X, y)
    extra = MLPClassifier(activation=["leaky_relu", "gelu"], init="he_normal", batchnorm=True,
                          dropout=0.25, optimizer="adamw", weight_decay=0.01, clip_norm=1.0,
                          **kw).fit(X, y)
    layers = extra.model_.layers
    assert [l.activation for l in layers] == ["leaky_relu", "gelu", "softmax"]
    assert [l.batchnorm for l in layers] == [True, True, False]
    assert [l.dropout for l in layers] == [0.25, 0.25, 0.0]
    assert not np.allclose(base.predict_proba(X), extra.predict_proba(X))
    for opt in ("rmsprop", "adagrad", "momentum", "nesterov"):
        clf = MLPClassifier(optimizer=opt, **kw).fit(X, y)
        assert clf.history_.params["optimizer"] == opt
    reg = MLPRegressor(hidden_layer_sizes=(5,), output_activation="sigmoid", max_iter=5,
                       random_state=0).fit(X, X[:, 0] > 0)
    assert reg.out_activation_ == "logistic"
    assert np.all((reg.predict(X) > 0) & (reg.predict(X) < 1))


def test_verbose_prints_sklearns_lines(capsys):
    X, y = blobs(n=30)
    fit_quietly(MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, verbose=True), X, y)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Iteration 1, loss = ") and out[1].startswith("Iteration 2, ")


@no_convergence_warning
def test_feature_names_from_a_dataframe():
    pd = pytest.importorskip("pandas")
    X, y = blobs(n=40)
    names = [f"f{i}" for i in range(X.shape[1])]
    clf = MLPClassifier(hidden_layer_sizes=(3,), max_iter=2).fit(pd.DataFrame(X, columns=names), y)
    assert list(clf.feature_names_in_) == names and clf.n_features_in_ == 17
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(pd.DataFrame(X, columns=names[::-1]))


# ---- sklearn-style errors ----------------------------------------------------------------------
def test_sklearn_style_errors():
    X, y = blobs(n=30)
    for method in ("predict", "predict_proba", "predict_log_proba"):
        with pytest.raises(NotFittedError):
            getattr(MLPClassifier(), method)(X)
    with pytest.raises(NotFittedError):
        MLPRegressor().predict(X)
    clf = fit_quietly(MLPClassifier(hidden_layer_sizes=(3,), max_iter=2), X, y)
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 17"):
        clf.predict(X[:, :3])
    with pytest.raises(ValueError, match="'adam'.*'sgd'"):
        MLPClassifier(solver="lbfgs").fit(X, y)
    with pytest.raises(ValueError, match="poisson"):
        MLPRegressor(loss="poisson").fit(X, y)
    with pytest.raises(ValueError, match="alpha: MLPClassifier expects a real number >= 0"):
        MLPClassifier(alpha=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="activation"):
        MLPClassifier(activation="swish").fit(X, y)
    with pytest.raises(ValueError, match="one name per hidden layer"):
        MLPClassifier(hidden_layer_sizes=(3, 3), activation=["tanh"]).fit(X, y)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        MLPClassifier(hidden_layer_sizes=(3, 0)).fit(X, y)
    with pytest.raises(ValueError, match="optimizer"):
        MLPClassifier(optimizer="lion").fit(X, y)
    with pytest.raises(ValueError, match="non-finite"):
        MLPRegressor(solver="sgd", learning_rate_init=10.0, momentum=0.0, max_iter=5).fit(
            X * 1e4, y * 1e6)


# ---- imports -----------------------------------------------------------------------------------
def test_import_fastmlp_never_imports_sklearn():
    code = "import sys, fastmlp; sys.exit('sklearn' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr


def test_import_without_sklearn_names_the_extra(monkeypatch):
    for name in [m for m in sys.modules if m.startswith("fastmlp.sklearn")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sklearn", None)  # what an absent package looks like
    with pytest.raises(ImportError, match=r"pip install 'fastmlp\[sklearn\]'"):
        import fastmlp.sklearn  # noqa: F401
