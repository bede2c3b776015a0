"""Bad input found by a second fuzzing pass: integers beyond int64 or C++ int, NumPy integers,
OptimizerState attributes reassigned by hand, layer settings set to nonsense, from_pretrained's
new_sizes and freeze, model files whose zip members are encrypted or whose JSON header is
nested too deep or holds strings for booleans, checkpoint paths that are directories, and
hyper-parameters finite in float64 but Inf (or 0, or 1) in float32. Each is refused with the
argument named, before anything is changed, or (a batch_size beyond the rows) simply works."""
import hashlib
import json
import os
import struct
import zipfile

import numpy as np
import pytest

import fastmlp
from fastmlp import kernels as K
from fastmlp.checkpoint import MAGIC, read_container, write_container
from fastmlp.io import read_header
from fastmlp.schedules import ExponentialDecay
from helpers import num_threads

RNG = np.random.default_rng(11)
X = RNG.standard_normal((20, 3)).astype(np.float32)
Y = np.arange(20) % 2
TRAIN = dict(loss="cross_entropy", epochs=1, verbose=0, seed=0)


def model(**kw):
    return fastmlp.MLP([3, 4, 2], seed=0, **kw)


def unchanged(m, before):
    np.testing.assert_array_equal(m._params, before)


# ---- integers: beyond int64 / C++ int, NumPy integers ----------------------------------------

def test_set_num_threads_bounds_and_numpy_integers():
    with pytest.raises(ValueError, match=r"^n: expected an integer >= 1 \(threads, at most"):
        fastmlp.set_num_threads(2 ** 31)  # was pybind11's "incompatible function arguments"
    with pytest.raises(ValueError, match=r"^n: "):
        fastmlp.set_num_threads(np.bool_(True))
    with num_threads(1):
        fastmlp.set_num_threads(np.int64(2))  # was refused as "not an integer"
        assert fastmlp.get_num_threads() == 2


def test_adam_step_beyond_int64_is_refused_naming_step():
    p, g = [np.ones(5, np.float32)], [np.ones(5, np.float32)]
    m, v = [np.zeros(5, np.float32)], [np.zeros(5, np.float32)]
    with pytest.raises(ValueError, match=r"^step: expected an integer >= 1 and < 2\*\*63"):
        K.adam_step(p, g, m, v, 2 ** 63)
    np.testing.assert_array_equal(p[0], 1.0)
    K.adam_step(p, g, m, v, 2 ** 63 - 1)  # the largest step _core takes still works
    assert np.isfinite(p[0]).all() and (p[0] < 1.0).all()


@pytest.mark.parametrize("bs", [2 ** 61, 2 ** 63, 2 ** 64])
def test_batch_size_beyond_the_rows_is_one_batch_everywhere(bs):
    m = model()
    np.testing.assert_array_equal(m.predict(X, batch_size=bs), m.predict(X))
    np.testing.assert_array_equal(m.predict_proba(X, batch_size=bs), m.predict_proba(X))
    ev = fastmlp.evaluate(m, X, Y, loss="cross_entropy", batch_size=bs)
    assert ev == fastmlp.evaluate(m, X, Y, loss="cross_entropy", batch_size=len(X))
    a, b = model(), model()
    fastmlp.train(a, X, Y, batch_size=bs, **TRAIN)
    fastmlp.train(b, X, Y, batch_size=len(X), **TRAIN)
    np.testing.assert_array_equal(a._params, b._params)


def test_diagnose_probe_with_a_batch_size_beyond_the_rows_runs_probe_steps():
    # It sized the probe by batch_size: 5 steps of 10**4 rows were 2500 one-batch epochs (and
    # batch_size=2**61 ran for ever).
    report = fastmlp.diagnose(model(), X, Y, loss="cross_entropy", probe_steps=5,
                              batch_size=10 ** 4, seed=0)
    assert len(report.probe.epoch) == 5


# ---- OptimizerState attributes set by hand ---------------------------------------------------

def _trained_state():
    m, state = model(), fastmlp.OptimizerState()
    fastmlp.train(m, X, Y, optimizer_state=state, **TRAIN)
    return m, state


@pytest.mark.parametrize("step,exc", [(2 ** 70, ValueError), (2.0, TypeError),
                                      ("3", TypeError), (-10, ValueError),
                                      (True, TypeError)])
