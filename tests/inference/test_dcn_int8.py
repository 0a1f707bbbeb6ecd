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


@pytest.mark.parametrize("next_part", [False, True])
def test_a_qdq_deformconv_runs_as_an_integer_gemm(monkeypatch, next_part):
    """In its own run, or (columns of at most NEXT_PART_MAX_BYTES, 126 here) in the segment
    after the sampling: the same integer GEMM."""
    if not next_part:
        monkeypatch.setattr(graph_cut, "NEXT_PART_MAX_BYTES", 0)
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
    if next_part:
        assert dcn.gemm is None and fast.segments[1].inputs == [dcn.cols]
        assert b"MatMulIntegerToFloat" in fast.segments[1].model
    else:
        seg = dcn.gemm.model
        assert b"MatMulIntegerToFloat" in seg and b"MatMulNBits" not in seg
        assert b"QuantizeLinear" not in seg and b"DequantizeLinear" not in seg  # one node
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


def test_the_part_after_a_dcn_computes_its_own_weights_and_reads_the_nhwc_output(
        monkeypatch):
    """A QDQ Conv behind a DeformConv: its weight's DequantizeLinear is in its own part, not
    a float input from segment 0 (which kept ONNX Runtime from fusing it into QLinearConv),
    and the part reads the GEMM's NHWC output and transposes it itself. With the GEMM in
    that part (narrow columns) it reads the columns instead, and the outputs are the same
    bit for bit."""
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
    inner = graph_cut.cut(model)
    assert inner.segments[1].inputs == ["y__dcn_cols"] and inner.stages[0][0].gemm is None
    monkeypatch.setattr(graph_cut, "NEXT_PART_MAX_BYTES", 0)
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
    np.testing.assert_array_equal(runner.FastDcnSession(inner).run(None, feeds)[0], got)


def test_uint8_offsets_and_mask_are_read_through_their_tables():
    """The sampler reads a uint8 offset / mask at its channels of a wider tensor, each byte
    as (q - zp) * scale or through a table: the same columns, bit for bit, as from the floats
    those give."""
    rng = np.random.default_rng(11)
    n, h, w, c = 1, 13, 11, 14
    x = (rng.standard_normal((n, h, w, c)) * 2).astype(np.float32)
    raw = rng.integers(0, 256, (n, 54, h, w)).astype(np.uint8)  # two DCNs' 27 channels
    os_, ozp = 0.07, 120  # offsets to +-8.4 px: out of the image
    otable = (np.arange(256, dtype=np.float32) - np.float32(ozp)) * np.float32(os_)
    mtable = (1 / (1 + np.exp(-(np.arange(256) - 128) / 16))).astype(np.float32)  # a sigmoid
    offset, mask = otable[raw[:, 27:45]], mtable[raw[:, 45:54]]
    ext, geometry = sampler.extension(), (n, h, w, c, h, w, 3, 3, 1, 1, 1, 1, 1, 1, 2)
    for quant, dtype in (((0.05, 37.0), np.uint8), ((0.0, 0.0), np.float32)):
        want = np.empty((n, h * w, 9 * c), dtype)
        ext.sample(x, offset, mask, want, *geometry, *quant)
        for ospec in ((None, os_, float(ozp), 27, 54), (otable, 0.0, 0.0, 27, 54)):
            got = np.empty_like(want)
            ext.sample(x, raw, raw, got, *geometry, *quant, ospec, (mtable, 0.0, 0.0, 45, 54))
            np.testing.assert_array_equal(got, want)
    got = np.empty((n, h * w, 9 * c), np.float32)
    for bad, match in (((None, os_, float(ozp), 40, 54), "channels 40..58 of 54"),
                       ((otable[:255], 0.0, 0.0, 0, 54), "offset has 1020 bytes"),
                       ((None, 0.0, 0.0, 0, 54), "scale > 0"),
                       ((None, os_, float(ozp), 0, 55), "offset has 7722 bytes")):
        with pytest.raises(ValueError, match=match):
            ext.sample(x, raw, None, got, *geometry, 0.0, 0.0, bad, None)
    with pytest.raises(ValueError, match="offset"):  # uint8 offsets without a spec
        ext.sample(x, raw[:, :18], mask, got, *geometry, 0.0, 0.0)


