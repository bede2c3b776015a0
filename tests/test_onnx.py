"""fastmlp.export_onnx: the ONNX graph run in onnxruntime matches model.predict (float32, ~1e-5
relative) for every activation, batch norm with non-trivial statistics, odd sizes, deep and
single-layer models and the probability heads; the file is valid, atomic, and well described."""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import fastmlp  # noqa: E402
from fastmlp.onnx_export import (DEFAULT_OPSET, GELU_OPSET, build_onnx_model,  # noqa: E402
                                 export_onnx)
from fastmlp.reference.activations import SELU_ALPHA, SELU_SCALE  # noqa: E402
from helpers import assert_close, rand  # noqa: E402

ACTIVATIONS = ("identity", "relu", "leaky_relu", "elu", "selu", "sigmoid", "tanh", "gelu")
# Different GEMM accumulation orders (fastmlp's tiles vs onnxruntime's) round differently; a few
# float32 ulps of the largest term, hence the small absolute floor beside the relative 1e-5.
RTOL, ATOL = 1e-5, 2e-6


def _run(model_or_path, X, *, output="predict", opset=DEFAULT_OPSET) -> np.ndarray:
    """Runs X through the exported graph (a path, or the model exported in memory)."""
    if isinstance(model_or_path, fastmlp.MLP):
        model_or_path = build_onnx_model(model_or_path, output=output,
                                         opset=opset).SerializeToString()
    session = ort.InferenceSession(model_or_path, providers=["CPUExecutionProvider"])
    (y,) = session.run(["output"], {"input": X})
    return y


def _randomise_batchnorm(model, rng) -> None:
    """Running statistics and affine parameters far from their (0, 1) initial values, so a
    graph that ignored or misordered them would fail."""
    for layer in model.layers:
        if layer.batchnorm:
            layer.gamma = rand(rng, layer.n_out) * 0.5 + 1.2
            layer.beta = rand(rng, layer.n_out)
            layer.running_mean = rand(rng, layer.n_out, scale=2.0)
            layer.running_var = (rng.random(layer.n_out) * 3 + 0.2).astype(np.float32)


def _randomise_biases(model, rng) -> None:
    for layer in model.layers:
        if not layer.batchnorm:
            layer.b = rand(rng, layer.n_out, scale=0.5)


def _inputs(rng, n, n_inputs):
    return rand(rng, n, n_inputs, scale=1.5)


# ---- every activation ----------------------------------------------------------------------

@pytest.mark.parametrize("act", ACTIVATIONS)
def test_every_activation_hidden_and_output(act):
    rng = np.random.default_rng(1)
    # Non-default alphas catch an exporter that drops the attribute.
    alpha = {"leaky_relu": 0.2, "elu": 0.7}.get(act)
    model = fastmlp.MLP([3, 17, 9, 4], activation=act, output_activation=act, alpha=alpha,
                        seed=2)
    _randomise_biases(model, rng)
    X = _inputs(rng, 257, 3)
    assert_close(_run(model, X), model.predict(X), RTOL, ATOL, name=act)


def test_softmax_output_matches_predict():
    rng = np.random.default_rng(3)
    model = fastmlp.MLP([17, 9, 3], activation="tanh", output_activation="softmax", seed=4)
    _randomise_biases(model, rng)
    X = _inputs(rng, 257, 17)
    y = _run(model, X)
    assert_close(y, model.predict(X), RTOL, ATOL, name="softmax output")
    assert_close(y.sum(axis=1), np.ones(257), 1e-6, 1e-6, name="rows sum to 1")


@pytest.mark.parametrize("opset", [DEFAULT_OPSET, GELU_OPSET])
def test_gelu_is_exact_erf_form_at_every_opset(opset):
    rng = np.random.default_rng(5)
    model = fastmlp.MLP([3, 17, 3], activation="gelu", seed=6)
    _randomise_biases(model, rng)
    X = _inputs(rng, 65, 3)
    ops = [n.op_type for n in build_onnx_model(model, opset=opset).graph.node]
    # Below opset 20 there is no Gelu operator: the Erf formula stands in for it.
    assert ("Gelu" in ops) == (opset >= GELU_OPSET) and ("Erf" in ops) == (opset < GELU_OPSET)
    assert_close(_run(model, X, opset=opset), model.predict(X), RTOL, ATOL, name="gelu")


