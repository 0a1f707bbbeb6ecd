"""Modulated deformable convolution (DCNv2) without torchvision.

Semantics follow ``torchvision.ops.deform_conv2d`` and ONNX ``DeformConv`` (one offset group,
one weight group): for output pixel ``(oy, ox)`` and kernel tap ``k = i * kw + j`` the input is
sampled bilinearly (zeros outside the image) at::

    y = oy * stride_h - pad_h + i * dil_h + offset[:, 2k]
    x = ox * stride_w - pad_w + j * dil_w + offset[:, 2k + 1]

multiplied by ``mask[:, k]`` and contracted with ``weight[:, :, i, j]``.

Two implementations share these semantics:

* :func:`deform_conv2d` -- the ``edgeface::deform_conv2d`` custom op (one graph node for
  ``torch.export`` / dynamo ONNX export; map it to ONNX ``DeformConv``). Eager kernel: one
  matmul applying the per-tap weights, one row gather of the bilinear corners, one bmm.
* :func:`deform_conv2d_gridsample` -- plain ``grid_sample`` + matmul, exportable to standard
  ONNX (opset >= 16) with static shapes, for runtimes without ``DeformConv`` (e.g. TensorRT).

:class:`ModulatedDeformConv2d` picks one of them according to :func:`dcn_mode`.
"""

import contextlib
import threading
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "DCN_MODES",
    "FusedOffsetDeformConv2d",
    "ModulatedDeformConv2d",
    "dcn_mode",
    "deform_conv2d",
    "deform_conv2d_gridsample",
    "get_dcn_mode",
]

IntPair = Union[int, Sequence[int]]
DCN_MODES = ("op", "gridsample")


def _pair(v: IntPair, name: str) -> List[int]:
    if isinstance(v, int):
        return [v, v]
    out = [int(e) for e in v]
    if len(out) != 2:
        raise ValueError(f"{name} must be an int or a pair, got {v!r}")
    return out


def _out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _check_shapes(
    x: Tensor, offset: Tensor, mask: Tensor, weight: Tensor, stride, padding, dilation
) -> Tuple[int, int, int, int]:
    """Validate shapes; return (kh, kw, oh, ow)."""
    if x.dim() != 4 or weight.dim() != 4:
        raise ValueError("x and weight must be 4-D (N, C, H, W) / (O, C, kh, kw)")
    n, c, h, w = x.shape
    o, cw, kh, kw = weight.shape
    if cw != c:
        raise ValueError(f"weight expects {cw} input channels, x has {c} (groups unsupported)")
    oh = _out_size(h, kh, stride[0], padding[0], dilation[0])
    ow = _out_size(w, kw, stride[1], padding[1], dilation[1])
    k = kh * kw
    if tuple(offset.shape) != (n, 2 * k, oh, ow):
        raise ValueError(
            f"offset must have shape {(n, 2 * k, oh, ow)}, got {tuple(offset.shape)} "
            "(only one offset group is supported)"
        )
    if tuple(mask.shape) != (n, k, oh, ow):
        raise ValueError(f"mask must have shape {(n, k, oh, ow)}, got {tuple(mask.shape)}")
    return kh, kw, oh, ow


def _base_grid(
    kh: int, kw: int, oh: int, ow: int, stride, padding, dilation, dtype, device
) -> Tuple[Tensor, Tensor]:
    """Undeformed sampling positions, each [K, oh, ow] (y and x)."""
    ky = torch.arange(kh, dtype=dtype, device=device) * dilation[0]
    kx = torch.arange(kw, dtype=dtype, device=device) * dilation[1]
    oy = torch.arange(oh, dtype=dtype, device=device) * stride[0] - padding[0]
    ox = torch.arange(ow, dtype=dtype, device=device) * stride[1] - padding[1]
    by = ky.view(kh, 1, 1, 1) + oy.view(1, 1, oh, 1)  # [kh, 1, oh, 1]
    bx = kx.view(1, kw, 1, 1) + ox.view(1, 1, 1, ow)  # [1, kw, 1, ow]
    by = by.expand(kh, kw, oh, ow).reshape(kh * kw, oh, ow)
    bx = bx.expand(kh, kw, oh, ow).reshape(kh * kw, oh, ow)
    return by, bx