def test_optimizer_state_step_is_checked(step, exc):
    m, state = _trained_state()
    before = m._params.copy()
    state.step = step
    with pytest.raises(exc, match=r"^optimizer_state\.step: "):
        fastmlp.train(m, X, Y, optimizer_state=state, **TRAIN)
    unchanged(m, before)


def test_optimizer_state_step_may_be_a_numpy_integer():
    m, state = _trained_state()
    state.step = np.int64(1)
    fastmlp.train(m, X, Y, optimizer_state=state, **TRAIN)
    assert state.step == 2


@pytest.mark.parametrize("value,exc,match", [
    (lambda m, s: None, TypeError, r"^optimizer_state\.state1: expected a float32 numpy array"),
    (lambda m, s: "x", TypeError, r"^optimizer_state\.state1: expected a float32 numpy array"),
    (lambda m, s: np.zeros(3, np.float32), ValueError,
     r"^optimizer_state\.state1: has shape \(3,\).*different number of parameters"),
    # One buffer as both of Adam's moments was accepted and trained on.
    (lambda m, s: s.state0, ValueError,
     r"^optimizer_state\.state1: shares memory with optimizer_state\.state0"),
    (lambda m, s: m._params, ValueError,
     r"^optimizer_state\.state1: shares memory with the model's parameters"),
])
def test_optimizer_state_buffers_are_checked(value, exc, match):
    m, state = _trained_state()
    before = m._params.copy()
    state.state1 = value(m, state)
    with pytest.raises(exc, match=match):
        fastmlp.train(m, X, Y, optimizer_state=state, **TRAIN)
    unchanged(m, before)


# ---- targets ---------------------------------------------------------------------------------

def test_train_refuses_a_scalar_or_ragged_y_naming_it():
    with pytest.raises(ValueError, match=r"^y: expected 20 rows to match X, got shape \(\)"):
        fastmlp.train(model(), X, np.array(1), **TRAIN)
    ragged = [[0.0, 1.0]] * 19 + [[0.0]]
    with pytest.raises(ValueError, match=r"^y: expected one label or one row"):
        fastmlp.train(model(), X, ragged, loss="mse", epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"^y: expected one label or one row"):
        fastmlp.evaluate(model(), X, ragged, loss="mse")


# ---- layer settings --------------------------------------------------------------------------

@pytest.mark.parametrize("attr,value,exc", [
    ("activation", None, ValueError), ("activation", "softmax", ValueError),
    ("activation", "bogus", ValueError), ("alpha", "x", TypeError),
    ("alpha", 1e300, ValueError), ("alpha", -1.0, ValueError),
    ("dropout", 0.99999999, ValueError), ("dropout", None, TypeError),
])
def test_layer_settings_are_checked_when_set(attr, value, exc):
    m = model()
    expected = m.predict(X)
    old = getattr(m.layers[0], attr)
    with pytest.raises(exc, match=rf"^layers\[0\]\.{attr}: "):
        setattr(m.layers[0], attr, value)
    assert getattr(m.layers[0], attr) == old
    np.testing.assert_array_equal(m.predict(X), expected)  # was "Unable to cast" here


def test_layer_settings_that_are_valid_are_taken():
    m = model()
    m.layers[0].activation = "elu"
    m.layers[0].alpha = np.float32(0.5)
    m.layers[0].dropout = 0.25
    m.layers[-1].activation = "softmax"  # the output layer may use softmax
    assert np.isfinite(m.predict(X)).all()
    assert (m.layers[0].activation, m.layers[0].dropout) == ("elu", 0.25)
    assert type(m.layers[0].alpha) is float and m.layers[0].alpha == 0.5


def test_a_new_activation_starts_from_its_own_alpha():
    # leaky_relu's 0.01 had stayed as elu's alpha, so the "elu" layer computed
    # 0.01*(exp(z)-1): a network unlike one built with activation="elu".
    m = model(activation="leaky_relu")
    m.layers[0].activation = "elu"
    assert m.layers[0].alpha == 1.0
    built = model(activation="elu")
    np.testing.assert_array_equal(m.predict(X), built.predict(X))
    m.layers[0].alpha = 0.3  # set after the activation, alpha is the caller's
    m.layers[0].activation = "elu"  # the same activation again keeps it
    assert m.layers[0].alpha == 0.3
    m.layers[0].activation = "relu"
    assert m.layers[0].alpha == 0.0


