"""fastmlp.export_onnx: writes a fastmlp.MLP as an ONNX model for inference anywhere
(onnxruntime, TensorRT, OpenVINO, browsers) without fastmlp installed.

The graph is the inference-mode forward pass, one ONNX node (or a few) per step:
  input (batch, n_inputs) float32
  -> [Sub input_mean] -> [Div input_scale]                  only where the model has them
  per layer: Gemm (x @ W [+ b]; W is (in, out), so transB=0)
             -> [BatchNormalization with running statistics and model.bn_eps]
             -> activation                                  nothing for identity
             (dropout is the identity at inference: no node)
  -> [Softmax / Sigmoid head]                               see `output`
  -> output (batch, n_outputs) float32
The batch dimension is symbolic ("batch"). onnx is imported only when export_onnx is called, so
`import fastmlp` never needs it; it is the optional extra fastmlp[onnx].
"""
from __future__ import annotations

import json
import math
import numbers
import os

import numpy as np

from ._atomic import writable_target, write_atomic
from .model import MLP
from .reference.activations import SELU_ALPHA, SELU_SCALE

# Opset 13 (ONNX 1.8, 2020) is the oldest opset with every operator this exporter emits in its
# current form (Softmax over one axis, Gemm with an optional C), so it loads in the widest range
# of runtimes (onnxruntime >= 1.6, TensorRT >= 8.0; the file's IR version is the oldest that can
# carry the opset, 7 for 13). Gelu arrived in opset 20; below that it is built from Erf, which
# computes the same exact (erf) GELU.
DEFAULT_OPSET = 13
MIN_OPSET = 13
GELU_OPSET = 20
OUTPUTS = ("predict", "probabilities", "softmax", "sigmoid")
# A protobuf message cannot exceed 2 GiB; the weights are stored inside the model message.
_MAX_PROTO_BYTES = 2**31 - 2**20
_INSTALL_HINT = "pip install 'fastmlp[onnx]'"


def _import_onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as e:
        raise ImportError(f"fastmlp.export_onnx needs the onnx package, which is not installed "
                          f"({e}); install it with: {_INSTALL_HINT}") from e
    return onnx, helper, numpy_helper


def _check_model(model) -> None:
    if not isinstance(model, MLP):
        raise TypeError(f"model: expected a fastmlp.MLP, got {type(model).__name__}")


def _head(model: MLP, output: str) -> str | None:
    """The extra node after the model's own output activation: None, "Softmax" or "Sigmoid"."""
    act = model.output_activation
    if output == "predict":
        return None
    probs = {"softmax": "Softmax", "sigmoid": "Sigmoid"}
    if act in probs:
        # Already probabilities: "probabilities" adds nothing; a different head would be wrong.
        if output in ("probabilities", act):
            return None
        raise ValueError(f"output: {output!r} asks for a {output} over logits, but the model "
                         f"already ends in {act!r}; use output='predict' or 'probabilities'")
    if act != "identity":
        raise ValueError(f"output: {output!r} needs a model that outputs logits "
                         f"(output_activation 'identity', as trained with a fused cross-entropy "
                         f"loss) or probabilities ('softmax', 'sigmoid'); this model's "
                         f"output_activation is {act!r}; use output='predict'")
    if output == "probabilities":
        return "Sigmoid" if model.n_outputs == 1 else "Softmax"
    return probs[output]


def _standardisation(model: MLP, name: str):
    """model.input_mean / input_scale as float32 (n_inputs,), or None where unset (the model's
    setters have checked shape, finiteness and scale > 0)."""
    value = getattr(model, name, None)
    return None if value is None else np.asarray(value, dtype=np.float32)


def _check_path(path) -> str:
    return writable_target(path, "model.onnx")


def _check_opset(opset, onnx) -> int:
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, (bool, np.bool_)) or not isinstance(opset, numbers.Integral) or \
            not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset: expected an integer in [{MIN_OPSET}, {newest}] (the newest "
                         f"this onnx {onnx.__version__} knows), got {opset!r}; the default "
                         f"{DEFAULT_OPSET} loads in the most runtimes")
    return int(opset)


