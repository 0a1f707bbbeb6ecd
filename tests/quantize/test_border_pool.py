"""BiFPN's exported zero-padded max pooling (Where(border, Relu(p), p), p a ceil-mode
MaxPool) becomes Pad + MaxPool: the same outputs, and no rewrite when the mask is not the
pooling's overhang."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgeface.quantize.border_pool import fold_border_pools  # noqa: E402


def _model(size: int, mask: np.ndarray):
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[3, 3], strides=[2, 2],
                              ceil_mode=1, name="pool"),
             helper.make_node("Relu", ["p"], ["r"]),
             helper.make_node("Where", ["border", "r", "p"], ["w"]),
             helper.make_node("Identity", ["w"], ["out"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, size, size])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(mask, "border")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    return model


def _overhang(size: int) -> np.ndarray:
    n = -(-(size - 3) // 2) + 1
    over = np.arange(n) * 2 + 3 > size
    return over[:, None] | over[None, :]


def _run(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


@pytest.mark.parametrize("size", [26, 13])
def test_where_becomes_pad_and_maxpool(size):
    model = _model(size, _overhang(size))
    x = np.random.default_rng(size).standard_normal((1, 2, size, size)).astype(np.float32) - 1
    want = _run(model, x)
    assert fold_border_pools(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Pad", "MaxPool", "Identity"]
    np.testing.assert_array_equal(_run(model, x), want)


def test_another_mask_is_left_alone():
    mask = _overhang(26)
    mask[0, 0] = True
    model = _model(26, mask)
    assert fold_border_pools(model) == 0
    assert any(n.op_type == "Where" for n in model.graph.node)