def test_alpha_on_an_activation_without_one_is_refused():
    m = model(activation="relu")
    with pytest.raises(ValueError, match=r"^layers\[0\]\.alpha: activation 'relu' takes no alpha"):
        m.layers[0].alpha = 0.2
    assert m.layers[0].alpha == 0.0
    m.layers[0].alpha = 0.0  # its own value is taken


def test_dropout_that_is_one_in_float32_is_refused_by_mlp():
    with pytest.raises(ValueError, match=r"^dropout: expected < 1\.0 in float32"):
        fastmlp.MLP([3, 4, 2], dropout=0.99999999)


# ---- from_pretrained -------------------------------------------------------------------------

@pytest.mark.parametrize("args,kw,exc,match", [
    ((1, 5), {}, TypeError, r"^new_sizes: expected a list .* \[5\]"),
    ((1, "5"), {}, TypeError, r"^new_sizes: "),
    ((1, [5]), dict(freeze="x"), TypeError, r"^freeze: expected True, False or an integer"),
    ((1, [5]), dict(freeze=1.7), TypeError, r"^freeze: "),
    ((1, [5]), dict(freeze=-1), ValueError, r"^freeze: .*in \[0, 1\]"),
    ((1, [5]), dict(freeze=2), ValueError, r"^freeze: .*in \[0, 1\]"),
])
def test_from_pretrained_checks_new_sizes_and_freeze(args, kw, exc, match):
    with pytest.raises(exc, match=match):
        fastmlp.MLP.from_pretrained(model(), *args, **kw)


def test_from_pretrained_numpy_bool_and_int_freeze():
    base = fastmlp.MLP([3, 4, 4, 2], seed=0)
    # np.True_ froze only the first layer (int(np.True_) == 1): it means every reused layer.
    new = fastmlp.MLP.from_pretrained(base, 2, [3], freeze=np.True_)
    assert [l.trainable for l in new.layers] == [False, False, True]
    new = fastmlp.MLP.from_pretrained(base, 2, [3], freeze=np.int64(1))
    assert [l.trainable for l in new.layers] == [False, True, True]


# ---- model files -----------------------------------------------------------------------------

def _rewrite_header(path, edit):
    with np.load(path) as z:
        arrays = dict(z)
    text = edit(json.loads(arrays["fastmlp"].tobytes()))
    arrays["fastmlp"] = np.frombuffer(text.encode(), np.uint8)
    np.savez(path, **arrays)


@pytest.mark.parametrize("where", ["layer", "input"])
def test_header_booleans_must_be_json_booleans(tmp_path, where):
    path = tmp_path / "m.npz"
    m = model()
    m.layers[0].trainable = False
    fastmlp.save(m, path)

    def edit(h):
        if where == "layer":
            h["layers"][0]["trainable"] = "no"  # bool("no") loaded it as trainable
        else:
            h["input"]["mean"] = "no"
        return json.dumps(h)
    _rewrite_header(path, edit)
    with pytest.raises(ValueError, match=r"^path: .* has a corrupt header"):
        fastmlp.load(path)


def test_header_nested_too_deep_is_a_corrupt_header(tmp_path):
    path = tmp_path / "m.npz"
    fastmlp.save(model(), path)
    _rewrite_header(path, lambda h: "[" * 50_000 + "]" * 50_000)
    with pytest.raises(ValueError, match=r"^path: .* has a corrupt header"):
        fastmlp.load(path)  # was RecursionError