def test_activation_constants_are_fastmlps():
    model = fastmlp.MLP([3, 5, 5, 5, 2], activation=["selu", "leaky_relu", "elu"],
                        alpha=[None, 0.3, 0.6], seed=0)
    attrs = {n.op_type: {a.name: a.f for a in n.attribute}
             for n in build_onnx_model(model).graph.node}
    f32 = lambda x: float(np.float32(x))  # noqa: E731  (attributes are stored as float32)
    assert attrs["Selu"] == {"alpha": f32(SELU_ALPHA), "gamma": f32(SELU_SCALE)}
    assert attrs["LeakyRelu"] == {"alpha": f32(0.3)}
    assert attrs["Elu"] == {"alpha": f32(0.6)}


# ---- batch norm -----------------------------------------------------------------------------

def test_batchnorm_with_random_running_statistics():
    rng = np.random.default_rng(7)
    # Batch norm on the output layer too (the list form), and a non-default epsilon.
    model = fastmlp.MLP([3, 17, 9, 3], activation=["relu", "elu"], batchnorm=[True, True, True],
                        output_activation="sigmoid", bn_eps=1e-2, seed=8)
    _randomise_batchnorm(model, rng)
    X = _inputs(rng, 257, 3)
    proto = build_onnx_model(model)
    bn = [n for n in proto.graph.node if n.op_type == "BatchNormalization"]
    assert len(bn) == 3
    assert all(a.f == np.float32(1e-2) for n in bn for a in n.attribute if a.name == "epsilon")
    # Batch-norm layers have no bias: their Gemm has two inputs.
    assert all(len(n.input) == 2 for n in proto.graph.node if n.op_type == "Gemm")
    assert_close(_run(model, X), model.predict(X), RTOL, ATOL, name="batch norm")


def test_batchnorm_after_training_and_dropout_emits_nothing():
    rng = np.random.default_rng(9)
    model = fastmlp.MLP([7, 17, 15, 3], activation="relu", batchnorm=True, dropout=0.3, seed=10)
    X = _inputs(rng, 96, 7) + 1.5  # shifted inputs: the running mean moves away from 0
    y = rng.integers(0, 3, 96)
    fastmlp.train(model, X, y, loss="cross_entropy", epochs=3, batch_size=16, verbose=0, seed=1)
    assert not np.allclose(model.layers[0].running_mean, 0)
    ops = [n.op_type for n in build_onnx_model(model).graph.node]
    assert "Dropout" not in ops and ops.count("BatchNormalization") == 2
    assert_close(_run(model, X), model.predict(X), RTOL, ATOL, name="trained batch norm")


# ---- shapes and depths -----------------------------------------------------------------------

@pytest.mark.parametrize("n_in", [1, 3, 17])
@pytest.mark.parametrize("n_out", [1, 3, 17])
def test_odd_sizes_and_batches(n_in, n_out):
    rng = np.random.default_rng(100 * n_in + n_out)
    model = fastmlp.MLP([n_in, 9, n_out], activation="tanh", seed=n_in + n_out)
    _randomise_biases(model, rng)
    session = build_onnx_model(model).SerializeToString()
    for batch in (1, 257):  # one file serves every batch size (symbolic batch dimension)
        X = _inputs(rng, batch, n_in)
        assert_close(_run(session, X), model.predict(X), RTOL, ATOL,
                     name=f"{n_in}->{n_out}, batch {batch}")


def test_single_layer_model():
    rng = np.random.default_rng(11)
    model = fastmlp.MLP([17, 3], seed=12)
    _randomise_biases(model, rng)
    X = _inputs(rng, 9, 17)
    assert [n.op_type for n in build_onnx_model(model).graph.node] == ["Gemm"]
    assert_close(_run(model, X), model.predict(X), RTOL, ATOL, name="single layer")


