"""Bad input found by a fuzzing pass of the public API (bench/NOTES.md, 2026-12-03): each case
once crashed with an unreadable error, or was accepted and then corrupted a run. Each must now
raise a clear exception naming the argument, or behave correctly."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import fastmlp
from fastmlp import kernels as K

from helpers import num_threads

rng = np.random.default_rng(0)
X = rng.standard_normal((20, 3)).astype(np.float32)
Y = np.arange(20) % 2


def model(**kw):
    return fastmlp.MLP([3, 4, 2], seed=0, **kw)


def fit(m, **kw):
    return fastmlp.train(m, X, Y, **{**dict(loss="cross_entropy", epochs=1, verbose=0), **kw})


# ---- integers beyond int64 or C++ int ---------------------------------------------------------
def test_adam_step_beyond_int64_is_refused_by_name():
    p, g = np.ones(5, np.float32), np.ones(5, np.float32)
    m, v = np.zeros(5, np.float32), np.zeros(5, np.float32)
    with pytest.raises(ValueError, match=r"^step: .* at most 9223372036854775807"):
        K.adam_step([p], [g], [m], [v], 2 ** 63)
    assert (p == 1).all() and (m == 0).all()  # nothing was written


@pytest.mark.parametrize("bs", [2 ** 61, 2 ** 63, 2 ** 70])
def test_predict_batch_size_beyond_the_data_is_clamped(bs):
    m = model()
    want = m.predict(X)
    np.testing.assert_array_equal(m.predict(X, batch_size=bs), want)
    np.testing.assert_array_equal(m.predict_proba(X, batch_size=bs),
                                  m.predict_proba(X))


@pytest.mark.parametrize("bs", [2 ** 63, 2 ** 70])
def test_train_and_evaluate_accept_a_batch_size_beyond_the_data(bs):
    a, b = model(), model()
    fit(a, batch_size=bs)
    fit(b, batch_size=len(X))
    np.testing.assert_array_equal(a.layers[0].W, b.layers[0].W)
    assert fastmlp.evaluate(a, X, Y, loss="cross_entropy", batch_size=bs) == \
        fastmlp.evaluate(a, X, Y, loss="cross_entropy", batch_size=len(X))


# ---- OptimizerState ---------------------------------------------------------------------------
def trained_state():
    m, s = model(), fastmlp.OptimizerState()
    fit(m, optimizer_state=s)
    return m, s


@pytest.mark.parametrize("step, error, match", [
    (2 ** 70, ValueError, r"optimizer_state\.step: .* at most"),
    (2.0, TypeError, r"optimizer_state\.step: expected a non-negative integer"),
    ("3", TypeError, r"optimizer_state\.step: .* got str"),
    (-10, ValueError, r"optimizer_state\.step: .* got -10"),
    (True, TypeError, r"optimizer_state\.step"),
])
def test_optimizer_state_step_is_checked_before_training(step, error, match):
    m, s = trained_state()
    before = m.layers[0].W.copy()
    s.step = step
    with pytest.raises(error, match=match):
        fit(m, optimizer_state=s)
    np.testing.assert_array_equal(m.layers[0].W, before)


def test_optimizer_state_step_as_numpy_integer_trains():
    m, s = trained_state()
    s.step = np.int64(s.step)
    fit(m, optimizer_state=s)
    assert s.step == 2


@pytest.mark.parametrize("attr, value, error, match", [
    ("state1", None, TypeError, r"optimizer_state\.state1: expected a float32 numpy array"),
    ("state0", "zeros", TypeError, r"optimizer_state\.state0"),
    ("state1", np.zeros(3, np.float32), ValueError, r"optimizer_state\.state1: .*shape"),
    ("state0", np.zeros(22, np.float64), TypeError, r"optimizer_state\.state0: .*float32"),
])
def test_optimizer_state_buffers_are_checked(attr, value, error, match):
    m, s = trained_state()
    n = m._params.size
    if isinstance(value, np.ndarray) and value.dtype == np.float64:
        value = np.zeros(n, np.float64)
    setattr(s, attr, value)
    with pytest.raises(error, match=match):
        fit(m, optimizer_state=s)


def test_one_buffer_for_both_moments_is_refused():
    # m and v in one buffer were each written twice per element: the run diverged.
    m, s = trained_state()
    s.state1 = s.state0
    with pytest.raises(ValueError, match="state0 and state1 share memory"):
        fit(m, optimizer_state=s)
    m, s = trained_state()
    s.state0 = m._params  # the weights themselves as Adam's first moment
    with pytest.raises(ValueError, match="state0 and the model's parameters share memory"):
        fit(m, optimizer_state=s)


# ---- targets ----------------------------------------------------------------------------------
def test_scalar_and_ragged_targets_are_named():
    with pytest.raises(ValueError, match=r"^y: expected 20 rows to match X, got a scalar"):
        fastmlp.train(model(), X, np.array(1), loss="cross_entropy", epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"^y: expected 3 rows of equal length, got a ragged"):
        fastmlp.train(fastmlp.MLP([3, 2], seed=0), X[:3], [[1, 2], [1], [0, 1]], loss="mse",
                      epochs=1, verbose=0)


# ---- layer attributes set after construction --------------------------------------------------
@pytest.mark.parametrize("attr, value, error, match", [
    ("activation", None, ValueError, r"^activation: expected one of"),
    ("activation", "bogus", ValueError, r"^activation: expected one of"),
    ("activation", "softmax", ValueError, r"^activation: expected one of"),  # hidden layer
    ("alpha", "x", TypeError, r"^alpha: expected a real number"),
    ("alpha", 1e300, ValueError, r"^alpha: .*float32"),
    ("dropout", 2.0, ValueError, r"^dropout: expected < 1.0"),
    ("n_in", 5, AttributeError, r"^n_in: fixed when the model is built"),
    ("batchnorm", True, AttributeError, r"^batchnorm: fixed when the model is built"),
])
def test_layer_attributes_are_checked_when_set(attr, value, error, match):
    m = model()
    before = getattr(m.layers[0], attr)
    with pytest.raises(error, match=match):
        setattr(m.layers[0], attr, value)
    assert getattr(m.layers[0], attr) == before
    assert m.predict(X).shape == (20, 2)  # the model still works


def test_valid_layer_changes_take_effect():
    m = model()
    m.layers[0].activation = "leaky_relu"
    m.layers[0].alpha = 0.5
    m.layers[0].dropout = np.float32(0.25)
    ref = fastmlp.MLP([3, 4, 2], seed=0, activation="leaky_relu", alpha=0.5)
    np.testing.assert_array_equal(m.predict(X), ref.predict(X))  # dropout is off in predict
    assert isinstance(m.layers[0].dropout, float)


# ---- from_pretrained --------------------------------------------------------------------------
@pytest.mark.parametrize("new_sizes, freeze, error, match", [
    (5, True, TypeError, r"^new_sizes: expected a list of layer sizes"),
    ([5, 0], True, ValueError, r"^new_sizes\[1\]: expected a positive integer"),
    ([5], "x", TypeError, r"^freeze: expected a non-negative integer"),
    ([5], -1, ValueError, r"^freeze: .* got -1"),
    ([5], 1.7, TypeError, r"^freeze: .* got float 1.7"),
    ([5], 2, ValueError, r"^freeze: .* at most 1"),
])
def test_from_pretrained_checks_new_sizes_and_freeze(new_sizes, freeze, error, match):
    with pytest.raises(error, match=match):
        fastmlp.MLP.from_pretrained(model(), 1, new_sizes, freeze=freeze)


@pytest.mark.parametrize("freeze, trainable", [(True, [False, True]), (False, [True, True]),
                                               (0, [True, True]), (np.int64(1), [False, True])])
def test_from_pretrained_freeze_values(freeze, trainable):
    new = fastmlp.MLP.from_pretrained(model(), 1, [5, 2], freeze=freeze)
    assert [l.trainable for l in new.layers] == trainable + [True]


# ---- files ------------------------------------------------------------------------------------
def rewrite_header(path, edit):
    with np.load(path) as z:
        arrays = dict(z)
    arrays["fastmlp"] = np.frombuffer(edit(arrays["fastmlp"].tobytes().decode()).encode(),
                                      np.uint8)
    np.savez(path, **arrays)


def test_header_booleans_must_be_booleans(tmp_path):
    path = str(tmp_path / "m.npz")
    fastmlp.save(model(), path)

    def edit(text):
        h = json.loads(text)
        h["layers"][0]["trainable"] = "no"  # was loaded as trainable
        return json.dumps(h)
    rewrite_header(path, edit)
    with pytest.raises(ValueError, match="corrupt header .*trainable: expected True or False"):
        fastmlp.load(path)


def test_deeply_nested_header_is_a_corrupt_file(tmp_path):
    path = str(tmp_path / "m.npz")
    fastmlp.save(model(), path)
    rewrite_header(path, lambda _: "[" * 50_000 + "]" * 50_000)
    with pytest.raises(ValueError, match="corrupt header .*RecursionError"):
        fastmlp.load(path)
    with pytest.raises(ValueError, match="corrupt header"):
        fastmlp.io.read_header(path)


def test_encrypted_zip_members_are_not_a_model(tmp_path):
    path = tmp_path / "m.npz"
    fastmlp.save(model(), str(path))
    data = bytearray(path.read_bytes())
    for sig, flag in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # local and central headers
        i = data.find(sig)
        while i >= 0:
            data[i + flag] |= 1  # general-purpose bit 0: encrypted
            i = data.find(sig, i + 4)
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="encrypted"):
        fastmlp.load(str(path))


def test_load_checkpoint_names_its_argument():
    with pytest.raises(TypeError, match=r"^path: expected a checkpoint file path"):
        fastmlp.load_checkpoint(None)


def test_checkpoint_that_is_a_directory_is_refused_before_training(tmp_path):
    m = model()
    before = m.layers[0].W.copy()
    with pytest.raises(IsADirectoryError, match=r"^checkpoint: .* is a directory"):
        fit(m, checkpoint=str(tmp_path))
    np.testing.assert_array_equal(m.layers[0].W, before)
    assert os.listdir(tmp_path) == []  # no temporary file left behind


# ---- threads ----------------------------------------------------------------------------------
def test_set_num_threads_takes_numpy_integers_and_clamps_huge_counts():
    with num_threads(1):
        fastmlp.set_num_threads(np.int64(2))
        assert fastmlp.get_num_threads() == 2
        fastmlp.set_num_threads(2 ** 31)
        assert fastmlp.get_num_threads() == 65535
    with pytest.raises(TypeError, match=r"^n: expected a positive integer .* got bool"):
        fastmlp.set_num_threads(np.bool_(True))
