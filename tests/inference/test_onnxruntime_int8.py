"""Signed-INT8 Q/DQ models (the TensorRT target) on ONNX Runtime's CPU kernels: the runtime's
session options keep them exact on x86 CPUs whose U8S8 kernels saturate (no VNNI)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeface.inference.backends.onnxruntime import runtime as ortb

X86_AVX2 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse4_1 avx avx2 fma\n"


def test_int8_pairs_saturate_on_x86_without_vnni_only():
    assert ortb.int8_pairs_saturate("x86_64", X86_AVX2)
    assert ortb.int8_pairs_saturate("x86_64", X86_AVX2.replace("fma", "avx512f avx512bw"))
    for vnni in ("avx512_vnni", "avx_vnni", "amx_int8"):
        assert not ortb.int8_pairs_saturate("x86_64", X86_AVX2.replace("fma", vnni)), vnni
    assert ortb.int8_pairs_saturate("AMD64", None)  # no /proc/cpuinfo: assume no VNNI
    assert not ortb.int8_pairs_saturate("aarch64", "Features\t: fp asimd asimddp\n")
    assert not ortb.int8_pairs_saturate("armv7l", None)


def test_session_options_keep_signed_int8_only_where_pairs_saturate(monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(ortb, "int8_pairs_saturate", lambda: True)
    assert ortb.session_options(1).get_session_config_entry(ortb.QDQ_INT8_ALLOWED) == "1"
    monkeypatch.setattr(ortb, "int8_pairs_saturate", lambda: False)
    with pytest.raises(RuntimeError, match="does not have"):  # ONNX Runtime's default kept
        ortb.session_options(1).get_session_config_entry(ortb.QDQ_INT8_ALLOWED)


def _signed_qdq_conv(channels: int) -> bytes:
    """x -> Q/DQ (S8, scale 1/127) -> 1x1 Conv with weights 1 (Q/DQ S8 per channel, 127)
    -> Q/DQ: y = the sum of ``channels`` inputs. With x = 1 every U8 x S8 pair is
    255 x 127 twice, over int16's 32767."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    def t(name, value):
        return numpy_helper.from_array(np.asarray(value), name)

    inits = [t("xs", np.float32(1 / 127)), t("z", np.int8(0)),
             t("w", np.ones((1, channels, 1, 1), np.float32)),
             t("ws", np.full(1, 1 / 127, np.float32)), t("wz", np.zeros(1, np.int8)),
             t("ys", np.float32(channels / 127))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "z"], ["xd"]),
             helper.make_node("QuantizeLinear", ["w", "ws", "wz"], ["wq"], axis=0),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
             helper.make_node("Conv", ["xd", "wd"], ["c"]),
             helper.make_node("QuantizeLinear", ["c", "ys", "z"], ["cq"]),
             helper.make_node("DequantizeLinear", ["cq", "ys", "z"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model.SerializeToString()


def test_signed_int8_conv_is_exact_with_the_runtime_session_options():
    """On an AVX2 EPYC ONNX Runtime's defaults give 0.126 for 16 here (pairs clipped to
    32767); the runtime's options give 16 on every CPU."""
    ort = pytest.importorskip("onnxruntime")
    channels = 16
    model, x = _signed_qdq_conv(channels), np.ones((1, channels, 8, 8), np.float32)

    def run(so):
        sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        return sess.run(None, {"x": x})[0]

    assert np.allclose(run(ortb.session_options(1)), channels)
    if not ortb.int8_pairs_saturate():  # VNNI and ARM: ONNX Runtime's defaults are exact
        assert np.allclose(run(ort.SessionOptions()), channels)
