"""Precision-recall curve images (matplotlib, imported only when plotting)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from edgeface.errors import require


def plot_pr(curves: Mapping[str, tuple[np.ndarray, float]], title: str,
            path: str | os.PathLike) -> Path:
    """One PNG with a curve per label: ``{label: ([T, 2] (precision, recall), AP)}``.

    Several labels on one plot compare models (e.g. FP32 against INT8) in one setting.
    """
    require("matplotlib", "eval", "draws the PR curves")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 4.5), dpi=100)
    FigureCanvasAgg(fig)  # no pyplot: no global state, no display needed
    ax = fig.add_subplot()
    for label, (pr, ap) in curves.items():
        # Thresholds run from high to low, so recall grows along the array.
        ax.plot(pr[:, 1], pr[:, 0], linewidth=1.8, label=f"{label} (AP {ap:.4f})")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="Recall", ylabel="Precision", title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path))
    return path


def write_pr_plots(pr_curves: Mapping[str, np.ndarray], ap: Mapping[str, float],
                   out_dir: str | os.PathLike, label: str) -> list[Path]:
    """``pr_<setting>.png`` in ``out_dir`` for each setting of one evaluation."""
    out = Path(out_dir)
    return [plot_pr({label: (pr_curves[s], ap[s])}, f"WIDER FACE {s}", out / f"pr_{s}.png")
            for s in pr_curves]