def test_deep_mixed_model():
    rng = np.random.default_rng(13)
    acts = ["relu", "gelu", "selu", "leaky_relu", "elu", "tanh", "sigmoid"]
    model = fastmlp.MLP([17, 15, 9, 16, 8, 7, 3, 17, 3], activation=acts,
                        batchnorm=[True, False, True, False, True, False, True, False],
                        dropout=0.2, output_activation="softmax", seed=14)
    _randomise_batchnorm(model, rng)
    _randomise_biases(model, rng)
    X = _inputs(rng, 257, 17)
    assert_close(_run(model, X), model.predict(X), RTOL, ATOL, name="deep model")


# ---- output heads ----------------------------------------------------------------------------

def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_probabilities_of_a_cross_entropy_classifier_match_predict_proba():
    rng = np.random.default_rng(15)
    model = fastmlp.MLP([3, 17, 3], seed=16)  # output_activation "identity": logits
    X = _inputs(rng, 120, 3)
    fastmlp.train(model, X, rng.integers(0, 3, 120), loss="cross_entropy", epochs=2,
                  verbose=0, seed=2)
    p = _run(model, X, output="probabilities")
    assert_close(p, model.predict_proba(X), RTOL, ATOL, name="probabilities")
    assert_close(_run(model, X, output="softmax"), p, 0, 0, name="softmax head")
    assert_close(_run(model, X), model.predict(X), RTOL, ATOL, name="logits")


def test_probabilities_of_one_logit_is_its_sigmoid():
    rng = np.random.default_rng(17)
    model = fastmlp.MLP([3, 9, 1], seed=18)
    _randomise_biases(model, rng)
    X = _inputs(rng, 257, 3)
    z = model.predict(X).astype(np.float64)
    assert_close(_run(model, X, output="probabilities"), 1 / (1 + np.exp(-z)), RTOL, ATOL,
                 name="sigmoid of one logit")


def test_sigmoid_head_for_multilabel_logits():
    rng = np.random.default_rng(19)
    model = fastmlp.MLP([3, 9, 17], seed=20)
    _randomise_biases(model, rng)
    X = _inputs(rng, 33, 3)
    z = model.predict(X).astype(np.float64)
    assert_close(_run(model, X, output="sigmoid"), 1 / (1 + np.exp(-z)), RTOL, ATOL,
                 name="multi-label sigmoid")
    assert_close(_run(model, X, output="softmax"), _softmax(z), RTOL, ATOL, name="softmax")


@pytest.mark.parametrize("act", ["softmax", "sigmoid"])
def test_probabilities_of_a_model_that_outputs_them_is_predict(act):
    rng = np.random.default_rng(21)
    model = fastmlp.MLP([3, 9, 3], output_activation=act, seed=22)
    _randomise_biases(model, rng)
    X = _inputs(rng, 17, 3)
    ops = [n.op_type for n in build_onnx_model(model, output="probabilities").graph.node]
    assert ops.count(act.capitalize()) == 1  # the model's own, no second one on top
    assert_close(_run(model, X, output="probabilities"), model.predict(X), RTOL, ATOL,
                 name=f"{act} probabilities")
    assert_close(_run(model, X, output=act), model.predict(X), RTOL, ATOL, name=act)


def test_probability_heads_rejected_where_they_would_be_wrong():
    with pytest.raises(ValueError, match="output_activation is 'tanh'.*output='predict'"):
        build_onnx_model(fastmlp.MLP([3, 3], output_activation="tanh"), output="probabilities")
    with pytest.raises(ValueError, match="already ends in 'softmax'"):
        build_onnx_model(fastmlp.MLP([3, 3], output_activation="softmax"), output="sigmoid")


# ---- input standardisation -------------------------------------------------------------------

def _standardisation(rng, n):
    return rand(rng, n, scale=2.0), (rng.random(n) * 3 + 0.25).astype(np.float32)


def test_input_standardisation_prepends_sub_and_div():
    rng = np.random.default_rng(23)
    model = fastmlp.MLP([17, 9, 3], activation="relu", seed=24)
    _randomise_biases(model, rng)
    mean, scale = _standardisation(rng, 17)
    X = _inputs(rng, 65, 17) * scale + mean
    expected = model.predict((X - mean) / scale)  # standardised by hand, before they are set
    model.input_mean, model.input_scale = mean, scale
    proto = build_onnx_model(model)
    assert [n.op_type for n in proto.graph.node][:2] == ["Sub", "Div"]
    assert_close(_run(model, X), expected, RTOL, ATOL, name="standardised input")


