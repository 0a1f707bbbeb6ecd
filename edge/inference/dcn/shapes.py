"""The 15 DeformConv layers of FeatherFace V1 at its 416x416 input (read from the exported
graph): the SSH context modules of the three pyramid levels, 3x3, stride 1, pad 1, one offset
group. Tests and ``benchmarks/dcn_kernel.py`` run them all."""

from __future__ import annotations

from typing import NamedTuple, Tuple


class DcnLayer(NamedTuple):
    name: str
    in_channels: int
    out_channels: int
    size: int  # output = input height = width


def _level(level: int, size: int) -> Tuple[DcnLayer, ...]:
    # 3x3 and 5x5_1 read the level feature (56 channels); 5x5_2 and 7x7_2 read 5x5_1's
    # output, 7x7_3 reads 7x7_2's (14 channels).
    return (DcnLayer(f"ssh{level}.conv3X3", 56, 28, size),
            DcnLayer(f"ssh{level}.conv5X5_1", 56, 14, size),
            DcnLayer(f"ssh{level}.conv5X5_2", 14, 14, size),
            DcnLayer(f"ssh{level}.conv7X7_2", 14, 14, size),
            DcnLayer(f"ssh{level}.conv7x7_3", 14, 14, size))


FEATHERFACE_V1: Tuple[DcnLayer, ...] = _level(1, 52) + _level(2, 26) + _level(3, 13)
