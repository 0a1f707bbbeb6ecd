"""BiFPN's exported zero-padded max pooling, Where(border, Relu(m), m), becomes Max(m, B): the
same outputs (random values of both signs, border and interior) on this ONNX Runtime and on
the JetPack floor's (1.23.2, `make test-floor` runs this file), and no rewrite where the
condition is not a constant or the Relu is read elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx_graphs import real_model_and_feeds, run_cpu, tiny_model  # noqa: E402
from requires import needs_deformconv  # noqa: E402

from edgeface.quantize.border_max import LOWEST, spell_border_max  # noqa: E402


def _border(size: int) -> np.ndarray:
    """The exporter's mask for a 3x3/2 SAME pooling of an even size: last row and column."""
    n = size // 2
    edge = np.arange(n) == n - 1
    return edge[:, None] | edge[None, :]


def _model(size: int, cond_input: bool = False, relu_read: bool = False, wheres: int = 1):
    """x -> MaxPool(3x3/2, ceil) -> Where(border, Relu, m), ``wheres`` times on one mask (the
    export shares a mask between poolings of one size)."""
    n = size // 2
    nodes, outs, x = [], [], "x"
    for k in range(wheres):
        nodes += [helper.make_node("MaxPool", [x], [f"m{k}"], kernel_shape=[3, 3],
                                   strides=[2, 2], ceil_mode=1),
                  helper.make_node("Relu", [f"m{k}"], [f"r{k}"]),
                  helper.make_node("Where", ["border", f"r{k}", f"m{k}"], [f"w{k}"],
                                   name=f"where{k}")]
        outs.append(f"w{k}")
        x = f"w{k}"
        if k + 1 < wheres:  # back to the size of the mask's pooling
            nodes.append(helper.make_node("Resize", [x, "", "two"], [f"u{k}"], mode="nearest"))
            x = f"u{k}"
    if relu_read:
        outs.append("r0")
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])]
    inits = [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "two")] \
        if wheres > 1 else []
    if cond_input:
        inputs.append(helper.make_tensor_value_info("border", TensorProto.BOOL, [n, n]))
    else:
        inits.append(numpy_helper.from_array(_border(size), "border"))
    return tiny_model(nodes, inputs,
                      [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs],
                      inits)


def _x(size: int) -> np.ndarray:
    # mostly negative, so that the border's max(., 0) changes values and the interior keeps
    # negative ones
    rng = np.random.default_rng(size)
    return (rng.standard_normal((1, 3, size, size)) - 2).astype(np.float32)


@pytest.mark.parametrize("size,wheres", [(26, 1), (52, 2)])
def test_where_becomes_max_with_the_same_outputs(size, wheres):
    model = _model(size, wheres=wheres)
    x = {"x": _x(size)}
    want = run_cpu(model, x)
    border = want[0][..., _border(size)]
    assert (border == 0).any() and (want[0] < 0).any()  # a real test
    assert spell_border_max(model) == wheres
    ops = [n.op_type for n in model.graph.node]
    assert "Where" not in ops and "Relu" not in ops and ops.count("Max") == wheres
    (b,) = [t for t in model.graph.initializer if t.name != "two"]  # one B for the shared mask
    b = numpy_helper.to_array(b)
    assert b.shape == (1, 1) + _border(size).shape and b.dtype == np.float32
    assert set(np.unique(b)) == {0.0, LOWEST}
    for got, ref in zip(run_cpu(model, x), want):
        np.testing.assert_array_equal(got, ref)


def test_a_condition_that_is_not_a_constant_is_left_alone():
    model = _model(26, cond_input=True)
    assert spell_border_max(model) == 0
    assert "Where" in [n.op_type for n in model.graph.node]


def test_a_relu_read_elsewhere_is_left_alone():
    model = _model(26, relu_read=True)
    assert spell_border_max(model) == 0
    assert [n.op_type for n in model.graph.node].count("Relu") == 1


@needs_deformconv
def test_real_v1_outputs_are_the_same(v1_onnx, native_images):
    from edgeface.quantize.fold import fold_scalings

    model, feeds = real_model_and_feeds(v1_onnx, native_images[0])
    fold_scalings(model)  # as in the pipeline: the scalings fold through the Where first
    want = run_cpu(model, feeds)
    assert spell_border_max(model) == 4
    assert "Where" not in [n.op_type for n in model.graph.node]
    for got, ref in zip(run_cpu(model, feeds), want):
        np.testing.assert_array_equal(got, ref)
