"""ONNX Runtime's DeformConv as the reference for the DCN sampler: single-node models written
with tests/onnx_writer.py (no ``onnx`` package needed), and random inputs whose offsets
reach outside the image and land on exact grid points and borders."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import onnx_writer as ow
import pytest


def deform_conv_model(x_shape: Sequence[int], w_shape: Sequence[int], out_hw: Tuple[int, int],
                      *, strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1),
                      with_mask: bool = True) -> bytes:
    """One DeformConv node whose X, W, offset, B (and mask) are all graph inputs."""
    n, _, _, _ = x_shape
    o, _, kh, kw = w_shape
    k = kh * kw
    oh, owd = out_hw
    names = ["x", "w", "offset", "b"] + (["mask"] if with_mask else [])
    shapes = [list(x_shape), list(w_shape), [n, 2 * k, oh, owd], [o]] + \
        ([[n, k, oh, owd]] if with_mask else [])
    node = ow.node("DeformConv", names, ["y"], dilations=list(dilations),
                   kernel_shape=[kh, kw], pads=list(pads), strides=list(strides))
    g = ow.graph("deform_conv", [node],
                 [ow.value_info(nm, ow.FLOAT, s) for nm, s in zip(names, shapes)],
                 [ow.value_info("y", ow.FLOAT, [n, o, oh, owd])])
    return ow.model(g, ir_version=9, opset=19)


def session(model: bytes, threads: int = 1):
    """An ONNX Runtime session, or a skip where this ONNX Runtime has no DeformConv kernel
    (below 1.25 it answers NOT_IMPLEMENTED)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 -- ORT raises its own exception types per version
        if "DeformConv" in str(e) or "NOT_IMPLEMENTED" in str(e):
            pytest.skip(f"onnxruntime {ort.__version__} has no DeformConv kernel: {e}"[:200])
        raise


def random_offsets(rng: np.random.Generator, shape: Sequence[int]) -> np.ndarray:
    """Offsets mixing small fractional moves, exact zeros and integers (grid points, so
    positions land exactly on the image border), half steps, and jumps far outside."""
    base = rng.normal(0.0, 2.0, shape)
    kind = rng.integers(0, 5, shape)
    base = np.where(kind == 1, 0.0, base)
    base = np.where(kind == 2, np.round(base), base)
    base = np.where(kind == 3, np.round(base * 2) / 2, base)
    base = np.where(kind == 4, rng.uniform(-60, 60, shape), base)
    return base.astype(np.float32)


def reference_inputs(rng: np.random.Generator, n: int, c: int, h: int, w: int, o: int,
                     kh: int, kw: int, oh: int, owd: int
                     ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    k = kh * kw
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = (rng.standard_normal((o, c, kh, kw)) / np.sqrt(c * k)).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32)
    offset = random_offsets(rng, (n, 2 * k, oh, owd))
    mask = rng.uniform(0.0, 1.0, (n, k, oh, owd)).astype(np.float32)
    return x, weight, bias, offset, mask


def gemm(cols: np.ndarray, weight: np.ndarray, bias: Optional[np.ndarray], oh: int,
         owd: int) -> np.ndarray:
    """columns [N, OH*OW, K*C] x weight [O, C, kh, kw] -> NCHW output, as the fast path does
    it: the weight reordered tap-major then channel, one MatMul."""
    o = weight.shape[0]
    wmat = weight.transpose(0, 2, 3, 1).reshape(o, -1)
    y = cols @ wmat.T
    if bias is not None:
        y = y + bias
    return y.transpose(0, 2, 1).reshape(cols.shape[0], o, oh, owd)
