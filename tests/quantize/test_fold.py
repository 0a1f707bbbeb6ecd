"""Scalar Muls folded into the weights before quantization: same outputs in float, fewer
Muls, and no fold where the unscaled values are read too or a negative factor would not
commute."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx_graphs import run_cpu, tiny_model  # noqa: E402
from requires import needs_deformconv  # noqa: E402

from edgeface.quantize.fold import fold_scalings  # noqa: E402


def _model(c: float, branch: str, reader: bool = False):
    rng = np.random.default_rng(0)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    inits = [numpy_helper.from_array(f(4, 3, 3, 3), "w"), numpy_helper.from_array(f(4), "b"),
             numpy_helper.from_array(np.array(c, np.float32), "c")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])]
    if branch == "resize":
        inits.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"))
        nodes.append(helper.make_node("Resize", ["y", "", "scales"], ["z"], mode="nearest"))
    elif branch == "where":
        inits.append(numpy_helper.from_array(rng.random((8, 8)) > 0.5, "cond"))
        nodes += [helper.make_node("MaxPool", ["y"], ["p"], kernel_shape=[1, 1]),
                  helper.make_node("Relu", ["p"], ["r"]),
                  helper.make_node("Where", ["cond", "r", "p"], ["z"])]
    src = "y" if branch == "conv" else "z"
    nodes += [helper.make_node("Mul", [src, "c"], ["scaled"], name="scale"),
              helper.make_node("Identity", ["scaled"], ["out"])]  # a graph output stays
    outs = ["out"] + (["y"] if reader else [])
    return tiny_model(
        nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs], inits)


_run = run_cpu


@pytest.mark.parametrize("branch,c", [("conv", -0.7), ("resize", -0.7), ("where", 0.46)])
def test_scalar_mul_folds_into_the_conv(branch, c):
    model = _model(c, branch)
    x = {"x": np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)}
    want = _run(model, x)
    assert fold_scalings(model) == 1
    assert not any(n.op_type == "Mul" for n in model.graph.node)
    assert "c" not in {t.name for t in model.graph.initializer}  # unused now
    np.testing.assert_allclose(_run(model, x)[0], want[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("branch,c,reader", [("where", -0.46, False), ("conv", 0.5, True)],
                         ids=["negative through MaxPool", "conv output read unscaled"])
def test_no_fold_where_it_would_change_the_result(branch, c, reader):
    model = _model(c, branch, reader)
    assert fold_scalings(model) == 0
    assert sum(n.op_type == "Mul" for n in model.graph.node) == 1


@needs_deformconv
def test_mask_factor_folds_into_the_deformconv_weight():
    rng = np.random.default_rng(2)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    inits = [numpy_helper.from_array(f(4, 3, 3, 3), "w"),
             numpy_helper.from_array(np.array(2.0, np.float32), "two")]
    nodes = [helper.make_node("Sigmoid", ["m"], ["s"]),
             helper.make_node("Mul", ["s", "two"], ["mask"]),
             helper.make_node("DeformConv", ["x", "w", "off", "", "mask"], ["y"],
                              kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    inputs = {"x": f(1, 3, 6, 6), "off": f(1, 18, 6, 6), "m": f(1, 9, 6, 6)}
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape)
                     for k, v in inputs.items()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    want = _run(model, inputs)[0]
    assert fold_scalings(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Sigmoid", "DeformConv"]
    np.testing.assert_allclose(_run(model, inputs)[0], want, rtol=1e-5, atol=1e-5)