class _Graph:
    """Collects nodes and initializers; each add_* returns the name of its output tensor."""

    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers = [], []

    def const(self, name: str, value) -> str:
        arr = np.ascontiguousarray(value, dtype=np.float32)
        self.initializers.append(self.numpy_helper.from_array(arr, name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        self.nodes.append(self.helper.make_node(op, inputs, [name], name=name, **attrs))
        return name


def _activation(g: _Graph, x: str, act: str, alpha: float, prefix: str, opset: int) -> str:
    """Appends act(x); the constants are fastmlp's (reference/activations.py), set explicitly
    rather than left to each runtime's defaults."""
    if act == "identity":
        return x
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}
    if act in simple:
        return g.node(simple[act], [x], f"{prefix}.{act}")
    if act == "leaky_relu":
        return g.node("LeakyRelu", [x], f"{prefix}.leaky_relu", alpha=float(alpha))
    if act == "elu":
        return g.node("Elu", [x], f"{prefix}.elu", alpha=float(alpha))
    if act == "selu":
        # ONNX's defaults are the same Klambauer et al. constants rounded to float32.
        return g.node("Selu", [x], f"{prefix}.selu", alpha=SELU_ALPHA, gamma=SELU_SCALE)
    if act == "softmax":
        return g.node("Softmax", [x], f"{prefix}.softmax", axis=-1)
    if act == "gelu":
        if opset >= GELU_OPSET:
            return g.node("Gelu", [x], f"{prefix}.gelu", approximate="none")
        # 0.5 * x * (1 + erf(x / sqrt(2))), the exact form fastmlp computes.
        scaled = g.node("Mul", [x, g.const(f"{prefix}.gelu.inv_sqrt2", 1 / math.sqrt(2))],
                        f"{prefix}.gelu.scaled")
        erf = g.node("Erf", [scaled], f"{prefix}.gelu.erf")
        one_plus = g.node("Add", [erf, g.const(f"{prefix}.gelu.one", 1.0)],
                          f"{prefix}.gelu.one_plus")
        half_x = g.node("Mul", [x, g.const(f"{prefix}.gelu.half", 0.5)], f"{prefix}.gelu.half_x")
        return g.node("Mul", [half_x, one_plus], f"{prefix}.gelu")
    raise ValueError(f"layer {prefix}: activation {act!r} has no ONNX translation")


def export_onnx(model: MLP, path, *, output: str = "predict", opset: int = DEFAULT_OPSET) -> None:
    """Writes model to path as an ONNX model (the file is replaced atomically).

    The graph takes "input", float32 (batch, n_inputs), and returns "output", float32
    (batch, n_outputs); batch is a symbolic dimension. Inference mode: batch norm uses the
    running statistics, dropout is omitted. A model with input_mean / input_scale set computes
    (input - input_mean) / input_scale first, as predict does.

    output: what the graph returns.
        "predict" (default): exactly model.predict(X), output activation included.
        "probabilities": for a model that outputs logits (output_activation "identity", as
            trained with loss="cross_entropy" or "binary_cross_entropy"): Softmax over the last
            axis, or Sigmoid when the model has a single output. A model ending in "softmax" or
            "sigmoid" already outputs probabilities and gets no extra node. One column per
            output (a single sigmoid gives p, not predict_proba's two columns [1 - p, p]).
        "softmax" / "sigmoid": that head over the logits of an "identity" model, chosen
            explicitly; "sigmoid" is the one for multi-label models trained with
            binary_cross_entropy on several outputs.
    opset: ONNX operator set, default 13 for the widest runtime support; 20 or later emits
        the Gelu operator instead of the equivalent Erf formula.

    Raises TypeError for a model that is not a fastmlp.MLP, ValueError for an unknown output or
    opset, FileNotFoundError / PermissionError / IsADirectoryError for a path that cannot be
    written, ImportError when onnx is not installed (pip install 'fastmlp[onnx]').
    """
    _check_model(model)
    path = _check_path(path)
    proto = build_onnx_model(model, output=output, opset=opset)
    data = proto.SerializeToString()
    write_atomic(path, lambda f: f.write(data))


def build_onnx_model(model: MLP, *, output: str = "predict", opset: int = DEFAULT_OPSET):
    """The onnx.ModelProto that export_onnx writes (same arguments, no file), already checked
    with onnx.checker. For use in memory: onnxruntime.InferenceSession(
    build_onnx_model(m).SerializeToString())."""
    _check_model(model)
    if not isinstance(output, str) or output not in OUTPUTS:
        raise ValueError(f"output: expected one of {', '.join(map(repr, OUTPUTS))}, "
                         f"got {output!r}")
    head = _head(model, output)
    onnx, helper, numpy_helper = _import_onnx()
    opset = _check_opset(opset, onnx)
    nbytes = 4 * (model._params.size + model._stats.size)
    if nbytes > _MAX_PROTO_BYTES:
        raise ValueError(f"model: {nbytes / 2**30:.1f} GiB of weights exceed the 2 GiB limit "
                         f"of one ONNX (protobuf) file; this exporter does not write external "
                         f"data files")

    g = _Graph(helper, numpy_helper)
    x = "input"
    mean = _standardisation(model, "input_mean")
    scale = _standardisation(model, "input_scale")
    if mean is not None:
        x = g.node("Sub", [x, g.const("input_mean", mean)], "standardise.sub_mean")
    if scale is not None:
        # Div, not Mul by 1 / scale: the same rounding as predict's (X - mean) / scale.
        x = g.node("Div", [x, g.const("input_scale", scale)], "standardise.div_scale")

    for layer in model.layers:
        p = f"layer{layer.index}"
        gemm_in = [x, g.const(f"{p}.W", layer.W)]
        if not layer.batchnorm:  # batch-norm layers have no bias (beta shifts instead)
            gemm_in.append(g.const(f"{p}.b", layer.b))
        x = g.node("Gemm", gemm_in, f"{p}.gemm")
        if layer.batchnorm:
            x = g.node("BatchNormalization",
                       [x, g.const(f"{p}.gamma", layer.gamma), g.const(f"{p}.beta", layer.beta),
                        g.const(f"{p}.running_mean", layer.running_mean),
                        g.const(f"{p}.running_var", layer.running_var)],
                       f"{p}.batchnorm", epsilon=float(model.bn_eps))
        x = _activation(g, x, layer.activation, layer.alpha, p, opset)
    if head is not None:
        x = g.node(head, [x], f"head.{head.lower()}",
                   **({"axis": -1} if head == "Softmax" else {}))
    # x is always the last node's output: rename it to the graph's output name.
    assert g.nodes[-1].output[0] == x
    g.nodes[-1].output[0] = "output"

    from . import __version__
    f32 = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        g.nodes, "fastmlp_mlp",
        [helper.make_tensor_value_info("input", f32, ["batch", model.n_inputs])],
        [helper.make_tensor_value_info("output", f32, ["batch", model.n_outputs])],
        initializer=g.initializers,
        doc_string=f"fastmlp.MLP {repr(model)}")
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(
        graph, opset_imports=opsets, producer_name="fastmlp", producer_version=__version__,
        # The oldest IR version that can carry this opset, so older runtimes accept the file.
        ir_version=helper.find_min_ir_version_for(opsets),
        doc_string=(f"fastmlp.MLP with sizes {model.sizes}, output_activation "
                    f"{model.output_activation!r}; output={output!r}: "
                    + {None: "the graph computes model.predict",
                       "Softmax": "softmax over the last axis of the model's logits",
                       "Sigmoid": "sigmoid of the model's logits"}[head]))
    props = {"fastmlp.sizes": ",".join(map(str, model.sizes)),
             "fastmlp.output_activation": model.output_activation, "fastmlp.output": output}
    metadata = getattr(model, "metadata", None)
    if metadata:  # the user's facts about the model (classes, feature names, ...), as JSON
        props["fastmlp.metadata"] = json.dumps(metadata)
    helper.set_model_props(proto, props)
    onnx.checker.check_model(proto)
    return proto
