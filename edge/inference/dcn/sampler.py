"""Python face of the compiled deformable sampler (``_sampler.c``).

:func:`sample_columns` turns an NHWC feature map, ONNX DeformConv offsets ``[N, 2K, OH, OW]``
and mask ``[N, K, OH, OW]`` into columns ``[N, OH*OW, K*C]`` (pixel-major, then tap, then
channel), so that ``DeformConv(x, W, offset, B, mask)`` equals::

    cols @ W.transpose(0, 2, 3, 1).reshape(O, K*C).T + B      # [N, OH*OW, O], NHWC

The extension is imported lazily, on first use; :func:`available` says whether it is there
and :func:`unavailable_reason` why not. ``EDGEFACE_NO_DCN_EXT=1`` disables it (and its build).
"""

from __future__ import annotations

from types import ModuleType
from typing import Optional, Sequence, Tuple

import numpy as np

from edgeface.system.onnxruntime_floor import DCN_DISABLE_ENV as DISABLE_ENV
from edgeface.system.onnxruntime_floor import DCN_EXTENSION as EXTENSION
from edgeface.system.onnxruntime_floor import dcn_disabled_reason as disabled_reason
from edgeface.system.onnxruntime_floor import dcn_not_built_reason as not_built_reason

__all__ = ["DISABLE_ENV", "EXTENSION", "available", "disabled_reason", "extension",
           "not_built_reason", "output_size", "sample_columns", "to_nhwc",
           "unavailable_reason"]

_module: Optional[ModuleType] = None
_reason: Optional[str] = None
_loaded = False


def _load() -> Optional[ModuleType]:
    global _module, _reason, _loaded
    if not _loaded:
        _loaded = True
        _reason = disabled_reason()
        if _reason is None:
            try:
                from edgeface.inference.dcn import _sampler
            except ImportError as e:
                _reason = not_built_reason(str(e))
            else:
                _module = _sampler
    return _module


def available() -> bool:
    """Whether the compiled sampler can be used (built, importable, not disabled)."""
    return _load() is not None


def unavailable_reason() -> Optional[str]:
    """One line saying why :func:`available` is False; None when it is True."""
    _load()
    return _reason


def extension() -> ModuleType:
    """The compiled module itself (raises RuntimeError with the reason when it is missing),
    for callers that check their arguments once and call it per frame."""
    return _require()


def _require() -> ModuleType:
    module = _load()
    if module is None:
        raise RuntimeError(_reason)
    return module


def _pair(v, name: str) -> Tuple[int, int]:
    out = (v, v) if isinstance(v, int) else tuple(int(e) for e in v)
    if len(out) != 2:
        raise ValueError(f"{name} must be an int or a pair, got {v!r}")
    return out  # type: ignore[return-value]


def _f32(a: np.ndarray, name: str, shape: Tuple[int, ...]) -> np.ndarray:
    if a.dtype != np.float32:
        raise TypeError(f"{name} must be float32, got {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    return np.ascontiguousarray(a)


def output_size(size: int, k: int, stride: int, pad_begin: int, pad_end: int, dil: int) -> int:
    """Output extent of a convolution along one axis."""
    return (size + pad_begin + pad_end - dil * (k - 1) - 1) // stride + 1


def sample_columns(
    x: np.ndarray,
    offset: np.ndarray,
    mask: Optional[np.ndarray],
    kernel: Sequence[int] = (3, 3),
    *,
    stride: Sequence[int] = (1, 1),
    pads: Sequence[int] = (1, 1, 1, 1),
    dilation: Sequence[int] = (1, 1),
    threads: int = 1,
    out: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Deformable im2col: NHWC ``x`` [N, H, W, C] -> columns [N, OH*OW, K*C] (float32).

    ``pads`` is ONNX's ``[top, left, bottom, right]``. Samples outside the image are zero.
    ``out``, if given, must be a C-contiguous float32 array of that shape; it is returned.
    """
    module = _require()
    kh, kw = _pair(kernel, "kernel")
    sh, sw = _pair(stride, "stride")
    dh, dw = _pair(dilation, "dilation")
    if len(pads) != 4:
        raise ValueError(f"pads must be [top, left, bottom, right], got {pads!r}")
    pt, pl, pb, pr = (int(p) for p in pads)
    if x.ndim != 4:
        raise ValueError(f"x must be NHWC [N, H, W, C], got shape {x.shape}")
    n, h, w, c = x.shape
    oh = output_size(h, kh, sh, pt, pb, dh)
    ow = output_size(w, kw, sw, pl, pr, dw)
    k = kh * kw
    x = _f32(x, "x", x.shape)
    offset = _f32(offset, "offset", (n, 2 * k, oh, ow))
    if mask is not None:
        mask = _f32(mask, "mask", (n, k, oh, ow))
    if out is None:
        out = np.empty((n, oh * ow, k * c), np.float32)
    elif out.dtype != np.float32 or out.shape != (n, oh * ow, k * c) or \
            not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous float32 {(n, oh * ow, k * c)}")
    module.sample(x, offset, mask, out, n, h, w, c, oh, ow, kh, kw, sh, sw, pt, pl, dh, dw,
                  int(threads))
    return out


def to_nhwc(x: np.ndarray, *, threads: int = 1, out: Optional[np.ndarray] = None) -> np.ndarray:
    """float32 NCHW -> NHWC, into ``out`` if given (C-contiguous, [N, H, W, C])."""
    module = _require()
    if x.ndim != 4:
        raise ValueError(f"x must be NCHW [N, C, H, W], got shape {x.shape}")
    n, c, h, w = x.shape
    x = _f32(x, "x", x.shape)
    if out is None:
        out = np.empty((n, h, w, c), np.float32)
    elif out.dtype != np.float32 or out.shape != (n, h, w, c) or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous float32 {(n, h, w, c)}")
    module.to_nhwc(x, out, n, c, h, w, int(threads))
    return out