def test_input_standardisation_matches_predict():
    rng = np.random.default_rng(25)
    model = fastmlp.MLP([3, 17, 3], activation="elu", batchnorm=True, seed=26)
    _randomise_batchnorm(model, rng)
    model.input_mean, model.input_scale = _standardisation(rng, 3)
    X = _inputs(rng, 257, 3) * 3 + 5
    assert_close(_run(model, X), model.predict(X), RTOL, ATOL, name="predict standardises")


# ---- the file --------------------------------------------------------------------------------

def test_file_is_valid_and_described(tmp_path):
    rng = np.random.default_rng(27)
    model = fastmlp.MLP([3, 17, 3], activation="gelu", batchnorm=True, seed=28)
    _randomise_batchnorm(model, rng)
    model.metadata = {"classes": ["a", "b", "c"]}
    path = tmp_path / "model.onnx"
    export_onnx(model, path)
    onnx.checker.check_model(str(path), full_check=True)  # with strict shape inference
    proto = onnx.load(str(path))
    assert proto.producer_name == "fastmlp" and proto.producer_version == fastmlp.__version__
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", DEFAULT_OPSET)]
    assert proto.ir_version == 7  # the oldest that carries opset 13: old runtimes load it
    assert "sizes [3, 17, 3]" in proto.doc_string and proto.graph.doc_string
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["fastmlp.sizes"] == "3,17,3"
    assert json.loads(props["fastmlp.metadata"]) == {"classes": ["a", "b", "c"]}
    for value, name, width in ((proto.graph.input[0], "input", 3),
                               (proto.graph.output[0], "output", 3)):
        t = value.type.tensor_type
        assert value.name == name and t.elem_type == onnx.TensorProto.FLOAT
        assert [d.dim_param or d.dim_value for d in t.shape.dim] == ["batch", width]
    X = _inputs(rng, 3, 3)
    assert_close(_run(str(path), X), model.predict(X), RTOL, ATOL, name="from file")


def test_export_replaces_atomically_and_failures_leave_the_file(tmp_path):
    rng = np.random.default_rng(29)
    path = tmp_path / "model.onnx"
    first, second = fastmlp.MLP([3, 3], seed=1), fastmlp.MLP([3, 5, 3], seed=2)
    export_onnx(first, str(path))
    export_onnx(second, path)  # replaces the first
    with pytest.raises(ValueError):
        export_onnx(first, path, output="nonsense")
    assert os.listdir(tmp_path) == ["model.onnx"]  # no temporary file left behind
    X = _inputs(rng, 3, 3)
    assert_close(_run(str(path), X), second.predict(X), RTOL, ATOL, name="second model")


def test_argument_errors(tmp_path):
    model = fastmlp.MLP([3, 3])
    with pytest.raises(TypeError, match="model: expected a fastmlp.MLP, got dict"):
        export_onnx({}, tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="output: expected one of 'predict'.*got 'proba'"):
        export_onnx(model, tmp_path / "m.onnx", output="proba")
    for bad in (12, 10**6, True, "13"):
        with pytest.raises(ValueError, match=r"opset: expected an integer in \[13, "):
            export_onnx(model, tmp_path / "m.onnx", opset=bad)
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        export_onnx(model, tmp_path / "missing" / "m.onnx")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        export_onnx(model, tmp_path)
    with pytest.raises(TypeError, match="path: expected a file name"):
        export_onnx(model, 3)
    assert os.listdir(tmp_path) == []


def test_unwritable_directory(tmp_path, monkeypatch):
    """Permission bits do not stop root (CI runs as root), so the access check is simulated."""
    import fastmlp.onnx_export as exporter
    monkeypatch.setattr(exporter.os, "access", lambda path, mode: False)
    with pytest.raises(PermissionError, match="is not writable"):
        export_onnx(fastmlp.MLP([3, 3]), tmp_path / "m.onnx")
    assert os.listdir(tmp_path) == []


def test_missing_onnx_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'fastmlp\[onnx\]'"):
        export_onnx(fastmlp.MLP([3, 3]), tmp_path / "m.onnx")
