"""FeatherFace detectors and the architecture registry.

Every architecture is: MobileNetV1-0.25 -> [attention] -> BiFPN -> [attention] -> SSH (DCNv2) x3
-> channel shuffle (groups=2) -> 1x1 heads, 2 anchors per cell at strides 8/16/32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from edgeface.models.featherface.attention import CBAM, ECACBAM
from edgeface.models.featherface.blocks import (
    SSH,
    BboxHead,
    BiFPN,
    ChannelShuffle,
    ClassHead,
    LandmarkHead,
    MobileNetV1,
)

NUM_ANCHORS = 2
STRIDES = (8, 16, 32)
#: Upstream anchor sizes (pixels) per level; 2 anchors per cell, in this order.
ANCHOR_MIN_SIZES = ((16, 32), (64, 128), (256, 512))


class FeatherFace(nn.Module):
    """FeatherFace detector.

    Args:
        out_channels: BiFPN / SSH width (56 for V1, 52 for the attention variants).
        bifpn_cells: number of stacked BiFPN cells.
        attention: ``None``, ``"cbam"``, ``"eca_cbam"`` or ``"eca_cbam_parallel"``; applied to
            the three backbone maps and again to the three BiFPN outputs.

    ``forward(x)`` takes ``[B, 3, H, W]`` float32 BGR minus (104, 117, 123), H and W multiples of
    32, and returns raw ``(loc [B, A, 4], cls_logits [B, A, 2], landm [B, A, 10])`` with anchors
    ordered stride 8, 16, 32; row-major (y, x) within a level; 2 anchors per cell.
    """

    def __init__(
        self, out_channels: int = 56, bifpn_cells: int = 2, attention: Optional[str] = None
    ) -> None:
        super().__init__()
        self.attention = attention
        self.body = MobileNetV1()
        c = out_channels
        in_chs = MobileNetV1.out_channels
        if attention == "cbam":
            # Upstream featherface_cbam_exact.py names and reduction ratio 16.
            for i, ch in enumerate(in_chs):
                setattr(self, f"backbone_cbam_{i}", CBAM(ch, 16))
        elif attention in ("eca_cbam", "eca_cbam_parallel"):
            par = attention == "eca_cbam_parallel"
            for i, ch in enumerate(in_chs):
                setattr(self, f"backbone_attention_{i}", ECACBAM(ch, parallel=par))
        elif attention is not None:
            raise ValueError(f"unknown attention {attention!r}")

        self.bifpn = BiFPN(c, bifpn_cells, in_chs)

        if attention == "cbam":
            for i in range(3):
                setattr(self, f"bif_cbam_{i}", CBAM(c, 16))
        elif attention is not None:
            for i in range(3):
                setattr(self, f"bifpn_attention_{i}", ECACBAM(c, parallel=par))

        self.ssh1 = SSH(c, c)
        self.ssh2 = SSH(c, c)
        self.ssh3 = SSH(c, c)
        self.shuffle = ChannelShuffle(2)
        self.ClassHead = nn.ModuleList([ClassHead(c, NUM_ANCHORS) for _ in range(3)])
        self.BboxHead = nn.ModuleList([BboxHead(c, NUM_ANCHORS) for _ in range(3)])
        self.LandmarkHead = nn.ModuleList([LandmarkHead(c, NUM_ANCHORS) for _ in range(3)])

    def _attend(self, feats, prefix: str):
        if self.attention is None:
            return feats
        return tuple(getattr(self, f"{prefix}{i}")(f) for i, f in enumerate(feats))

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        feats = self.body(x)
        cbam = self.attention == "cbam"
        feats = self._attend(feats, "backbone_cbam_" if cbam else "backbone_attention_")
        feats = self.bifpn(feats)
        feats = self._attend(feats, "bif_cbam_" if cbam else "bifpn_attention_")
        feats = [self.shuffle(ssh(f)) for ssh, f in zip((self.ssh1, self.ssh2, self.ssh3), feats)]
        loc = torch.cat([h(f) for h, f in zip(self.BboxHead, feats)], dim=1)
        cls = torch.cat([h(f) for h, f in zip(self.ClassHead, feats)], dim=1)
        landm = torch.cat([h(f) for h, f in zip(self.LandmarkHead, feats)], dim=1)
        return loc, cls, landm


@dataclass(frozen=True)
class ArchSpec:
    """A registered architecture."""

    name: str
    description: str
    out_channels: int
    builder: Callable[[], nn.Module]
    title: str = ""
    bifpn_cells: int = 2
    attention: Optional[str] = None


def _spec(
    name: str, title: str, description: str, out_channels: int, cells: int, attention
) -> ArchSpec:
    def builder() -> nn.Module:
        return FeatherFace(out_channels, cells, attention)

    builder.__name__ = f"build_{name}"
    return ArchSpec(name, description, out_channels, builder, title, cells, attention)


ARCHITECTURES: Dict[str, ArchSpec] = {
    s.name: s
    for s in (
        _spec(
            "v1",
            "FeatherFace V1",
            "FeatherFace V1: MobileNetV1-0.25, BiFPN x2 (56 ch), SSH+DCN, no attention "
            "(489,015 params)",
            56,
            2,
            None,
        ),
        _spec(
            "eca_cbam",
            "FeatherFace ECA-CBAM",
            "FeatherFace ECA-CBAM (sequential ECA -> SAM on backbone and BiFPN), BiFPN x3 (52 ch) "
            "(476,345 params)",
            52,
            3,
            "eca_cbam",
        ),
        _spec(
            "eca_cbam_parallel",
            "FeatherFace ECA-CBAM parallel",
            "FeatherFace ECA-CBAM parallel (x * M_c * M_s), BiFPN x3 (52 ch) (476,345 params)",
            52,
            3,
            "eca_cbam_parallel",
        ),
        _spec(
            "cbam",
            "FeatherFace CBAM baseline",
            "FeatherFace CBAM baseline (CBAM r=16 on backbone and BiFPN), BiFPN x3 (52 ch) "
            "(488,664 params)",
            52,
            3,
            "cbam",
        ),
    )
}


def build_model(arch: str) -> nn.Module:
    """Build an architecture by name (randomly initialised, eval mode)."""
    try:
        spec = ARCHITECTURES[arch]
    except KeyError:
        known = ", ".join(ARCHITECTURES)
        raise ValueError(f"unknown architecture {arch!r}; known: {known}") from None
    return spec.builder().eval()


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (buffers such as BN statistics excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
