"""Nearest upsampling by integer factors spelled as a channels-last copy: the same outputs
(float and uint8), and other Resize modes left alone."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx_graphs import run_cpu, tiny_model  # noqa: E402

from edgeface.quantize.upsample import spell_upsampling  # noqa: E402


def _model(dtype: int, how: str, mode: str = "nearest"):
    shape = [1, 3, 5, 4]
    if how == "sizes":
        arg, inputs = numpy_helper.from_array(np.array([1, 3, 10, 12], np.int64), "sz"), \
            ["x", "", "", "sz"]
    else:
        arg, inputs = numpy_helper.from_array(np.array([1, 1, 2, 3], np.float32), "sc"), \
            ["x", "", "sc"]
    nodes = [helper.make_node("Resize", inputs, ["y"], mode=mode, name="up",
                              coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
             helper.make_node("Identity", ["y"], ["out"])]
    return tiny_model(nodes, [helper.make_tensor_value_info("x", dtype, shape)],
                      [helper.make_tensor_value_info("out", dtype, None)], [arg])


def _run(model, x):
    return run_cpu(model, {"x": x})[0]


@pytest.mark.parametrize("dtype", [TensorProto.FLOAT, TensorProto.UINT8], ids=["f32", "u8"])
@pytest.mark.parametrize("how", ["sizes", "scales"])
def test_nearest_resize_becomes_a_channels_last_copy(dtype, how):
    model = _model(dtype, how)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (1, 3, 5, 4)).astype(np.float32 if dtype == TensorProto.FLOAT
                                                   else np.uint8)
    want = _run(model, x)
    assert spell_upsampling(model) == 1
    assert "Resize" not in [n.op_type for n in model.graph.node]
    got = _run(model, x)
    assert got.shape == (1, 3, 10, 12)
    np.testing.assert_array_equal(got, want)


def test_linear_resize_is_left_alone():
    model = _model(TensorProto.FLOAT, "scales", mode="linear")
    assert spell_upsampling(model) == 0
