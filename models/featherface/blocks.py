"""FeatherFace building blocks, re-implemented to match upstream state_dict names and maths.

Upstream: github.com/fokouarnaud/FeatherFace (MIT), ``models/net.py`` and friends. Quirks kept
on purpose because the trained weights depend on them:

* MobileNetV1-0.25 uses LeakyReLU(0.1) everywhere; SSH uses LeakyReLU(0.1) inside the 5x5/7x7
  branches (``out_channels <= 64``) and a plain ReLU after the concat.
* BiFPN (EfficientDet/Zylo117 style): fast normalised fusion ``relu(w) / (sum(relu(w)) + 1e-4)``,
  Swish before every separable conv, BatchNorm eps 1e-3, nearest upsampling to the target size
  and a 3x3/2 max-pool whose "same" padding is done with *zeros* (F.pad) and is asymmetric
  (right/bottom) for even sizes. The first cell projects the backbone maps twice (``*_down_channel``
  for the top-down path and ``*_down_channel_2`` for the bottom-up inputs).
* DCN modulation mask is ``2 * sigmoid`` (see :mod:`.dcn`).
"""

from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgeface.models.featherface.dcn import ModulatedDeformConv2d

# ---------------------------------------------------------------------------------------------
# Backbone
# ---------------------------------------------------------------------------------------------


def _conv_bn(inp: int, oup: int, stride: int, leaky: float = 0.1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, oup, 3, stride, 1, bias=False),
        nn.BatchNorm2d(oup),
        nn.LeakyReLU(negative_slope=leaky, inplace=True),
    )


def _conv_dw(inp: int, oup: int, stride: int, leaky: float = 0.1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
        nn.BatchNorm2d(inp),
        nn.LeakyReLU(negative_slope=leaky, inplace=True),
        nn.Conv2d(inp, oup, 1, 1, 0, bias=False),
        nn.BatchNorm2d(oup),
        nn.LeakyReLU(negative_slope=leaky, inplace=True),
    )


class MobileNetV1(nn.Module):
    """MobileNetV1 x0.25 trunk; returns the stride 8/16/32 maps (64/128/256 channels)."""

    out_channels = (64, 128, 256)

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(
            _conv_bn(3, 8, 2),
            _conv_dw(8, 16, 1),
            _conv_dw(16, 32, 2),
            _conv_dw(32, 32, 1),
            _conv_dw(32, 64, 2),
            _conv_dw(64, 64, 1),
        )
        self.stage2 = nn.Sequential(
            _conv_dw(64, 128, 2),
            *[_conv_dw(128, 128, 1) for _ in range(5)],
        )
        self.stage3 = nn.Sequential(
            _conv_dw(128, 256, 2),
            _conv_dw(256, 256, 1),
        )

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        c3 = self.stage1(x)
        c4 = self.stage2(c3)
        c5 = self.stage3(c4)
        return c3, c4, c5


# ---------------------------------------------------------------------------------------------
# BiFPN
# ---------------------------------------------------------------------------------------------


