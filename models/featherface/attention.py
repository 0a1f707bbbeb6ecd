"""Attention blocks of the FeatherFace variants: CBAM (channel + spatial gates), ECA and the
ECA-CBAM hybrid (sequential or parallel), matching upstream state_dict names and maths."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class _BasicConv(nn.Module):
    """Conv (no bias) + BN(eps=1e-5, momentum=0.01), as upstream ``BasicConv(relu=False)``."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int) -> None:
        super().__init__()
        pad = (kernel_size - 1) // 2
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=pad, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=1e-5, momentum=0.01)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x))


class ChannelGate(nn.Module):
    """CBAM channel attention: shared MLP on global avg- and max-pooled vectors."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = channels // reduction
        self.mlp = nn.Sequential(
            nn.Flatten(), nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels)
        )

    def forward(self, x: Tensor) -> Tensor:
        att = self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3)))
        return x * torch.sigmoid(att)[:, :, None, None]


class SpatialGate(nn.Module):
    """CBAM spatial attention: 7x7 conv+BN over [max, mean] channel pools (upstream order)."""

    def __init__(self) -> None:
        super().__init__()
        self.spatial = _BasicConv(2, 1, 7)

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class CBAM(nn.Module):
    """CBAM (Woo et al. 2018), upstream ``net.CBAM``: channel gate then spatial gate."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.ChannelGate = ChannelGate(channels, reduction)
        self.SpatialGate = SpatialGate()

    def forward(self, x: Tensor) -> Tensor:
        return self.SpatialGate(self.ChannelGate(x))


def eca_kernel_size(channels: int, gamma: int = 2, beta: int = 1) -> int:
    """ECA adaptive kernel: nearest odd >= int(|(log2 C + b) / gamma|)."""
    t = int(abs((math.log2(channels) + beta) / gamma))
    return t if t % 2 else t + 1


class ECA(nn.Module):
    """Efficient channel attention: sigmoid(Conv1d_k(GAP(x))) as a channel mask."""

    def __init__(self, channels: int, gamma: int = 2, beta: int = 1) -> None:
        super().__init__()
        k = eca_kernel_size(channels, gamma, beta)
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=(k - 1) // 2, bias=False)

    def mask(self, x: Tensor) -> Tensor:
        y = self.conv(x.mean(dim=(2, 3)).unsqueeze(1))  # [B, 1, C]
        return torch.sigmoid(y).transpose(1, 2).unsqueeze(-1)  # [B, C, 1, 1]

    def forward(self, x: Tensor) -> Tensor:
        return x * self.mask(x)


class SpatialAttention(nn.Module):
    """CBAM-SAM as used by ECA-CBAM: sigmoid(conv7x7([mean, max])) (no BN, no bias)."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def mask(self, x: Tensor) -> Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.mask(x)


class ECACBAM(nn.Module):
    """ECA-CBAM hybrid attention.

    Sequential (default): ``SAM(ECA(x))``. Parallel: ``x * M_c(x) * M_s(x)`` with both masks
    computed from the same input (upstream ``ECAcbaM_Parallel_Simple``).
    """

    def __init__(self, channels: int, parallel: bool = False) -> None:
        super().__init__()
        self.parallel = parallel
        self.eca = ECA(channels)
        self.sam = SpatialAttention(7)

    def forward(self, x: Tensor) -> Tensor:
        if self.parallel:
            return x * (self.eca.mask(x) * self.sam.mask(x))
        return self.sam(self.eca(x))
