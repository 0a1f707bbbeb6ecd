"""Interleaved timing: configurations measured round-robin in small chunks, in one process,
so that a busy or throttling machine slows every configuration alike. Used by ``bench`` and
by ``quantize``'s latency check."""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np


def round_robin(
    runners: Mapping[str, Callable[[int], Any]],
    runs: int,
    warmup: int = 0,
    chunk: int = 10,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, list[Any]], bool]:
    """Call each runner with chunks of frames in rotating order until each did ``runs``.

    ``runner(n)`` measures ``n`` frames and returns anything (kept per chunk, in order).
    Warm-up calls come first and are discarded. Returns (chunks per runner, interrupted):
    Ctrl-C stops early and returns what was complete.
    """
    names = list(runners)
    chunks: dict[str, list[Any]] = {n: [] for n in names}
    try:
        for name in names:
            if warmup:
                runners[name](warmup)
                if progress:
                    progress(warmup)
        done = 0
        rnd = 0
        while done < runs:
            n = min(chunk, runs - done)
            k = rnd % len(names)
            for name in names[k:] + names[:k]:
                chunks[name].append(runners[name](n))
                if progress:
                    progress(n)
            done += n
            rnd += 1
    except KeyboardInterrupt:
        # Keep only complete rounds so that every model has the same frames.
        complete = min(len(c) for c in chunks.values())
        for name in names:
            del chunks[name][complete:]
        return chunks, True
    return chunks, False


def session_runner(session: Any, feed: Mapping[str, np.ndarray]) -> Callable[[int], np.ndarray]:
    """A :func:`round_robin` runner timing ``session.run`` on ``feed`` (seconds per run)."""
    perf = time.perf_counter

    def run(n: int) -> np.ndarray:
        t = np.empty(n)
        for i in range(n):
            t0 = perf()
            session.run(None, feed)
            t[i] = perf() - t0
        return t

    return run


def paired_ratio(model_chunks: Sequence[np.ndarray], base_chunks: Sequence[np.ndarray]) -> float:
    """Median over rounds of (model chunk median / baseline chunk median), total latency."""
    ratios = [np.median(np.sum(m, axis=1)) / np.median(np.sum(b, axis=1))
              for m, b in zip(model_chunks, base_chunks) if len(m) and len(b)]
    return round(float(np.median(ratios)), 4) if ratios else float("nan")