def _same_pad(h: int, w: int, k: int, s: int) -> List[int]:
    """TF 'SAME' padding as F.pad order [left, right, top, bottom] (upstream formula).

    Integer arithmetic only, so it also works on symbolic sizes (dynamic-shape export).
    """
    extra_w = ((w + s - 1) // s - 1) * s - w + k
    extra_h = ((h + s - 1) // s - 1) * s - h + k
    return [extra_w // 2, extra_w - extra_w // 2, extra_h // 2, extra_h - extra_h // 2]


class SameConv2d(nn.Module):
    """Conv with TF-'SAME' zero padding; the conv lives in ``.conv`` (state_dict name).

    Stride-1 odd kernels pad symmetrically, so the padding goes into the conv itself (no Pad
    node on export); other cases pad explicitly as upstream does.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        stride: int = 1,
        bias: bool = True,
        groups: int = 1,
    ) -> None:
        super().__init__()
        self.k = kernel_size
        self.s = stride
        self.static = stride == 1 and kernel_size % 2 == 1
        pad = (kernel_size - 1) // 2 if self.static else 0
        self.conv = nn.Conv2d(
            in_ch, out_ch, kernel_size, stride=stride, padding=pad, bias=bias, groups=groups
        )

    def forward(self, x: Tensor) -> Tensor:
        if not self.static:
            x = F.pad(x, _same_pad(x.shape[-2], x.shape[-1], self.k, self.s))
        return self.conv(x)


class MaxPool2dSame(nn.Module):
    """Max-pool after zero 'SAME' padding, exactly as upstream (zeros, not -inf).

    Computed as a -inf-padded (ceil-mode) max-pool followed by ``max(., 0)`` on the outputs
    whose window touches the padding. Same result, but robust on export: ONNX Runtime's
    Pad->MaxPool fusion would otherwise silently turn the zero padding into -inf padding.
    """

    def __init__(self, kernel_size: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.k = kernel_size
        self.s = stride

    def _border(self, size: int, before: int) -> np.ndarray:
        """Which output positions along one axis have a window reaching into the padding."""
        n_out = math.ceil(size / self.s)
        start = np.arange(n_out) * self.s - before
        return (start < 0) | (start + self.k > size)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2], x.shape[-1]
        left, right, top, bottom = _same_pad(h, w, self.k, self.s)
        if not (isinstance(h, int) and isinstance(w, int)):
            return self._forward_symbolic(x, left, right, top, bottom)
        if not (left <= right and top <= bottom and 2 * max(top, left) <= self.k):
            return F.max_pool2d(F.pad(x, [left, right, top, bottom]), self.k, self.s)
        y = F.max_pool2d(x, self.k, self.s, padding=(top, left), ceil_mode=True)
        rows, cols = self._border(h, top), self._border(w, left)
        if y.shape[-2] != rows.size or y.shape[-1] != cols.size:  # not SAME-shaped: fall back
            return F.max_pool2d(F.pad(x, [left, right, top, bottom]), self.k, self.s)
        border = rows[:, None] | cols[None, :]
        if not border.any():
            return y
        return torch.where(torch.from_numpy(border).to(y.device), F.relu(y), y)

    def _forward_symbolic(self, x: Tensor, left, right, top, bottom) -> Tensor:
        """Dynamic-shape export: same trick, with the border rows/columns taken by slicing.

        The exporter usually resolves the pads to constants, so a plain Pad would again be
        fused by ONNX Runtime. For 3x3/2 windows only the first (if padded before) and the last
        row/column of the output can reach into the padding.
        """
        if not (self.k == 3 and self.s == 2 and top <= 1 and left <= 1):
            return F.max_pool2d(F.pad(x, [left, right, top, bottom]), self.k, self.s)
        y = F.max_pool2d(x, 3, 2, padding=(top, left), ceil_mode=True)
        if right > 0:
            y = torch.cat([y[..., :-1], F.relu(y[..., -1:])], dim=-1)
        if left > 0:
            y = torch.cat([F.relu(y[..., :1]), y[..., 1:]], dim=-1)
        if bottom > 0:
            y = torch.cat([y[..., :-1, :], F.relu(y[..., -1:, :])], dim=-2)
        if top > 0:
            y = torch.cat([F.relu(y[..., :1, :]), y[..., 1:, :]], dim=-2)
        return y


class SeparableConvBlock(nn.Module):
    """Depthwise 3x3 (no bias) -> pointwise 1x1 (bias) -> BN(eps=1e-3); no activation."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.depthwise_conv = SameConv2d(channels, channels, 3, bias=False, groups=channels)
        self.pointwise_conv = SameConv2d(channels, channels, 1)
        self.bn = nn.BatchNorm2d(channels, momentum=0.01, eps=1e-3)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.pointwise_conv(self.depthwise_conv(x)))


def _projection(in_ch: int, out_ch: int) -> nn.Sequential:
    bn = nn.BatchNorm2d(out_ch, momentum=0.01, eps=1e-3)
    return nn.Sequential(SameConv2d(in_ch, out_ch, 1), bn)


def _swish(x: Tensor) -> Tensor:
    return x * torch.sigmoid(x)


def _upsample_to(x: Tensor, ref: Tensor) -> Tensor:
    return F.interpolate(x, size=ref.shape[-2:], mode="nearest")


class BiFPNCell(nn.Module):
    """One 3-level BiFPN cell (P3/P4/P5) with fast normalised fusion."""

    def __init__(
        self,
        channels: int,
        in_channels: Sequence[int] = (64, 128, 256),
        first: bool = False,
        epsilon: float = 1e-4,
    ) -> None:
        super().__init__()
        self.first = first
        self.epsilon = epsilon
        self.conv4_up = SeparableConvBlock(channels)
        self.conv3_up = SeparableConvBlock(channels)
        self.conv4_down = SeparableConvBlock(channels)
        self.conv5_down = SeparableConvBlock(channels)
        self.p4_downsample = MaxPool2dSame(3, 2)
        self.p5_downsample = MaxPool2dSame(3, 2)
        if first:
            c3, c4, c5 = in_channels
            self.p5_down_channel = _projection(c5, channels)
            self.p4_down_channel = _projection(c4, channels)
            self.p3_down_channel = _projection(c3, channels)
            self.p4_down_channel_2 = _projection(c4, channels)
            self.p5_down_channel_2 = _projection(c5, channels)
        self.p4_w1 = nn.Parameter(torch.ones(2))
        self.p3_w1 = nn.Parameter(torch.ones(2))
        self.p4_w2 = nn.Parameter(torch.ones(3))
        self.p5_w2 = nn.Parameter(torch.ones(3))

    def _norm(self, w: Tensor) -> Tensor:
        w = F.relu(w)
        return w / (torch.sum(w, dim=0) + self.epsilon)

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
        if self.first:
            p3, p4, p5 = inputs
            p3_in = self.p3_down_channel(p3)
            p4_in = self.p4_down_channel(p4)
            p5_in = self.p5_down_channel(p5)
        else:
            p3_in, p4_in, p5_in = inputs

        w = self._norm(self.p4_w1)
        p4_up = self.conv4_up(_swish(w[0] * p4_in + w[1] * _upsample_to(p5_in, p4_in)))
        w = self._norm(self.p3_w1)
        p3_out = self.conv3_up(_swish(w[0] * p3_in + w[1] * _upsample_to(p4_up, p3_in)))

        if self.first:
            p4_in = self.p4_down_channel_2(p4)
            p5_in = self.p5_down_channel_2(p5)

        w = self._norm(self.p4_w2)
        p4_out = self.conv4_down(
            _swish(w[0] * p4_in + w[1] * p4_up + w[2] * self.p4_downsample(p3_out))
        )
        # p5_w2 has 3 entries upstream but only the first two are used.
        w = self._norm(self.p5_w2)
        p5_out = self.conv5_down(_swish(w[0] * p5_in + w[1] * self.p5_downsample(p4_out)))
        return p3_out, p4_out, p5_out


class BiFPN(nn.Sequential):
    """Stack of BiFPN cells (state_dict: ``bifpn.<i>.*``)."""

    def __init__(self, channels: int, cells: int, in_channels: Sequence[int] = (64, 128, 256)):
        super().__init__(*[BiFPNCell(channels, in_channels, first=i == 0) for i in range(cells)])

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
        for cell in self:
            inputs = cell(inputs)
        return tuple(inputs)


# ---------------------------------------------------------------------------------------------
# Context module (SSH with DCN) and channel shuffle
# ---------------------------------------------------------------------------------------------


def _dcn_bn(inp: int, oup: int, leaky: float | None) -> nn.Sequential:
    layers: List[nn.Module] = [
        ModulatedDeformConv2d(inp, oup, 3, 1, 1, bias=False),
        nn.BatchNorm2d(oup),
    ]
    if leaky is not None:
        layers.append(nn.LeakyReLU(negative_slope=leaky, inplace=True))
    return nn.Sequential(*layers)


class SSH(nn.Module):
    """SSH context module with DCNv2 convs: 3x3 | 5x5 (2 convs) | 7x7 (3 convs), concat, ReLU."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        if out_ch % 4:
            raise ValueError("SSH out_ch must be divisible by 4")
        leaky = 0.1 if out_ch <= 64 else 0.0
        q = out_ch // 4
        self.conv3X3 = _dcn_bn(in_ch, out_ch // 2, None)
        self.conv5X5_1 = _dcn_bn(in_ch, q, leaky)
        self.conv5X5_2 = _dcn_bn(q, q, None)
        self.conv7X7_2 = _dcn_bn(q, q, leaky)
        self.conv7x7_3 = _dcn_bn(q, q, None)

    def forward(self, x: Tensor) -> Tensor:
        c3 = self.conv3X3(x)
        c5_1 = self.conv5X5_1(x)
        c5 = self.conv5X5_2(c5_1)
        c7 = self.conv7x7_3(self.conv7X7_2(c5_1))
        return F.relu(torch.cat([c3, c5, c7], dim=1))


def channel_shuffle(x: Tensor, groups: int = 2) -> Tensor:
    """Upstream ``ChannelShuffle2``: view as [B, C/g, g, H, W], swap, flatten.

    Output channel ``j * (C/g) + i`` takes input channel ``i * g + j``.
    """
    c = x.shape[1]
    if c % groups:
        raise ValueError(f"channels ({c}) must be divisible by groups ({groups})")
    return x.unflatten(1, (c // groups, groups)).transpose(1, 2).flatten(1, 2)


class ChannelShuffle(nn.Module):
    """Parameter-free channel shuffle (see :func:`channel_shuffle`)."""

    def __init__(self, groups: int = 2) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        return channel_shuffle(x, self.groups)


# ---------------------------------------------------------------------------------------------
# Heads
# ---------------------------------------------------------------------------------------------


class _Head(nn.Module):
    def __init__(self, in_ch: int, num_anchors: int, per_anchor: int) -> None:
        super().__init__()
        self.per_anchor = per_anchor
        self.conv1x1 = nn.Conv2d(in_ch, num_anchors * per_anchor, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1)
        return out.reshape(out.shape[0], -1, self.per_anchor)


class ClassHead(_Head):
    """Face/background logits, [B, H*W*A, 2]."""

    def __init__(self, in_ch: int, num_anchors: int = 2) -> None:
        super().__init__(in_ch, num_anchors, 2)


class BboxHead(_Head):
    """Box regression deltas, [B, H*W*A, 4]."""

    def __init__(self, in_ch: int, num_anchors: int = 2) -> None:
        super().__init__(in_ch, num_anchors, 4)


class LandmarkHead(_Head):
    """Five-point landmark deltas, [B, H*W*A, 10]."""

    def __init__(self, in_ch: int, num_anchors: int = 2) -> None:
        super().__init__(in_ch, num_anchors, 10)