def _merged_offset_conv(c: int, o: int, s: int, wq: np.ndarray, ws: np.ndarray,
                        side_output: bool) -> bytes:
    """As `edgeface quantize` leaves V1's SSH: one uint8 tensor of 27 channels (here quantized
    from the input ``raw``) -> DQ -> Slice [0, 18) -> Q -> DQ: the offset; Slice [18, 27) ->
    Q -> DQ -> Sigmoid -> Q -> DQ: the mask. With ``side_output`` the DQ before the slices is
    read by a graph output as well."""
    inits = [ow.tensor("xs", ow.FLOAT, [], [0.02]), _uint8_scalar("xzp", 100),
             ow.tensor("rs", ow.FLOAT, [], [0.07]), _uint8_scalar("rzp", 120),
             ow.tensor("ss", ow.FLOAT, [], [1 / 256]), _uint8_scalar("szp", 0),
             proto._tensor("wq", wq), proto._tensor("ws", ws),
             proto._tensor("wzp", np.zeros(o, np.int8))]
    for name, v in (("zero", 0), ("eighteen", 18), ("end", 27), ("one", 1)):
        inits.append(ow.tensor(name, ow.INT64, [1], [v]))
    nodes = [ow.node("QuantizeLinear", ["x", "xs", "xzp"], ["xq"]),
             ow.node("DequantizeLinear", ["xq", "xs", "xzp"], ["xd"]),
             ow.node("QuantizeLinear", ["raw", "rs", "rzp"], ["rq"]),
             ow.node("DequantizeLinear", ["rq", "rs", "rzp"], ["rd"]),
             ow.node("Slice", ["rd", "zero", "eighteen", "one"], ["o_f"]),
             ow.node("QuantizeLinear", ["o_f", "rs", "rzp"], ["o_q"]),
             ow.node("DequantizeLinear", ["o_q", "rs", "rzp"], ["offset"]),
             ow.node("Slice", ["rd", "eighteen", "end", "one"], ["m_f"]),
             ow.node("QuantizeLinear", ["m_f", "rs", "rzp"], ["m_q"]),
             ow.node("DequantizeLinear", ["m_q", "rs", "rzp"], ["m_d"]),
             ow.node("Sigmoid", ["m_d"], ["m_s"]),
             ow.node("QuantizeLinear", ["m_s", "ss", "szp"], ["m_sq"]),
             ow.node("DequantizeLinear", ["m_sq", "ss", "szp"], ["mask"]),
             ow.node("DequantizeLinear", ["wq", "ws", "wzp"], ["w"], axis=0),
             ow.node("DeformConv", ["xd", "w", "offset", "", "mask"], ["y"],
                     kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    outputs = [ow.value_info("y", ow.FLOAT, [1, o, s, s])]
    if side_output:
        nodes.append(ow.node("Relu", ["rd"], ["side"]))
        outputs.append(ow.value_info("side", ow.FLOAT, [1, 27, s, s]))
    io = [("x", [1, c, s, s]), ("raw", [1, 27, s, s])]
    g = ow.graph("merged_offsets", nodes, [ow.value_info(n, ow.FLOAT, d) for n, d in io],
                 outputs, inits)
    return ow.model(g, ir_version=9, opset=19)


@pytest.mark.parametrize("side_output", [False, True])
def test_the_sampler_reads_sliced_offsets_and_a_sigmoid_mask_from_the_uint8_tensor(
        monkeypatch, side_output):
    """offset and mask as channel slices of one uint8 tensor, the mask behind a Sigmoid
    between Q/DQ pairs (V1's SSH): the sampler reads the uint8 tensor, the offset as its
    DequantizeLinear and the mask through a table that ONNX Runtime computed, the Slice and
    Sigmoid nodes are gone unless something else reads them, and the outputs are those of
    the cut that keeps every node."""
    import onnx

    rng = np.random.default_rng(17)
    c, o, s = 14, 28, 13
    weight = rng.standard_normal((o, c, 3, 3)).astype(np.float32) / 10
    ws = (np.abs(weight).reshape(o, -1).max(1) / 127).astype(np.float32)
    wq = np.round(weight / ws[:, None, None, None]).astype(np.int8)
    model = _merged_offset_conv(c, o, s, wq, ws, side_output)
    fast = graph_cut.cut(model)
    (d,), = fast.stages[:1]
    assert (d.offset, d.mask) == ("rq", "rq") and fast.tables is not None
    assert (d.offset_from.start, d.offset_from.stop) == (0, 18)
    assert (d.mask_from.start, d.mask_from.stop) == (18, 27)
    seg0 = fast.segments[0]
    ops = {n.output[0]: n.op_type for n in onnx.load_from_string(seg0.model).graph.node}
    assert "Sigmoid" not in ops.values() and "Slice" not in ops.values()
    assert ("rd" in ops) == side_output  # for the side output
    feeds = {"x": rng.uniform(-2, 3, (1, c, s, s)).astype(np.float32),
             "raw": rng.uniform(-9, 9, (1, 27, s, s)).astype(np.float32)}
    session = runner.FastDcnSession(fast)
    specs = session._prepare(d, dict(zip(seg0.outputs, session._sessions[0].run(
        seg0.outputs, feeds))))[2][-2:]
    assert specs[0][0] is None and specs[0][1] == pytest.approx(0.07)  # the DequantizeLinear
    assert specs[1][0].shape == (256,)  # the sigmoid's table
    got = session.run(None, feeds)
    monkeypatch.setattr(graph_cut.uint8_inputs, "trace", lambda *a: None)
    kept = graph_cut.cut(model)
    assert kept.tables is None and kept.stages[0][0].offset == "offset"
    want = runner.FastDcnSession(kept).run(None, feeds)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_a_gemm_output_read_by_a_later_part_has_its_rank(monkeypatch):
    """A DCN's NHWC output (or its columns), an input of the part after it, is declared with
    rank 4 and its channels: without a rank ONNX Runtime's NHWC transformer leaves the
    QLinearConv that reads it in NCHW between two Transposes (0.51 against 0.45 ms for V1's
    three)."""
    import onnx

    rng = np.random.default_rng(5)
    weight = rng.standard_normal((14, 14, 3, 3)).astype(np.float32) / 10
    ws = (np.abs(weight).reshape(14, -1).max(1) / 127).astype(np.float32)
    wq = np.round(weight / ws[:, None, None, None]).astype(np.int8)
    model = _qdq_deformconv(14, 14, 13, 0.02, 100, wq, ws, np.zeros(14, np.float32))
    for limit, name, width in ((128, "y__dcn_cols", 126), (0, "y__nhwc", 14)):
        monkeypatch.setattr(graph_cut, "NEXT_PART_MAX_BYTES", limit)
        fast = graph_cut.cut(model)
        assert len(fast.segments) == 2  # the last transposes the graph output to NCHW
        last = onnx.load_from_string(fast.segments[-1].model)
        dims = {i.name: [d.dim_value or None for d in i.type.tensor_type.shape.dim]
                for i in last.graph.input}
        assert dims == {name: [None, None, None, width]}


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
    assert d.offset_from.linear == (pytest.approx(0.07), 120)
    assert d.mask_from.linear == (pytest.approx(1 / 255), 0)
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
    monkeypatch.setattr(graph_cut.uint8_inputs, "trace", lambda *a: None)
    kept = graph_cut.cut(model)
    assert (kept.stages[0][0].offset, kept.stages[0][0].offset_from) == ("od", None)
    np.testing.assert_array_equal(got, runner.FastDcnSession(kept).run(None, feeds)[0])


def test_a_dcn_with_wide_columns_runs_in_bands_with_the_same_outputs(monkeypatch):
    """Columns over BAND_BYTES are sampled and multiplied a band of output rows at a time
    (V1 FP32's widest DCNs: 5.4 MB in 2 bands): the outputs are those of the whole."""
    rng = np.random.default_rng(19)
    c, o, s = 14, 28, 13
    weight = rng.standard_normal((o, c, 3, 3)).astype(np.float32) / 10
    ws = (np.abs(weight).reshape(o, -1).max(1) / 127).astype(np.float32)
    wq = np.round(weight / ws[:, None, None, None]).astype(np.int8)
    model = _qdq_deformconv(c, o, s, 0.02, 100, wq, ws, rng.standard_normal(o).astype(np.float32))
    feeds = {"x": rng.uniform(-2, 3, (1, c, s, s)).astype(np.float32),
             "offset": random_offsets(rng, (1, 18, s, s)),
             "mask": rng.uniform(0, 1, (1, 9, s, s)).astype(np.float32)}
    for quantize_columns in (False, True):  # float columns; uint8 in its own run
        monkeypatch.setattr(graph_cut, "NEXT_PART_MAX_BYTES", 0)
        fast = graph_cut.cut(model, quantize_columns=quantize_columns)
        whole = runner.FastDcnSession(fast).run(None, feeds)[0]
        monkeypatch.setattr(runner, "BAND_BYTES", 5000)  # 13 rows of 126 or 504 bytes: bands
        banded = runner.FastDcnSession(fast)
        np.testing.assert_array_equal(banded.run(None, feeds)[0], whole)
        (_, bands, _), = banded._calls.values()
        assert len(bands) > 1 and sum(rows for _, rows in bands) == s
        monkeypatch.undo()


@pytest.mark.parametrize("source", ["graph input", "constant"])
def test_a_uint8_offset_that_no_segment_computes_stays_with_its_dequantizelinear(source):
    """The sampler reads a uint8 tensor only when a segment computes it: a uint8 graph input
    keeps its DequantizeLinear (no part would declare the input: get_inputs() lost it) and
    the model runs; a constant offset (no part exports it) keeps ONNX Runtime's kernel."""
    rng = np.random.default_rng(23)
    c, o, s = 14, 28, 13
    weight = rng.standard_normal((o, c, 3, 3)).astype(np.float32) / 10
    ws = (np.abs(weight).reshape(o, -1).max(1) / 127).astype(np.float32)
    wq = np.round(weight / ws[:, None, None, None]).astype(np.int8)
    oq = rng.integers(100, 140, (1, 18, s, s)).astype(np.uint8)
    inits = [ow.tensor("xs", ow.FLOAT, [], [0.02]), _uint8_scalar("xzp", 100),
             ow.tensor("os", ow.FLOAT, [], [0.07]), _uint8_scalar("ozp", 120),
             proto._tensor("wq", wq), proto._tensor("ws", ws),
             proto._tensor("wzp", np.zeros(o, np.int8))]
    nodes = [ow.node("QuantizeLinear", ["x", "xs", "xzp"], ["xq"]),
             ow.node("DequantizeLinear", ["xq", "xs", "xzp"], ["xd"]),
             ow.node("DequantizeLinear", ["oq", "os", "ozp"], ["offset"]),
             ow.node("DequantizeLinear", ["wq", "ws", "wzp"], ["w"], axis=0),
             ow.node("DeformConv", ["xd", "w", "offset"], ["y"], kernel_shape=[3, 3],
                     pads=[1, 1, 1, 1])]
    inputs = [ow.value_info("x", ow.FLOAT, [1, c, s, s])]
    feeds = {"x": rng.uniform(-2, 3, (1, c, s, s)).astype(np.float32)}
    if source == "graph input":
        inputs.append(ow.value_info("oq", UINT8, [1, 18, s, s]))
        feeds["oq"] = oq
    else:  # QuantizeLinear of a float initializer
        inits.append(ow.tensor("of", ow.FLOAT, [1, 18, s, s],
                               ((oq.astype(np.float32) - 120) * 0.07).ravel().tolist()))
        nodes.insert(0, ow.node("QuantizeLinear", ["of", "os", "ozp"], ["oq"]))
    model = ow.model(ow.graph("uint8_offset_source", nodes, inputs,
                              [ow.value_info("y", ow.FLOAT, [1, o, s, s])], inits),
                     ir_version=9, opset=19)
    if source == "constant":
        with pytest.raises(graph_cut.CutError, match="constant"):
            graph_cut.cut(model)
        return
    fast = graph_cut.cut(model)
    (d,), = fast.stages[:1]
    assert d.offset == "offset" and d.offset_from is None and fast.tables is None
    session = runner.FastDcnSession(fast)
    assert sorted(i.name for i in session.get_inputs()) == sorted(feeds)
    got = session.run(None, feeds)[0]
    assert got.shape == (1, o, s, s) and np.isfinite(got).all()
