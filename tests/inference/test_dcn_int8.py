"""INT8 DCN fast path: in a QDQ model the DeformConv GEMM runs as MatMulIntegerToFloat on uint8
columns the sampler quantizes itself, with the DeformConv input's own scale and zero point."""

from __future__ import annotations

import numpy as np
import onnx_writer as ow
import pytest
from dcn_reference import random_offsets, session

from edgeface.inference.dcn import graph_cut, proto, runner, sampler

pytestmark = pytest.mark.skipif(not sampler.available(),
                                reason=str(sampler.unavailable_reason()))

UINT8 = 2


def _quantize(cols: np.ndarray, scale: float, zp: int) -> np.ndarray:
    """ONNX QuantizeLinear to uint8: round half to even, saturate."""
    return np.clip(np.rint(cols / np.float32(scale)) + zp, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("c", [14, 56, 5])
def test_the_sampler_writes_quantized_columns(c):
    rng = np.random.default_rng(c)
    n, h, w = 1, 13, 11
    x = (rng.standard_normal((n, h, w, c)) * 2).astype(np.float32)
    offset = random_offsets(rng, (n, 18, h, w))
    mask = rng.uniform(0, 1, (n, 9, h, w)).astype(np.float32)
    cols = sampler.sample_columns(x, offset, mask, (3, 3))
    scale, zp = 0.01, 90  # a narrow range: both ends saturate
    want = _quantize(cols, scale, zp)
    assert (want == 0).any() and (want == 255).any()
    got = np.empty(cols.shape, np.uint8)
    sampler.extension().sample(x, offset, mask, got, n, h, w, c, h, w, 3, 3, 1, 1, 1, 1, 1,
                               1, 2, scale, float(zp))
    diff = np.abs(got.astype(int) - want.astype(int))
    # x * (1/scale) instead of x / scale: a rounding tie may go the other way, rarely
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    with pytest.raises(ValueError, match="uint8"):
        sampler.extension().sample(x, offset, mask, np.empty(cols.shape, np.float32), n, h,
                                   w, c, h, w, 3, 3, 1, 1, 1, 1, 1, 1, 1, scale, float(zp))


def _uint8_scalar(name: str, value: int) -> bytes:
    """A uint8 scalar initializer, its value in int32_data (as ONNX Runtime's quantizer writes
    scalars)."""
    return (ow.repeated_ints(1, []) + ow.int_field(2, UINT8) + ow.packed_ints(5, [value])
            + ow.str_field(8, name))


def _qdq_deformconv(c: int, o: int, s: int, xs: float, xzp: int, wq: np.ndarray,
                    ws: np.ndarray, bias: np.ndarray, qdq_offset_mask: bool = False) -> bytes:
    """x -> QuantizeLinear -> DequantizeLinear -> DeformConv(W = DequantizeLinear(int8)), as
    `edgeface quantize` leaves a DeformConv (its zero point in int32_data, as ONNX Runtime's
    quantizer writes scalars); with ``qdq_offset_mask`` the offset and the mask go through a
    QuantizeLinear -> DequantizeLinear pair of their own too (offsets to +-8.4 px)."""
    inits = [ow.tensor("xs", ow.FLOAT, [], [xs]),
             ow.repeated_ints(1, []) + ow.int_field(2, UINT8) + ow.packed_ints(5, [xzp])
             + ow.str_field(8, "xzp"),
             proto._tensor("wq", wq), proto._tensor("ws", ws),
             proto._tensor("wzp", np.zeros(o, np.int8)),
             ow.tensor("b", ow.FLOAT, [o], bias.tolist())]
    nodes = [ow.node("QuantizeLinear", ["x", "xs", "xzp"], ["xq"]),
             ow.node("DequantizeLinear", ["xq", "xs", "xzp"], ["xd"]),
             ow.node("DequantizeLinear", ["wq", "ws", "wzp"], ["w"], axis=0),
             ow.node("DeformConv", ["xd", "w", "od" if qdq_offset_mask else "offset", "b",
                                    "md" if qdq_offset_mask else "mask"], ["y"],
                     kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    if qdq_offset_mask:
        nodes = [ow.node("QuantizeLinear", ["offset", "os", "ozp"], ["oq"]),
                 ow.node("DequantizeLinear", ["oq", "os", "ozp"], ["od"]),
                 ow.node("QuantizeLinear", ["mask", "ms", "mzp"], ["mq"]),
                 ow.node("DequantizeLinear", ["mq", "ms", "mzp"], ["md"])] + nodes
        inits += [ow.tensor("os", ow.FLOAT, [], [0.07]), _uint8_scalar("ozp", 120),
                  ow.tensor("ms", ow.FLOAT, [], [1 / 255]), _uint8_scalar("mzp", 0)]
    io = [("x", [1, c, s, s]), ("offset", [1, 18, s, s]), ("mask", [1, 9, s, s])]
    g = ow.graph("qdq_dcn", nodes, [ow.value_info(n, ow.FLOAT, d) for n, d in io],
                 [ow.value_info("y", ow.FLOAT, [1, o, s, s])], inits)
    return ow.model(g, ir_version=9, opset=19)


def test_a_qdq_deformconv_runs_as_an_integer_gemm():
    rng = np.random.default_rng(3)
    c, o, s = 14, 28, 13
    xs, xzp = 0.02, 100
    weight = rng.standard_normal((o, c, 3, 3)).astype(np.float32) / 10
    ws = (np.abs(weight).reshape(o, -1).max(1) / 127).astype(np.float32)
    wq = np.round(weight / ws[:, None, None, None]).astype(np.int8)
    bias = rng.standard_normal(o).astype(np.float32)
    model = _qdq_deformconv(c, o, s, xs, xzp, wq, ws, bias)
    feeds = {"x": rng.uniform(-2, 3, (1, c, s, s)).astype(np.float32),
             "offset": random_offsets(rng, (1, 18, s, s)),
             "mask": rng.uniform(0, 1, (1, 9, s, s)).astype(np.float32)}
    want = session(model).run(None, feeds)[0]

    fast = graph_cut.cut(model)  # no quantization record: 7-bit weights (reduce_range)
    (dcn,), = fast.stages[:1]
    assert dcn.quant is not None and dcn.quant[1] == xzp and abs(dcn.quant[0] - xs) < 1e-9
    seg = dcn.gemm.model
    assert b"MatMulIntegerToFloat" in seg and b"MatMulNBits" not in seg
    assert b"QuantizeLinear" not in seg and b"DequantizeLinear" not in seg  # one GEMM node
    assert not any(b"DeformConv" in s.model for s in fast.segments)
    got = runner.FastDcnSession(fast).run(None, feeds)[0]
    # each column is off by at most half a step of x's scale, each 7-bit weight by half of
    # its step (at most 2.02x the 8-bit one): the bound per output channel
    cols = np.abs(feeds["x"]).max() + xs
    bound = 0.5 * xs * (np.abs(wq).reshape(o, -1).sum(1) * ws) \
        + 0.5 * 2.02 * ws * 9 * c * cols + 1e-4
    err = np.abs(got - want).max(axis=(0, 2, 3))
    assert (err <= bound).all() and err.max() > 0  # integer arithmetic did run
    # float columns (quantize_columns=False): the float weights, ONNX Runtime's numbers
    got = runner.FastDcnSession(graph_cut.cut(model, quantize_columns=False)).run(None, feeds)[0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


def test_the_part_after_a_dcn_computes_its_own_weights_and_reads_the_nhwc_output():
    """A QDQ Conv behind a DeformConv: its weight's DequantizeLinear is in its own part, not
    a float input from segment 0 (which kept ONNX Runtime from fusing it into QLinearConv),
    and the part reads the GEMM's NHWC output and transposes it itself."""
    rng = np.random.default_rng(5)
    c, o, s = 14, 14, 13
    xs, xzp = 0.02, 100
    weight = rng.standard_normal((o, c, 3, 3)).astype(np.float32) / 10
    ws = (np.abs(weight).reshape(o, -1).max(1) / 127).astype(np.float32)
    wq = np.round(weight / ws[:, None, None, None]).astype(np.int8)
    # as _qdq_deformconv, then y -> Q -> DQ -> Conv(DQ(int8 weight)) -> z
    tail = [ow.node("QuantizeLinear", ["y", "xs", "xzp"], ["yq"]),
            ow.node("DequantizeLinear", ["yq", "xs", "xzp"], ["yd"]),
            ow.node("DequantizeLinear", ["w2q", "ws", "wzp"], ["w2"], axis=0),
            ow.node("Conv", ["yd", "w2"], ["z"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    inits = [ow.tensor("xs", ow.FLOAT, [], [xs]),
             ow.repeated_ints(1, []) + ow.int_field(2, UINT8) + ow.packed_ints(5, [xzp])
             + ow.str_field(8, "xzp"),
             proto._tensor("wq", wq), proto._tensor("w2q", wq), proto._tensor("ws", ws),
             proto._tensor("wzp", np.zeros(o, np.int8))]
    nodes = [ow.node("QuantizeLinear", ["x", "xs", "xzp"], ["xq"]),
             ow.node("DequantizeLinear", ["xq", "xs", "xzp"], ["xd"]),
             ow.node("DequantizeLinear", ["wq", "ws", "wzp"], ["w"], axis=0),
             ow.node("DeformConv", ["xd", "w", "offset", "", "mask"], ["y"],
                     kernel_shape=[3, 3], pads=[1, 1, 1, 1])] + tail
    io = [("x", [1, c, s, s]), ("offset", [1, 18, s, s]), ("mask", [1, 9, s, s])]
    model = ow.model(ow.graph("qdq_dcn_conv", nodes,
                              [ow.value_info(n, ow.FLOAT, d) for n, d in io],
                              [ow.value_info("z", ow.FLOAT, [1, o, s, s])], inits),
                     ir_version=9, opset=19)
    fast = graph_cut.cut(model)
    (d,), = fast.stages[:1]
    assert d.output == "y__nhwc"
    after = fast.segments[1]
    assert after.inputs == ["y__nhwc"]  # not "w2": its DequantizeLinear runs here
    assert b"Transpose" in after.model and b"w2q" in after.model
    assert b"w2q" not in fast.segments[0].model
    feeds = {"x": rng.uniform(-2, 3, (1, c, s, s)).astype(np.float32),
             "offset": random_offsets(rng, (1, 18, s, s)),
             "mask": rng.uniform(0, 1, (1, 9, s, s)).astype(np.float32)}
    want = session(model).run(None, feeds)[0]
    got = runner.FastDcnSession(fast).run(None, feeds)[0]
    assert got.shape == want.shape
    # 7-bit GEMM weights and y requantized: 2.9% of the output's range measured, where
    # a wrong layout (NHWC read as NCHW) or a dropped bias is of the order of the output
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()


def test_uint8_offsets_and_mask_are_read_as_their_dequantized_floats():
    """The sampler reads a uint8 offset / mask with its scale and zero point: the same columns,
    bit for bit, as from the floats DequantizeLinear gives ((q - zp) * scale)."""
    rng = np.random.default_rng(11)
    n, h, w, c = 1, 13, 11, 14
    x = (rng.standard_normal((n, h, w, c)) * 2).astype(np.float32)
    oq = rng.integers(0, 256, (n, 18, h, w)).astype(np.uint8)
    mq = rng.integers(0, 256, (n, 9, h, w)).astype(np.uint8)
    (os_, ozp), (ms, mzp) = (0.07, 120), (1 / 255, 3)  # offsets to +-8.4 px: out of the image
    offset = (oq.astype(np.int32) - ozp).astype(np.float32) * np.float32(os_)
    mask = (mq.astype(np.int32) - mzp).astype(np.float32) * np.float32(ms)
    ext, geometry = sampler.extension(), (n, h, w, c, h, w, 3, 3, 1, 1, 1, 1, 1, 1, 2)
    for quant, dtype in (((0.05, 37.0), np.uint8), ((0.0, 0.0), np.float32)):
        want = np.empty((n, h * w, 9 * c), dtype)
        got = np.empty_like(want)
        ext.sample(x, offset, mask, want, *geometry, *quant)
        ext.sample(x, oq, mq, got, *geometry, *quant, os_, float(ozp), ms, float(mzp))
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="offset"):  # uint8 offsets given as float32
        ext.sample(x, offset, mask, got, *geometry, 0.0, 0.0, os_, float(ozp), ms, float(mzp))


def test_the_cut_hands_the_sampler_uint8_offsets_and_mask(monkeypatch):
    """offset and mask behind QuantizeLinear -> DequantizeLinear (as `edgeface quantize` leaves
    them): the sampler reads the uint8 tensors, which the segment gives as uint8, and the
    outputs are those of the cut that keeps the two DequantizeLinear nodes."""
    rng = np.random.default_rng(13)
    c, o, s = 14, 28, 13
    weight = rng.standard_normal((o, c, 3, 3)).astype(np.float32) / 10
    ws = (np.abs(weight).reshape(o, -1).max(1) / 127).astype(np.float32)
    wq = np.round(weight / ws[:, None, None, None]).astype(np.int8)
    model = _qdq_deformconv(c, o, s, 0.02, 100, wq, ws, rng.standard_normal(o).astype(np.float32),
                            qdq_offset_mask=True)
    fast = graph_cut.cut(model)
    (d,), = fast.stages[:1]
    assert (d.offset, d.mask) == ("oq", "mq")
    assert d.offset_quant == (pytest.approx(0.07), 120)
    assert d.mask_quant == (pytest.approx(1 / 255), 0)
    feeds = {"x": rng.uniform(-2, 3, (1, c, s, s)).astype(np.float32),
             "offset": random_offsets(rng, (1, 18, s, s)),
             "mask": rng.uniform(0, 1, (1, 9, s, s)).astype(np.float32)}
    session = runner.FastDcnSession(fast)
    seg0 = dict(zip(fast.segments[0].outputs,
                    session._sessions[0].run(fast.segments[0].outputs, {"x": feeds["x"],
                                             "offset": feeds["offset"], "mask": feeds["mask"]})))
    assert seg0["oq"].dtype == np.uint8 and seg0["mq"].dtype == np.uint8
    assert "od" not in seg0 and "md" not in seg0
    got = session.run(None, feeds)[0]
    monkeypatch.setattr(graph_cut, "uint8_dq", lambda *a: None)
    kept = graph_cut.cut(model)
    assert (kept.stages[0][0].offset, kept.stages[0][0].offset_quant) == ("od", None)
    np.testing.assert_array_equal(got, runner.FastDcnSession(kept).run(None, feeds)[0])
