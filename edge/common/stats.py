"""Percentiles for the runtime's status and summary lines, without ``np.percentile``.

``np.percentile`` and ``np.median`` import ``numpy.ma`` on first use: 1.2 MB of a device's
memory budget (measured, numpy 2.x) for a status line. This is the same estimate
(numpy's default, "linear" interpolation between the closest ranks) on a sorted copy.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def percentiles(values: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """The ``qs`` (0-100) percentiles of ``values`` (non-empty), as ``np.percentile``."""
    a = np.sort(np.asarray(values, np.float64).ravel())
    if a.size == 0:
        raise ValueError("percentiles of no values")
    pos = np.clip(np.asarray(qs, np.float64), 0.0, 100.0) / 100.0 * (a.size - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, a.size - 1)
    return a[lo] + (a[hi] - a[lo]) * (pos - lo)
