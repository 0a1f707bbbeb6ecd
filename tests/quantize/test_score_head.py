"""The face score as a sigmoid of the class-logit difference: the two-class Softmax + Gather
over concatenated ClassHead convolutions gives the same scores (name, shape, type, order)
on a tiny graph and on the real V1 export, and other graphs are left alone."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx_graphs import real_model_and_feeds, run_cpu, tiny_model  # noqa: E402
from requires import needs_deformconv  # noqa: E402

from edgeface.quantize.score_head import spell_face_scores  # noqa: E402

SIZES = [(6, 5), (3, 3)]  # two levels, not square: H and W must not swap
ANCHORS = 2


def _model(index: int = 1, classes: int = 2, reader: bool = False):
    rng = np.random.default_rng(0)
    nodes, inputs, inits, cat = [], [], [], []
    for k, (h, w) in enumerate(SIZES):
        inputs.append(helper.make_tensor_value_info(f"x{k}", TensorProto.FLOAT, [1, 3, h, w]))
        inits += [numpy_helper.from_array(
                      rng.standard_normal((ANCHORS * classes, 3, 1, 1)).astype(np.float32),
                      f"w{k}"),
                  numpy_helper.from_array(rng.standard_normal(ANCHORS * classes)
                                          .astype(np.float32), f"b{k}"),
                  numpy_helper.from_array(np.array([1, h * w * ANCHORS, classes], np.int64),
                                          f"s{k}")]
        nodes += [helper.make_node("Conv", [f"x{k}", f"w{k}", f"b{k}"], [f"c{k}"],
                                   kernel_shape=[1, 1]),
                  helper.make_node("Transpose", [f"c{k}"], [f"t{k}"], perm=[0, 2, 3, 1]),
                  helper.make_node("Reshape", [f"t{k}", f"s{k}"], [f"r{k}"], allowzero=1)]
        cat.append(f"r{k}")
    inits.append(numpy_helper.from_array(np.array(index, np.int64), "one"))
    nodes += [helper.make_node("Concat", cat, ["cat"], axis=1),
              helper.make_node("Softmax", ["cat"], ["soft"], axis=-1),
              helper.make_node("Gather", ["soft", "one"], ["scores"], axis=2)]
    outs = ["scores"] + (["soft"] if reader else [])
    return tiny_model(nodes, inputs,
                      [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs],
                      inits)


def _feeds():
    rng = np.random.default_rng(1)
    return {f"x{k}": (3 * rng.standard_normal((1, 3, h, w))).astype(np.float32)
            for k, (h, w) in enumerate(SIZES)}


def test_softmax_class_1_becomes_a_sigmoid_of_the_difference():
    model, feeds = _model(), _feeds()
    (want,) = run_cpu(model, feeds)
    # per level its Conv, Transpose, Reshape and Sigmoid, then the Concat
    assert len(spell_face_scores(model)) == 4 * len(SIZES) + 1
    ops = [n.op_type for n in model.graph.node]
    assert "Softmax" not in ops and "Gather" not in ops and ops.count("Sigmoid") == len(SIZES)
    (got,) = run_cpu(model, feeds)
    assert got.shape == want.shape == (1, sum(h * w for h, w in SIZES) * ANCHORS)
    assert got.dtype == want.dtype and want.std() > 0.1  # scores that tell anchors apart
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kw", [{"index": 0}, {"classes": 3}, {"reader": True}],
                         ids=["class 0", "three classes", "softmax read elsewhere"])
def test_other_heads_are_left_alone(kw):
    model = _model(**kw)
    assert spell_face_scores(model) == []
    assert "Softmax" in [n.op_type for n in model.graph.node]


@needs_deformconv
def test_real_v1_scores_are_the_same(v1_onnx, native_images):
    model, feeds = real_model_and_feeds(v1_onnx, native_images[0])
    want = dict(zip([o.name for o in model.graph.output], run_cpu(model, feeds)))
    assert len(spell_face_scores(model)) == 13
    got = dict(zip([o.name for o in model.graph.output], run_cpu(model, feeds)))
    assert got["scores"].shape == want["scores"].shape and want["scores"].max() > 0.9
    np.testing.assert_allclose(got["scores"], want["scores"], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got["boxes"], want["boxes"])