def _set_zip_flags(path, flag=0, method=None):
    """Sets general-purpose flag bits (1: encrypted) or the compression method of every
    member, in its local header and in the central directory."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        offsets, start = [i.header_offset for i in z.infolist()], z.start_dir
    central = []
    pos = start
    for _ in offsets:
        central.append(pos)
        n, m, k = struct.unpack_from("<HHH", data, pos + 28)
        pos += 46 + n + m + k
    for flag_at in [o + 6 for o in offsets] + [c + 8 for c in central]:
        data[flag_at] |= flag
        if method is not None:
            struct.pack_into("<H", data, flag_at + 2, method)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kw,match", [(dict(flag=1), "encrypted"),
                                      (dict(method=99), "not supported")])
def test_an_encrypted_or_oddly_compressed_model_file_is_a_value_error(tmp_path, kw, match):
    path = tmp_path / "m.npz"
    fastmlp.save(model(), path)
    _set_zip_flags(path, **kw)
    for read in (fastmlp.load, read_header):
        with pytest.raises(ValueError, match=rf"^path: .* is not a valid fastmlp model file.*"
                                             rf"{match}"):
            read(path)  # was RuntimeError (NotImplementedError)


def test_save_refuses_metadata_nested_too_deep(tmp_path):
    m = model()
    deep = []
    for _ in range(100_000):
        deep = [deep]
    m.metadata = {"deep": deep}
    with pytest.raises(ValueError, match=r"^model\.metadata: "):
        fastmlp.save(m, tmp_path / "m.npz")  # was RecursionError


# ---- checkpoints -----------------------------------------------------------------------------

def test_load_checkpoint_names_its_path_argument(tmp_path):
    with pytest.raises(TypeError, match=r"^path: expected a file name"):
        fastmlp.load_checkpoint(None)
    with pytest.raises(IsADirectoryError, match=r"^path: .* is a directory"):
        fastmlp.load_checkpoint(tmp_path)


def test_checkpoint_header_nested_too_deep_is_a_corrupt_header(tmp_path):
    text = ("[" * 50_000 + "]" * 50_000).encode()
    body = MAGIC + struct.pack("<Q", len(text)) + text
    path = tmp_path / "c.ckpt"
    path.write_bytes(body + hashlib.sha256(body).digest())  # a valid digest over a bad header
    with pytest.raises(ValueError, match=r"^checkpoint .* has a corrupt header"):
        fastmlp.load_checkpoint(path)


def test_checkpoint_or_resume_that_is_a_directory_is_refused_before_training(tmp_path):
    m = model()
    before = m._params.copy()
    with pytest.raises(ValueError, match=r"^checkpoint: .* is a directory"):
        fastmlp.train(m, X, Y, checkpoint=tmp_path, **TRAIN)  # was IsADirectoryError on a temp
    with pytest.raises(ValueError, match=r"^resume: .* is a directory"):
        fastmlp.train(m, X, Y, resume=tmp_path, **TRAIN)
    unchanged(m, before)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_checkpoint_in_a_folder_that_cannot_be_written_is_refused_before_training():
    # /proc refuses new files even to root, for whom a chmod-ed folder would still be writable.
    m = model()
    before = m._params.copy()
    with pytest.raises(PermissionError, match=r"^checkpoint: cannot write in folder '/proc'"):
        fastmlp.train(m, X, Y, checkpoint="/proc/run.ckpt", **TRAIN)
    unchanged(m, before)


def test_checkpoint_folder_probe_leaves_nothing_behind(tmp_path):
    fastmlp.train(model(), X, Y, checkpoint=tmp_path / "c.ckpt", **TRAIN)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.ckpt"]


def test_resume_refuses_a_checkpoint_step_beyond_the_engine_counter(tmp_path):
    path = tmp_path / "c.ckpt"
    fastmlp.train(model(), X, Y, checkpoint=path, **TRAIN)
    header, arrays = read_container(path)
    header["training"]["step"] = 2 ** 63  # digest recomputed: only the header check can see it
    write_container(path, header, arrays)
    with pytest.raises(ValueError, match=r"^checkpoint .* has a corrupt header \(step"):
        fastmlp.train(model(), X, Y, resume=path, **dict(TRAIN, epochs=2))


# ---- float hyper-parameters beyond float32 ---------------------------------------------------

@pytest.mark.parametrize("kind", ["sgd", "adagrad", "rmsprop", "adam"])
@pytest.mark.parametrize("name", ["lr", "weight_decay"])
def test_kernel_hyper_parameters_beyond_float32_are_refused(kind, name):
    p, g = [np.ones(5, np.float32)], [np.ones(5, np.float32)]
    s, s2 = [np.zeros(5, np.float32)], [np.zeros(5, np.float32)]
    kw = {"lr": 0.1, name: 1e39}
    step = {"sgd": lambda: K.sgd_step(p, g, s, **kw),
            "adagrad": lambda: K.adagrad_step(p, g, s, **kw),
            "rmsprop": lambda: K.rmsprop_step(p, g, s, **kw),
            "adam": lambda: K.adam_step(p, g, s, s2, 1, **kw)}[kind]
    with pytest.raises(ValueError, match=rf"^{name}: expected a value within float32's range"):
        step()  # wrote Inf/NaN into p
    np.testing.assert_array_equal(p[0], 1.0)


@pytest.mark.parametrize("kw,name", [
    (dict(lr=1e39), "lr"), (dict(weight_decay=1e39), "weight_decay"),
    (dict(l1=1e39), "l1"), (dict(l2=1e39), "l2"),
])
def test_train_hyper_parameters_beyond_float32_are_refused_before_training(kw, name):
    m = model()
    before = m._params.copy()
    with pytest.raises(ValueError, match=rf"^{name}: expected a value within float32's range"):
        fastmlp.train(m, X, Y, **{**TRAIN, **kw})  # diverged at step 0 with a warning
    unchanged(m, before)


def test_schedules_beyond_float32_are_refused():
    with pytest.raises(ValueError, match=r"^initial_lr: expected a value within float32's"):
        ExponentialDecay(1e39, 10, 0.5)
    m = model()
    with pytest.raises(ValueError, match=r"^lr: .* returned 1e\+39.*within float32's range"):
        fastmlp.train(m, X, Y, lr=lambda step: 1e39, **TRAIN)


def test_bn_eps_that_is_zero_in_float32_is_refused():
    with pytest.raises(ValueError, match=r"^bn_eps: expected > 0\.0 in float32"):
        fastmlp.MLP([3, 4, 2], batchnorm=True, bn_eps=1e-46)
    with pytest.raises(ValueError, match=r"^bn_eps: expected a value within float32's range"):
        fastmlp.MLP([3, 4, 2], batchnorm=True, bn_eps=1e39)


@pytest.mark.parametrize("attr, value", [("n_in", 5), ("n_out", 7), ("batchnorm", True),
                                         ("index", 3)])
def test_layer_layout_attributes_are_fixed_after_construction(attr, value):
    m = fastmlp.MLP([3, 4, 2], seed=0)
    before = getattr(m.layers[0], attr)
    with pytest.raises(AttributeError, match=rf"^layers\[0\]\.{attr}: fixed when the model"):
        setattr(m.layers[0], attr, value)
    assert getattr(m.layers[0], attr) == before
    assert m.predict(np.ones((2, 3), np.float32)).shape == (2, 2)


@pytest.mark.parametrize("attr, value, exc", [("bn_eps", None, TypeError),
                                              ("bn_eps", 1e-46, ValueError),
                                              ("bn_momentum", 5, ValueError),
                                              ("output_activation", "bogus", ValueError)])
def test_model_settings_are_checked_when_set(attr, value, exc):
    m = fastmlp.MLP([3, 4, 2], seed=0, batchnorm=True)
    before = getattr(m, attr)
    with pytest.raises(exc, match=rf"^{attr}: "):
        setattr(m, attr, value)
    assert getattr(m, attr) == before
    assert m.predict(np.ones((2, 3), np.float32)).shape == (2, 2)


def test_output_activation_and_the_output_layer_activation_are_one_setting():
    X = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    m = fastmlp.MLP([3, 4, 2], seed=0)
    m.output_activation = "softmax"
    assert m.layers[-1].activation == "softmax"
    np.testing.assert_allclose(m.predict(X).sum(axis=1), 1.0, rtol=1e-6)
    m.layers[-1].activation = "sigmoid"
    assert m.output_activation == "sigmoid"
    out = m.predict(X)
    assert ((out > 0) & (out < 1)).all() and not np.allclose(out.sum(axis=1), 1.0)


def test_clip_value_that_is_zero_in_float32_is_refused():
    p, g = np.ones(4, np.float32), np.ones(4, np.float32)
    with pytest.raises(ValueError, match=r"^clip_value: expected > 0.0 in float32"):
        K.sgd_step([p], [g], None, 0.1, clip_value=1e-46)
    assert (p == 1).all()
    with pytest.raises(ValueError, match=r"^clip_value: expected > 0.0 in float32"):
        fastmlp.train(fastmlp.MLP([3, 2], seed=0), np.ones((4, 3)), [0, 1, 0, 1],
                      loss="cross_entropy", epochs=1, verbose=0, clip_value=1e-46)
