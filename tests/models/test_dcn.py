"""Modulated deformable convolution: custom op and grid_sample path vs a slow reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs torch: pip install '.[export]'")

from edgeface.models.featherface.dcn import (
    ModulatedDeformConv2d,
    dcn_mode,
    deform_conv2d,
    deform_conv2d_gridsample,
    get_dcn_mode,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def deform_conv2d_reference(x, offset, mask, weight, bias=None, stride=1, padding=1, dilation=1):
    """Slow, obviously-correct DCNv2 (torchvision / ONNX DeformConv semantics), float64.

    Loops over batch, output pixel and kernel tap; bilinear sampling with zeros outside.
    """
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    x, off, m, wt = (t.detach().double().numpy() for t in (x, offset, mask, weight))
    n, c, h, w = x.shape
    o, _, kh, kw = wt.shape
    oh, ow = off.shape[2:]

    def pixel(b, yy, xx):
        return x[b, :, yy, xx] if (0 <= yy < h and 0 <= xx < w) else np.zeros(c)

    out = np.zeros((n, o, oh, ow))
    for b in range(n):
        for oy in range(oh):
            for ox in range(ow):
                acc = np.zeros(o)
                for i in range(kh):
                    for j in range(kw):
                        k = i * kw + j
                        y = oy * sh - ph + i * dh + off[b, 2 * k, oy, ox]
                        xs = ox * sw - pw + j * dw + off[b, 2 * k + 1, oy, ox]
                        y0, x0 = math.floor(y), math.floor(xs)
                        ly, lx = y - y0, xs - x0
                        v = (
                            (1 - ly) * (1 - lx) * pixel(b, y0, x0)
                            + (1 - ly) * lx * pixel(b, y0, x0 + 1)
                            + ly * (1 - lx) * pixel(b, y0 + 1, x0)
                            + ly * lx * pixel(b, y0 + 1, x0 + 1)
                        )
                        acc += wt[:, :, i, j] @ (v * m[b, k, oy, ox])
                out[b, :, oy, ox] = acc
    if bias is not None:
        out += bias.detach().double().numpy()[None, :, None, None]
    return torch.from_numpy(out)


def _out(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _inputs(seed, n, c, h, w, o, kh, kw, stride, padding, dilation, scale, bias=True):
    g = torch.Generator().manual_seed(seed)
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    oh, ow = _out(h, kh, sh, ph, dh), _out(w, kw, sw, pw, dw)
    x = torch.randn(n, c, h, w, generator=g)
    offset = torch.randn(n, 2 * kh * kw, oh, ow, generator=g) * scale
    # Hand-placed edge cases: integer positions, exactly -1 / H, far outside, near the border.
    offset[0, 0, 0, 0] = -1.0
    offset[0, 1, 0, 0] = 0.5
    offset[-1, 2, 0, 0] = float(h)
    offset[-1, 3, -1, -1] = -(w + 5.0)
    offset[0, -2, -1, -1] = 1.0 - 1e-3
    mask = torch.rand(n, kh * kw, oh, ow, generator=g) * 2
    weight = torch.randn(o, c, kh, kw, generator=g)
    b = torch.randn(o, generator=g) if bias else None
    return x, offset, mask, weight, b


CASES = [
    # stride, padding, dilation, (kh, kw), offset scale
    (1, 1, 1, (3, 3), 2.0),
    (2, 1, 1, (3, 3), 3.0),
    (1, 0, 1, (3, 3), 0.6),
    (2, 2, 2, (3, 3), 4.0),
    (1, (1, 2), 1, (2, 3), 6.0),  # non-square kernel, asymmetric padding
    (1, 1, 1, (3, 3), 0.0),  # plain convolution (integer positions only)
    (1, 1, 1, (3, 3), 25.0),  # mostly outside the image
]


@pytest.mark.parametrize("stride,padding,dilation,ksize,scale", CASES)
def test_op_and_gridsample_match_reference(stride, padding, dilation, ksize, scale):
    args = _inputs(0, 2, 3, 7, 8, 4, *ksize, stride, padding, dilation, scale)
    ref = deform_conv2d_reference(*args, stride, padding, dilation)
    op = deform_conv2d(*args, stride, padding, dilation)
    gs = deform_conv2d_gridsample(*args, stride, padding, dilation)
    assert op.shape == ref.shape == gs.shape
    assert (op.double() - ref).abs().max().item() < 1e-4
    assert (gs - op).abs().max().item() < 1e-4


def test_without_bias_and_zero_offsets_equals_conv2d():
    x, offset, mask, weight, _ = _inputs(1, 1, 5, 9, 9, 6, 3, 3, 1, 1, 1, 0.0, bias=False)
    offset.zero_()
    mask.fill_(1.0)
    conv = torch.nn.functional.conv2d(x, weight, None, 1, 1)
    assert (deform_conv2d(x, offset, mask, weight) - conv).abs().max().item() < 1e-4
    assert (deform_conv2d_gridsample(x, offset, mask, weight) - conv).abs().max().item() < 1e-4


def test_shape_validation():
    x, offset, mask, weight, _ = _inputs(2, 1, 3, 6, 6, 4, 3, 3, 1, 1, 1, 1.0)
    with pytest.raises(ValueError, match="offset"):
        deform_conv2d(x, offset[:, :4], mask, weight)
    with pytest.raises(ValueError, match="mask"):
        deform_conv2d_gridsample(x, offset, mask[:, :3], weight)


def test_module_modes_agree_and_mode_is_scoped():
    torch.manual_seed(0)
    for stride, padding in [(1, 1), (2, 1), (1, 2)]:
        m = ModulatedDeformConv2d(6, 5, 3, stride, padding, bias=True).eval()
        for p in m.parameters():
            torch.nn.init.normal_(p, std=0.3)
        x = torch.randn(2, 6, 11, 9)
        with torch.no_grad():
            a = m(x)
            with dcn_mode("gridsample"):
                assert get_dcn_mode() == "gridsample"
                b = m(x)
        assert get_dcn_mode() == "op"
        assert (a - b).abs().max().item() < 1e-4
    with pytest.raises(ValueError):
        with dcn_mode("cuda-magic"):
            pass


def test_export_sees_one_custom_op_node():
    m = ModulatedDeformConv2d(4, 4).eval()
    ep = torch.export.export(m, (torch.randn(1, 4, 8, 8),))
    targets = [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]
    assert targets.count("edgeface.deform_conv2d.default") == 1
    assert not any("grid_sampler" in t or "index_select" in t for t in targets)


def test_gradients_match_autograd_of_reference_maths():
    x, offset, mask, weight, bias = (
        t.double().requires_grad_() for t in _inputs(3, 1, 2, 4, 4, 2, 3, 3, 1, 1, 1, 0.7)
    )
    with torch.no_grad():  # keep samples away from integer kinks
        offset += 0.013
    torch.autograd.gradcheck(
        lambda *a: deform_conv2d(*a),
        (x, offset, mask, weight, bias),
        eps=1e-6,
        atol=1e-5,
        fast_mode=True,
    )