def _deform_conv2d_eager(
    x: Tensor,
    offset: Tensor,
    mask: Tensor,
    weight: Tensor,
    bias: Optional[Tensor],
    stride: List[int],
    padding: List[int],
    dilation: List[int],
) -> Tensor:
    """Vectorised CPU/GPU kernel ("weights first, then sample").

    Bilinear sampling is linear and each tap's weight only mixes channels, so the taps are
    applied first with one matmul over all (zero-bordered) input pixels, ``[HW, C] @ [C, K*O]``.
    The four bilinear corners of every (output pixel, tap) are then fetched from that table as
    O-vectors with a single row gather, and corners x taps are reduced with one batched matmul
    against the bilinear-times-mask coefficients. Gathering O-vectors instead of C-vectors
    moves less data for the SSH layers (O <= C).
    """
    kh, kw, oh, ow = _check_shapes(x, offset, mask, weight, stride, padding, dilation)
    n, c, h, w = x.shape
    o = weight.shape[0]
    k = kh * kw
    hp, wp = h + 2, w + 2  # 1-px zero border on every side
    by, bx = _base_grid(kh, kw, oh, ow, stride, padding, dilation, x.dtype, x.device)
    off = offset.reshape(n, k, 2, oh, ow)
    # Positions in bordered coordinates. Outside (0, size + 1) a sample only sees zeros, so
    # clamping keeps the result exact while keeping every corner index in range.
    py = (off[:, :, 0] + (by + 1)).clamp_(0, h + 1).permute(0, 2, 3, 1)  # [n, oh, ow, k]
    px = (off[:, :, 1] + (bx + 1)).clamp_(0, w + 1).permute(0, 2, 3, 1)
    # Top-left corner y0 <= h so y0 + 1 stays inside; at py == h + 1 this gives weight 1 on
    # the (zero) border row.
    y0 = py.floor().clamp_(max=h)
    x0 = px.floor().clamp_(max=w)
    ly = py - y0
    lx = px - x0
    hy = 1.0 - ly
    hx = 1.0 - lx
    coef = torch.stack((hy * hx, hy * lx, ly * hx, ly * lx), dim=-1)
    coef = coef * mask.permute(0, 2, 3, 1).unsqueeze(-1)  # [n, oh, ow, k, 4]

    # Per-tap projections of every bordered input pixel: row (pixel * k + tap) holds O values.
    table = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1).reshape(n * hp * wp, c)
    wmat = weight.permute(1, 2, 3, 0).reshape(c, k * o)
    proj = torch.matmul(table, wmat).view(n * hp * wp * k, o)

    pix = y0.long() * wp + x0.long() + torch.arange(n, device=x.device).view(n, 1, 1, 1) * (hp * wp)
    row = pix * k + torch.arange(k, device=x.device)  # [n, oh, ow, k]
    corner = torch.tensor([0, 1, wp, wp + 1], device=x.device) * k
    rows = proj.index_select(0, (row.unsqueeze(-1) + corner).reshape(-1))
    rows = rows.view(n * oh * ow, k * 4, o)
    out = torch.bmm(coef.reshape(n * oh * ow, 1, k * 4), rows).view(n, oh * ow, o)
    if bias is not None:
        out = out + bias
    return out.permute(0, 2, 1).reshape(n, o, oh, ow)


@torch.library.custom_op("edgeface::deform_conv2d", mutates_args=())
def _deform_conv2d_op(
    x: Tensor,
    offset: Tensor,
    mask: Tensor,
    weight: Tensor,
    bias: Optional[Tensor],
    stride: List[int],
    padding: List[int],
    dilation: List[int],
) -> Tensor:
    return _deform_conv2d_eager(x, offset, mask, weight, bias, stride, padding, dilation)


