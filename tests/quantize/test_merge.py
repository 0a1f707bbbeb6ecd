"""Sibling offset convolutions merged before quantization: same outputs in float, fewer
convolutions, and nothing merged that something other than a channel Slice reads."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx_graphs import run_cpu, tiny_model  # noqa: E402

from edgeface.quantize.merge import merge_sibling_convs  # noqa: E402


def _model(extra_reader: bool = False, group: int = 1):
    rng = np.random.default_rng(0)
    c = 4
    inits = [numpy_helper.from_array(np.array([v], np.int64), n) for n, v in
             (("s0", 0), ("e6", 6), ("s6", 6), ("big", np.iinfo(np.int64).max), ("ax", 1),
              ("neg", -3))]
    nodes = [helper.make_node("Relu", ["x"], ["xr"])]
    outs = []
    for i in range(2):
        inits += [numpy_helper.from_array(rng.standard_normal((9, c // group, 3, 3))
                                          .astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(rng.standard_normal(9).astype(np.float32), f"b{i}")]
        nodes.append(helper.make_node("Conv", ["xr", f"w{i}", f"b{i}"], [f"y{i}"],
                                      pads=[1, 1, 1, 1], group=group, name=f"conv{i}"))
        nodes += [helper.make_node("Slice", [f"y{i}", "s0", "e6", "ax"], [f"off{i}"]),
                  helper.make_node("Slice", [f"y{i}", "s6", "big", "ax"], [f"m{i}"]),
                  helper.make_node("Slice", [f"y{i}", "neg", "big", "ax"], [f"t{i}"])]
        outs += [f"off{i}", f"m{i}", f"t{i}"]
    if extra_reader:
        nodes.append(helper.make_node("Sigmoid", ["y1"], ["z"]))
        outs.append("z")
    return tiny_model(
        nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 5, 5])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs], inits,
        opset=17, ir_version=8)


def _run(model, x):
    return run_cpu(model, {"x": x})


def test_siblings_merge_into_one_conv_with_the_same_outputs():
    model = _model()
    x = np.random.default_rng(1).standard_normal((1, 4, 5, 5)).astype(np.float32)
    want = _run(model, x)
    assert merge_sibling_convs(model) == 1
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) == 1 and convs[0].name == "conv0"
    for a, b in zip(want, _run(model, x)):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["other reader", "grouped"])
def test_convs_read_otherwise_or_grouped_stay(kind):
    model = _model(extra_reader=True) if kind == "other reader" else _model(group=2)
    assert merge_sibling_convs(model) == 0
    assert sum(n.op_type == "Conv" for n in model.graph.node) == 2
