"""fastmlp.save / fastmlp.load (format version 2): exact round trips of everything a model
holds, version 1 files written by fastmlp 0.1's first format, and clear errors for files that
are damaged, altered, foreign or from a newer fastmlp."""
from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest

import fastmlp
from fastmlp.io import MAX_HEADER_BYTES

from helpers import available_isas, isa

DATA = os.path.join(os.path.dirname(__file__), "data")


def trained_model(**kw):
    rng = np.random.default_rng(0)
    model = fastmlp.MLP([5, 17, 3, 2], activation=["leaky_relu", "selu"], alpha=[0.2, None],
                        batchnorm=[True, False, False], dropout=[0.25, 0.0],
                        output_activation="softmax", seed=3, **kw)
    X = rng.standard_normal((64, 5)).astype(np.float32) * 3 + 1
    y = rng.integers(0, 2, 64)
    model.fit_input_scaling(X)
    fastmlp.train(model, X, y, loss="cross_entropy", epochs=2, batch_size=16, verbose=0, seed=0)
    model.layers[2].trainable = False
    model.metadata = {"task": "classification", "classes": ["cat", "dog"],
                      "feature_names": list("abcde"), "nested": {"lr": 1e-3, "n": [1, 2]}}
    return model, X


def test_round_trip_keeps_everything(tmp_path):
    model, X = trained_model()
    path = tmp_path / "m.fastmlp"
    fastmlp.save(model, path)
    back = fastmlp.load(path)
    for a, b in zip(model.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.input_mean, model.input_mean)
    np.testing.assert_array_equal(back.input_scale, model.input_scale)
    assert back.metadata == model.metadata
    assert [l.trainable for l in back.layers] == [True, True, False]
    assert [(l.activation, l.alpha, l.batchnorm, l.dropout) for l in back.layers] == \
        [(l.activation, l.alpha, l.batchnorm, l.dropout) for l in model.layers]
    np.testing.assert_array_equal(back.predict(X), model.predict(X))


def test_model_without_scaling_or_metadata(tmp_path):
    model = fastmlp.MLP([3, 1], seed=0)
    fastmlp.save(model, tmp_path / "m.npz")
    back = fastmlp.load(tmp_path / "m.npz")
    assert back.input_mean is None and back.input_scale is None and back.metadata == {}


def test_version_1_files_still_load():
    """tests/data/model_v1.npz was written by the version-1 save (fastmlp 0.1.0, commit
    34dd0cb): batch norm with non-trivial statistics, elu alpha, a frozen layer, softmax."""
    model = fastmlp.load(os.path.join(DATA, "model_v1.npz"))
    expected = np.load(os.path.join(DATA, "model_v1_expected.npz"))
    # The expected outputs were computed when the file was written (AVX2 GEMM, libm tanh).
    # What is tested is the loading, not the arithmetic, which has changed by an ulp or two
    # since (vector tanh/sigmoid); on either path the outputs agree to float32 rounding.
    for path in available_isas():
        with isa(path):
            np.testing.assert_allclose(model.predict(expected["X"]), expected["y"],
                                       rtol=1e-6, atol=1e-7)
    assert model.metadata == {} and model.input_mean is None
    assert [l.trainable for l in model.layers] == [True, True, False]
    assert model.layers[0].alpha == pytest.approx(0.7)