@_deform_conv2d_op.register_fake
def _(x, offset, mask, weight, bias, stride, padding, dilation):
    kh, kw = weight.shape[2], weight.shape[3]
    oh = (x.shape[2] + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (x.shape[3] + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    return x.new_empty((x.shape[0], weight.shape[0], oh, ow))


def _setup_context(ctx, inputs, output):
    x, offset, mask, weight, bias, stride, padding, dilation = inputs
    ctx.save_for_backward(x, offset, mask, weight, bias)
    ctx.conf = (stride, padding, dilation)


def _backward(ctx, grad):
    # Gradients by recomputing the (differentiable) eager kernel; fine for fine-tuning, not
    # optimised. Offsets sampling only zeros get zero gradient, as in torchvision.
    saved = ctx.saved_tensors
    with torch.enable_grad():
        leaves = [t.detach().requires_grad_(True) if t is not None else None for t in saved]
        out = _deform_conv2d_eager(*leaves, *ctx.conf)
        used = [t for t in leaves if t is not None]
        grads = iter(torch.autograd.grad(out, used, grad, allow_unused=True))
    return (*[next(grads) if t is not None else None for t in leaves], None, None, None)


_deform_conv2d_op.register_autograd(_backward, setup_context=_setup_context)


def deform_conv2d(
    x: Tensor,
    offset: Tensor,
    mask: Tensor,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    stride: IntPair = 1,
    padding: IntPair = 1,
    dilation: IntPair = 1,
) -> Tensor:
    """Modulated deformable conv via the ``edgeface::deform_conv2d`` custom op.

    Args:
        x: input [N, C, H, W].
        offset: [N, 2*kh*kw, oH, oW], (dy, dx) per kernel tap, taps row-major.
        mask: [N, kh*kw, oH, oW] modulation scalars.
        weight: [O, C, kh, kw]; bias: optional [O].
    Returns:
        [N, O, oH, oW].
    """
    return torch.ops.edgeface.deform_conv2d(
        x,
        offset,
        mask,
        weight,
        bias,
        _pair(stride, "stride"),
        _pair(padding, "padding"),
        _pair(dilation, "dilation"),
    )


def _normalised_base_grid(
    h: int, w: int, kh: int, kw: int, oh: int, ow: int, stride, padding, dilation, like: Tensor
) -> Tensor:
    """Undeformed sampling positions as grid_sample coordinates, [K, oh, ow, (x, y)].

    ``grid_sample(align_corners=False)`` maps pixel p to (2p + 1) / size - 1. Built with numpy
    so that every exporter sees a plain constant (no Range/Shape ops).
    """
    k = kh * kw
    ky, kx = np.meshgrid(np.arange(kh) * dilation[0], np.arange(kw) * dilation[1], indexing="ij")
    oy = np.arange(oh) * stride[0] - padding[0]
    ox = np.arange(ow) * stride[1] - padding[1]
    by = ky.reshape(k, 1, 1) + oy.reshape(1, oh, 1) + np.zeros((1, 1, ow))
    bx = kx.reshape(k, 1, 1) + ox.reshape(1, 1, ow) + np.zeros((1, oh, 1))
    base = np.stack(((2.0 * bx + 1.0) / w - 1.0, (2.0 * by + 1.0) / h - 1.0), axis=-1)
    return torch.from_numpy(base.astype(np.float32)).to(like.device, like.dtype)


def _sample_and_contract(
    x: Tensor, grid: Tensor, mask: Tensor, weight: Tensor, bias: Optional[Tensor], oh: int, ow: int
) -> Tensor:
    """GridSample all taps at once ([N, K*oH, oW, 2] grid), modulate, contract with a 1x1 conv."""
    n, c = int(x.shape[0]), int(x.shape[1])
    o, k = int(weight.shape[0]), int(weight.shape[2] * weight.shape[3])
    sampled = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    sampled = sampled * mask.reshape(n, 1, k * oh, ow)  # [n, c, k*oh, ow]
    cols = sampled.reshape(n, c * k, oh, ow)  # channel-major, tap-minor = weight layout
    return F.conv2d(cols, weight.reshape(o, c * k, 1, 1), bias)


def deform_conv2d_gridsample(
    x: Tensor,
    offset: Tensor,
    mask: Tensor,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    stride: IntPair = 1,
    padding: IntPair = 1,
    dilation: IntPair = 1,
) -> Tensor:
    """Same maths as :func:`deform_conv2d` built from ``grid_sample`` + a 1x1 conv.

    Shapes are read as Python ints, so a fixed-size export yields constant grids and reshapes
    (no Shape/Gather chains). Graph: Reshape, Transpose, MatMul(2x2), Add, Reshape, GridSample,
    Reshape, Mul, Reshape, Conv(1x1) -- the (dy, dx) -> normalised (x, y) swap and scaling are
    one constant 2x2 matrix and the base grid one constant.
    """
    stride = _pair(stride, "stride")
    padding = _pair(padding, "padding")
    dilation = _pair(dilation, "dilation")
    kh, kw, oh, ow = _check_shapes(x, offset, mask, weight, stride, padding, dilation)
    n, c, h, w = (int(s) for s in x.shape)
    k = kh * kw
    base = _normalised_base_grid(h, w, kh, kw, oh, ow, stride, padding, dilation, offset)
    # (dy, dx) row vector @ swap = (2 dx / W, 2 dy / H): reorder + scale in one MatMul.
    swap = np.array([[0.0, 2.0 / h], [2.0 / w, 0.0]], dtype=np.float32)
    swap = torch.from_numpy(swap).to(offset.device, offset.dtype)
    off = offset.reshape(n, k, 2, oh, ow).permute(0, 1, 3, 4, 2)  # [n, k, oh, ow, (dy, dx)]
    grid = (torch.matmul(off, swap) + base).reshape(n, k * oh, ow, 2)  # (x, y) in [-1, 1]
    return _sample_and_contract(x, grid, mask, weight, bias, oh, ow)


# ---------------------------------------------------------------------------------------------
# Module + mode switch
# ---------------------------------------------------------------------------------------------

_state = threading.local()


def get_dcn_mode() -> str:
    """Current implementation used by :class:`ModulatedDeformConv2d`: ``"op"`` or
    ``"gridsample"``."""
    return getattr(_state, "mode", "op")


@contextlib.contextmanager
def dcn_mode(mode: str) -> Iterator[None]:
    """Temporarily select the DCN implementation (thread-local), e.g. for ONNX export::

    with dcn_mode("gridsample"):
        torch.onnx.export(model, ...)
    """
    if mode not in DCN_MODES:
        raise ValueError(f"unknown DCN mode {mode!r}; expected one of {DCN_MODES}")
    previous = get_dcn_mode()
    _state.mode = mode
    try:
        yield
    finally:
        _state.mode = previous


class ModulatedDeformConv2d(nn.Module):
    """DCNv2 layer matching upstream FeatherFace ``DeformableConv2d``.

    ``offset_conv`` and ``modulator_conv`` are plain convs over the input; the modulation mask
    is ``2 * sigmoid(modulator_conv(x))`` (upstream's choice, range (0, 2)).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        dilation: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        k = kernel_size * kernel_size
        conv = dict(kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation)
        self.offset_conv = nn.Conv2d(in_ch, 2 * k, bias=True, **conv)
        self.modulator_conv = nn.Conv2d(in_ch, k, bias=True, **conv)
        self.regular_conv = nn.Conv2d(in_ch, out_ch, bias=bias, **conv)
        nn.init.zeros_(self.offset_conv.weight)
        nn.init.zeros_(self.offset_conv.bias)
        nn.init.zeros_(self.modulator_conv.weight)
        nn.init.zeros_(self.modulator_conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        if get_dcn_mode() == "gridsample":
            return self._forward_gridsample(x)
        offset = self.offset_conv(x)
        mask = 2.0 * torch.sigmoid(self.modulator_conv(x))
        return deform_conv2d(
            x,
            offset,
            mask,
            self.regular_conv.weight,
            self.regular_conv.bias,
            self.stride,
            self.padding,
            self.dilation,
        )

    def _forward_gridsample(self, x: Tensor) -> Tensor:
        """Export-lean grid_sample path; parameter-only maths folds into constants on export.

        * offset_conv's output channels are reordered from (dy, dx) to (x, y) and pre-scaled to
          grid units, so its output plus a constant base grid *is* the sampling grid;
        * the mask's factor 2 is moved into the (linear) contraction weights.
        Per layer: Conv, Reshape, Transpose, Add, Reshape | Conv, Sigmoid, Reshape |
        GridSample, Mul, Reshape, Conv.
        """
        n, _, h, w = (int(s) for s in x.shape)
        kh, kw = self.regular_conv.kernel_size
        k = kh * kw
        stride, padding = self.regular_conv.stride, self.regular_conv.padding
        dilation = self.regular_conv.dilation
        oh = _out_size(h, kh, stride[0], padding[0], dilation[0])
        ow = _out_size(w, kw, stride[1], padding[1], dilation[1])
        scale = torch.tensor([2.0 / w, 2.0 / h], dtype=x.dtype, device=x.device)
        w_off = self.offset_conv.weight
        w_off = (w_off.reshape(k, 2, -1).flip(1) * scale.view(1, 2, 1)).reshape(w_off.shape)
        b_off = (self.offset_conv.bias.reshape(k, 2).flip(1) * scale).reshape(-1)
        g = F.conv2d(x, w_off, b_off, stride, padding, dilation)  # [n, k*(x, y), oh, ow]
        base = _normalised_base_grid(h, w, kh, kw, oh, ow, stride, padding, dilation, x)
        grid = (g.reshape(n, k, 2, oh, ow).permute(0, 1, 3, 4, 2) + base).reshape(n, k * oh, ow, 2)
        mask = torch.sigmoid(self.modulator_conv(x))
        weight = 2.0 * self.regular_conv.weight
        return _sample_and_contract(x, grid, mask, weight, self.regular_conv.bias, oh, ow)


class FusedOffsetDeformConv2d(nn.Module):
    """Inference form of :class:`ModulatedDeformConv2d`: offset and modulator convs merged
    into one conv (same input, same kernel), split after. Identical outputs, one larger GEMM
    instead of two small ones; used by the ONNX export."""

    def __init__(self, offset_mask: nn.Conv2d, split: int, regular_conv: nn.Conv2d,
                 stride, padding, dilation) -> None:
        super().__init__()
        self.offset_mask = offset_mask
        self.split = split
        self.regular_conv = regular_conv
        self.stride, self.padding, self.dilation = stride, padding, dilation

    @classmethod
    def from_module(cls, m: ModulatedDeformConv2d) -> "FusedOffsetDeformConv2d":
        off, mod = m.offset_conv, m.modulator_conv
        merged = nn.Conv2d(off.in_channels, off.out_channels + mod.out_channels, off.kernel_size,
                           off.stride, off.padding, off.dilation)
        with torch.no_grad():
            merged.weight.copy_(torch.cat([off.weight, mod.weight]))
            merged.bias.copy_(torch.cat([off.bias, mod.bias]))
        return cls(merged, off.out_channels, m.regular_conv, m.stride, m.padding, m.dilation)

    def forward(self, x: Tensor) -> Tensor:
        om = self.offset_mask(x)
        mask = 2.0 * torch.sigmoid(om[:, self.split:])
        fn = deform_conv2d if get_dcn_mode() == "op" else deform_conv2d_gridsample
        return fn(x, om[:, : self.split], mask, self.regular_conv.weight, self.regular_conv.bias,
                  self.stride, self.padding, self.dilation)
