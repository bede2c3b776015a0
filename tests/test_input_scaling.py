"""model.input_mean / input_scale: a model that carries its input standardisation behaves, in
every entry point that takes X, exactly like the same model fed pre-standardised data."""
from __future__ import annotations

import numpy as np
import pytest

import fastmlp


def data(seed=0, n=96, d=4):
    rng = np.random.default_rng(seed)
    # Features on very different scales and offsets, one constant.
    X = rng.standard_normal((n, d)) * np.array([1000.0, 0.01, 5.0, 0.0])[:d] + \
        np.array([50.0, -3.0, 0.0, 7.0])[:d]
    y = (X[:, 0] / 1000 + X[:, 1] * 100 > 0.05).astype(np.int64)
    return X, y


def test_fit_input_scaling_standardises_and_keeps_constant_features_finite():
    X, _ = data()
    model = fastmlp.MLP([4, 3, 2], seed=0).fit_input_scaling(X)
    np.testing.assert_allclose(model.input_mean, X.mean(0), rtol=1e-6)
    np.testing.assert_allclose(model.input_scale[:3], X.std(0)[:3], rtol=1e-6)
    assert model.input_scale[3] == 1.0  # constant feature: centred, not divided by 0
    assert model.input_mean.dtype == np.float32 and model.input_scale.dtype == np.float32
    Z = model._input(X)
    np.testing.assert_allclose(Z[:, :3].mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(Z[:, :3].std(0), 1, rtol=1e-4)
    assert (Z[:, 3] == 0).all()


def twins(X):
    """A model carrying its scaling, and an identical one without it plus X pre-scaled."""
    a = fastmlp.MLP([4, 9, 2], seed=1).fit_input_scaling(X)
    b = fastmlp.MLP([4, 9, 2], seed=1)
    Xs = ((X.astype(np.float32) - a.input_mean) / a.input_scale).astype(np.float32)
    return a, b, Xs


def test_training_prediction_and_evaluation_match_prescaled_data():
    X, y = data()
    a, b, Xs = twins(X)
    ha = fastmlp.train(a, X, y, loss="cross_entropy", epochs=3, batch_size=16, verbose=0,
                       seed=0, validation_split=0.25)
    hb = fastmlp.train(b, Xs, y, loss="cross_entropy", epochs=3, batch_size=16, verbose=0,
                       seed=0, validation_split=0.25)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert ha.history["val_loss"] == hb.history["val_loss"]
    np.testing.assert_array_equal(a.predict(X), b.predict(Xs))
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(Xs))
    assert fastmlp.evaluate(a, X, y, loss="cross_entropy") == \
        fastmlp.evaluate(b, Xs, y, loss="cross_entropy")


def test_validation_data_is_scaled_too():
    X, y = data()
    a, b, Xs = twins(X)
    ha = fastmlp.train(a, X[:64], y[:64], loss="cross_entropy", epochs=2, verbose=0, seed=0,
                       validation_data=(X[64:], y[64:]))
    hb = fastmlp.train(b, Xs[:64], y[:64], loss="cross_entropy", epochs=2, verbose=0, seed=0,
                       validation_data=(Xs[64:], y[64:]))
    assert ha.history["val_loss"] == hb.history["val_loss"]


def test_diagnose_sees_the_standardised_inputs():
    X, y = data()
    raw = fastmlp.MLP([4, 9, 2], seed=1)
    scaled = fastmlp.MLP([4, 9, 2], seed=1).fit_input_scaling(X)
    kinds_raw = fastmlp.diagnose(raw, X, y, loss="cross_entropy", probe_steps=10).kinds()
    report = fastmlp.diagnose(scaled, X, y, loss="cross_entropy", probe_steps=10)
    assert "unscaled_inputs" in kinds_raw
    assert "unscaled_inputs" not in report.kinds()
    # The probe trained a copy on the standardised rows without scaling them a second time.
    assert report.probe is not None and len(report.probe.monitor) > 0


def test_from_pretrained_keeps_the_scaling():
    X, _ = data()
    base = fastmlp.MLP([4, 9, 2], seed=1).fit_input_scaling(X)
    new = fastmlp.MLP.from_pretrained(base, 1, [3])
    np.testing.assert_array_equal(new.input_mean, base.input_mean)
    np.testing.assert_array_equal(new.input_scale, base.input_scale)


def test_clearing_and_partial_scaling():
    X, _ = data()
    model = fastmlp.MLP([4, 2], seed=0).fit_input_scaling(X)
    model.input_mean = None  # scale only
    Z = model._input(X)
    np.testing.assert_allclose(Z, (X / model.input_scale).astype(np.float32), rtol=1e-6)
    model.input_scale = None
    np.testing.assert_array_equal(model._input(X), X.astype(np.float32))


@pytest.mark.parametrize("name, value, error, match", [
    ("input_mean", np.ones(3), ValueError, r"input_mean: expected shape \(4,\)"),
    ("input_scale", np.ones((4, 1)), ValueError, r"input_scale: expected shape \(4,\)"),
    ("input_scale", np.array([1.0, 0.0, 1.0, 1.0]), ValueError, "finite values > 0"),
    ("input_scale", np.array([1.0, -2.0, 1.0, 1.0]), ValueError, "finite values > 0"),
    ("input_mean", np.array([1.0, np.nan, 1.0, 1.0]), ValueError, "finite values"),
    ("input_mean", np.array(["a"] * 4), TypeError, "input_mean: expected 4 numbers"),
])
def test_bad_scaling_is_refused(name, value, error, match):
    model = fastmlp.MLP([4, 2], seed=0)
    with pytest.raises(error, match=match):
        setattr(model, name, value)
    assert getattr(model, name) is None


def test_overflow_after_scaling_is_reported():
    model = fastmlp.MLP([2, 1], seed=0)
    model.input_scale = np.array([1e-30, 1.0])
    with pytest.raises(ValueError, match="overflows float32"):
        model.predict(np.array([[1e30, 1.0]]))


def test_callers_array_is_not_modified():
    X, y = data()
    X32 = X.astype(np.float32)
    keep = X32.copy()
    model = fastmlp.MLP([4, 2], seed=0).fit_input_scaling(X32)
    model.predict(X32)
    fastmlp.train(model, X32, y, loss="cross_entropy", epochs=1, verbose=0)
    np.testing.assert_array_equal(X32, keep)