def _rewrite(src, dst, change):
    """Copies the .npz at src to dst with change(name, bytes) -> bytes | None applied."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = change(item.filename, zin.read(item.filename))
            if data is not None:
                zout.writestr(item.filename, data)


def _header_bytes(meta: dict) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.frombuffer(json.dumps(meta).encode(), np.uint8))
    return buf.getvalue()


def _edited_header(tmp_path, edit):
    model, _ = trained_model()
    good = tmp_path / "good.npz"
    fastmlp.save(model, good)
    meta = json.loads(np.load(good)["fastmlp"].tobytes())
    edit(meta)
    bad = tmp_path / "bad.npz"
    _rewrite(good, bad, lambda name, data: _header_bytes(meta) if name == "fastmlp.npy"
             else data)
    return bad


@pytest.mark.parametrize("edit, match", [
    (lambda m: m.update(version=3), r"format version 3; this fastmlp reads versions 1-2; "
                                    r"upgrade fastmlp"),
    (lambda m: m.update(version="2"), r"format version '2'"),
    (lambda m: m.update(format="keras"), r"holds 'keras', not a fastmlp.MLP"),
    (lambda m: m.pop("sizes"), r"corrupt header \(missing or malformed entry 'sizes'\)"),
    (lambda m: m["layers"][0].pop("activation"), r"missing or malformed entry 'activation'"),
    (lambda m: m["layers"].pop(), r"3 layers expected from sizes, header lists 2"),
    (lambda m: m["layers"][0].update(activation="swish"), r"invalid model .*swish"),
    (lambda m: m.update(sizes=[5, 17, 4, 2]), r"layers/1/W has shape \(17, 3\), expected "
                                              r"\(17, 4\)"),
    (lambda m: m.update(metadata=[1, 2]), r"metadata that is not a JSON object"),
    (lambda m: m.update(input={"mean": True, "scale": True, "x": 1}) or
     m.update(sizes=[5, 17, 3, 2]), None),  # unknown extra keys are ignored
])
def test_altered_headers_are_refused_clearly(tmp_path, edit, match):
    bad = _edited_header(tmp_path, edit)
    if match is None:
        fastmlp.load(bad)
        return
    with pytest.raises(ValueError, match=match):
        fastmlp.load(bad)


def test_array_with_wrong_dtype_or_missing_is_refused(tmp_path):
    model, _ = trained_model()
    good = tmp_path / "good.npz"
    fastmlp.save(model, good)

    def as_float64(name, data):
        if name != "layers/1/W.npy":
            return data
        buf = io.BytesIO()
        np.save(buf, np.load(io.BytesIO(data)).astype(np.float64))
        return buf.getvalue()
    _rewrite(good, tmp_path / "f64.npz", as_float64)
    with pytest.raises(ValueError, match=r"layers/1/W has dtype float64, expected float32"):
        fastmlp.load(tmp_path / "f64.npz")
    _rewrite(good, tmp_path / "gone.npz", lambda n, d: None if n == "input/scale.npy" else d)
    with pytest.raises(ValueError, match=r"lacks the array input/scale"):
        fastmlp.load(tmp_path / "gone.npz")


def test_object_arrays_are_never_unpickled(tmp_path):
    model, _ = trained_model()
    good = tmp_path / "good.npz"
    fastmlp.save(model, good)

    def pickled(name, data):
        if name != "layers/0/W.npy":
            return data
        buf = io.BytesIO()
        # Big enough to pass the byte-count check, so numpy's own refusal is what stops it.
        np.save(buf, np.array([{"evil": i} for i in range(100)], dtype=object),
                allow_pickle=True)
        return buf.getvalue()
    _rewrite(good, tmp_path / "obj.npz", pickled)
    with pytest.raises(ValueError, match=r"layers/0/W cannot be read safely \(Object arrays"):
        fastmlp.load(tmp_path / "obj.npz")


def test_truncated_files_are_refused(tmp_path):
    model, _ = trained_model()
    good = tmp_path / "good.npz"
    fastmlp.save(model, good)
    data = good.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="not a fastmlp model file|damaged"):
            fastmlp.load(bad)


def test_oversized_header_is_refused_before_reading(tmp_path):
    model, _ = trained_model()
    good = tmp_path / "good.npz"
    fastmlp.save(model, good)
    huge = np.zeros(MAX_HEADER_BYTES + 1, np.uint8)
    buf = io.BytesIO()
    np.save(buf, huge)
    _rewrite(good, tmp_path / "huge.npz",
             lambda n, d: buf.getvalue() if n == "fastmlp.npy" else d)
    with pytest.raises(ValueError, match="header over"):
        fastmlp.load(tmp_path / "huge.npz")


def test_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        fastmlp.load(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="not a fastmlp model file"):
        fastmlp.load(tmp_path / "text.npz")
    np.save(tmp_path / "one.npy", np.ones(3))
    with pytest.raises(ValueError, match="single .npy array"):
        fastmlp.load(tmp_path / "one.npy")
    np.savez(tmp_path / "other.npz", X=np.ones(3))
    with pytest.raises(ValueError, match="not a fastmlp model"):
        fastmlp.load(tmp_path / "other.npz")


def test_metadata_must_be_json(tmp_path):
    model = fastmlp.MLP([2, 1], seed=0)
    model.metadata = {"when": object()}
    with pytest.raises(ValueError, match="model.metadata: expected JSON-serialisable"):
        fastmlp.save(model, tmp_path / "m.npz")
    assert not os.path.exists(tmp_path / "m.npz")


def test_failed_save_keeps_the_previous_file(tmp_path):
    model = fastmlp.MLP([2, 1], seed=0)
    path = tmp_path / "m.npz"
    fastmlp.save(model, path)
    before = path.read_bytes()
    model.metadata = {"bad": {1, 2}}
    with pytest.raises(ValueError):
        fastmlp.save(model, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]  # no temporary file left behind


def test_read_header_without_building_the_model(tmp_path):
    model, _ = trained_model()
    fastmlp.save(model, tmp_path / "m.npz")
    header = fastmlp.io.read_header(tmp_path / "m.npz")
    assert (header["format"], header["version"]) == ("fastmlp.MLP", 2)
    assert header["sizes"] == model.sizes and header["metadata"] == model.metadata
    assert header["input"] == {"mean": True, "scale": True}
    assert fastmlp.io.read_header(os.path.join(DATA, "model_v1.npz"))["version"] == 1
    np.savez(tmp_path / "other.npz", X=np.ones(3))
    with pytest.raises(ValueError, match="not a fastmlp model"):
        fastmlp.io.read_header(tmp_path / "other.npz")


def test_pickled_model_predicts_and_trains():
    """Pickling (scikit-learn's convention for estimators holding an MLP) gives arrays whose
    dtype objects are equal to, not identical with, NumPy's cached float32: the bindings must
    compare dtypes by equivalence."""
    import pickle
    model, X = trained_model()
    back = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
    assert back.metadata == model.metadata
    y = np.random.default_rng(1).integers(0, 2, len(X))
    fastmlp.train(back, X, y, loss="cross_entropy", epochs=1, verbose=0, seed=0)
    fastmlp.train(model, X, y, loss="cross_entropy", epochs=1, verbose=0, seed=0)
    for a, b in zip(model.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_engine_refuses_byte_swapped_buffers():
    from fastmlp import _core
    model = fastmlp.MLP([3, 4, 2], seed=0)
    with pytest.raises(TypeError, match="params: expected float32, got dtype >f4"):
        _core.Network(model._layer_specs(), model._params.astype(">f4"), model._stats)
