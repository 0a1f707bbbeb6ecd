"""The accuracy guard: FP32 and INT8 scored on the evaluation split with ``edgeface eval``'s
code; a model losing more than ``max_ap_drop`` AP points in any setting fails. With
``--exclude auto`` it searches for the fewest blocks to keep in float: blocks ranked by how
much keeping each in float reduces the output error on calibration images, then a greedy
search judged by the guard.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from edgeface.errors import ConfigError
from edgeface.inference.backends import open_backend
from edgeface.inference.dcn.runner import notices_held
from edgeface.inference.model_info import INPUT_NAME
from edgeface.quantize.config import Int8Config
from edgeface.quantize.ort_quant import quantize_qdq


@dataclass
class GuardResult:
    passed: bool
    drops: dict[str, float]  # AP points lost per setting (negative: INT8 better)
    worst: str | None  # the setting furthest over budget, if any


def check_budget(fp32_ap: Mapping[str, float], int8_ap: Mapping[str, float],
                 max_drop: float) -> GuardResult:
    """AP drop in points (AP x 100) per setting; passes when none exceeds ``max_drop``.
    Settings without faces (NaN AP) are not judged."""
    drops = {}
    for s in fp32_ap:
        a, b = fp32_ap[s], int8_ap.get(s, float("nan"))
        if np.isnan(a):
            continue
        drops[s] = float("inf") if np.isnan(b) else round((a - b) * 100.0, 4)
    over = {s: d for s, d in drops.items() if d > max_drop + 1e-9}
    worst = max(over, key=over.get) if over else None
    return GuardResult(not over, drops, worst)


def search_exclusions(ranked: Sequence[str], passes: Callable[[tuple[str, ...]], bool],
                      max_trials: int | None = None) -> tuple[str, ...] | None:
    """Smallest set of blocks to keep in float so that ``passes`` holds.

    Greedy: add blocks in ``ranked`` order (most sensitive first) until the budget holds,
    then drop every block whose removal keeps it holding (so no single block in the result
    is superfluous). ``passes`` is memoised; ``max_trials`` bounds how many sets are tried.
    Returns None when even all of ``ranked`` fails (or the trials ran out).
    """
    cache: dict[frozenset, bool] = {}
    trials = 0

    def ok(blocks: Sequence[str]) -> bool:
        nonlocal trials
        key = frozenset(blocks)
        if key not in cache:
            if max_trials is not None and trials >= max_trials:
                return False
            trials += 1
            cache[key] = passes(tuple(blocks))
        return cache[key]

    chosen: list[str] = []
    for block in ranked:
        chosen.append(block)
        if ok(chosen):
            break
    else:
        return None
    for block in list(chosen):
        trial = [b for b in chosen if b != block]
        if trial and ok(trial):
            chosen = trial
    return tuple(chosen)


def output_error(ref: Sequence[np.ndarray], got: Sequence[np.ndarray],
                 conf: float = 0.02) -> float:
    """How far quantized outputs are from FP32 where it matters for detection: mean |score
    difference| over anchors either model scores >= ``conf`` (the evaluation threshold), plus
    mean |box regression difference| over anchors FP32 scores >= 0.5."""
    boxes_r, scores_r = ref[0].reshape(-1, 4), ref[1].reshape(-1)
    boxes_g, scores_g = got[0].reshape(-1, 4), got[1].reshape(-1)
    live = (scores_r >= conf) | (scores_g >= conf)
    err = float(np.abs(scores_r[live] - scores_g[live]).mean()) if live.any() else 0.0
    faces = scores_r >= 0.5
    if faces.any():
        err += float(np.abs(boxes_r[faces] - boxes_g[faces]).mean())
    return err


def rank_blocks(blocks: Mapping[str, Sequence[str]], error_without: Callable[[Sequence[str]],
                float], base_error: float, progress: bool | None = True) -> list[tuple[str,
                                                                                  float]]:
    """Blocks sorted by how much keeping each alone in float reduces the output error
    (largest first); blocks that do not reduce it are left out."""
    from tqdm import tqdm

    gains = []
    for name in tqdm(list(blocks), desc="sensitivity", unit="block", leave=False,
                     file=sys.stderr, disable=None if progress is None else not progress):
        gains.append((name, base_error - error_without(blocks[name])))
    return sorted([g for g in gains if g[1] > 0], key=lambda t: -t[1])


class AccuracyGuard:
    """Scores models on the evaluation split against FP32 and records every trial."""

    def __init__(self, fp32_backend: Any, dataset: Any, max_ap_drop: float, threads: int,
                 progress: bool | None):
        # Looked up at call time (here and in evaluate): tests replace the scorer.
        from edgeface.calibration.evaluation import evaluate_detector

        self.dataset, self.max_ap_drop = dataset, max_ap_drop
        self.threads, self.progress = threads, progress
        self.fp32 = evaluate_detector(fp32_backend, dataset, progress=progress,
                                      desc="eval FP32")
        _require_complete(self.fp32, dataset)
        self.trials: list[dict[str, Any]] = []

    def evaluate(self, path: Path, blocks: Sequence[str] = ()) -> GuardResult:
        from edgeface.calibration.evaluation import evaluate_detector

        backend = open_backend(path, provider="cpu", threads=self.threads)
        res = evaluate_detector(backend, self.dataset, progress=self.progress, desc="eval INT8")
        _require_complete(res, self.dataset)
        verdict = check_budget(self.fp32.ap, res.ap, self.max_ap_drop)
        self.trials.append({"float_blocks": list(blocks), "int8_ap": _round_ap(res.ap),
                            "drop_points": verdict.drops, "passed": verdict.passed})
        return verdict

    def record(self, trial: Mapping[str, Any]) -> dict[str, Any]:
        """The accuracy section of the report for one of the trials."""
        return {"dataset": f"{self.dataset.root} split {self.dataset.split}",
                "images": self.fp32.num_images, "faces": self.fp32.num_faces,
                "fp32": _round_ap(self.fp32.ap), "int8": trial["int8_ap"],
                "drop_points": trial["drop_points"], "max_ap_drop": self.max_ap_drop,
                "passed": trial["passed"]}


def auto_exclude(guard: AccuracyGuard, pre: Path, ranges_path: Path, config: Int8Config,
                 blocks: Mapping[str, Sequence[str]], base_nodes: Sequence[str],
                 sample_blobs: Sequence[np.ndarray], fp32_backend: Any, tmp: Path,
                 build: Callable[[Sequence[str], Path], Path], say: Callable[[str], None],
                 progress: bool | None) -> tuple[tuple[str, ...], Path] | None:
    """Rank blocks by how much keeping each in float reduces the output error on calibration
    images, then :func:`search_exclusions` with the guard. Returns (blocks, model) or None.

    ``build(nodes, path)`` writes a finished model with ``nodes`` in float; the ranking probes
    are bare :func:`quantize_qdq` outputs."""
    blobs = sample_blobs[:8]
    ref = [fp32_backend.session.run(None, {INPUT_NAME: b}) for b in blobs]

    def error_of(nodes: Sequence[str]) -> float:
        path = tmp / "probe.onnx"
        quantize_qdq(pre, path, ranges_path, config, list(base_nodes) + list(nodes))
        # The whole batched outputs, like ``ref``: the session, not Backend.infer.
        with notices_held():
            sess = open_backend(path, provider="cpu", threads=fp32_backend.threads).session
        return float(np.mean([output_error(r, sess.run(None, {INPUT_NAME: b}))
                              for r, b in zip(ref, blobs)]))

    base_err = error_of([])
    candidates = {k: v for k, v in blocks.items() if not set(v) <= set(base_nodes)}
    ranked = rank_blocks(candidates, error_of, base_err, progress)
    say("most sensitive blocks: " + ", ".join(
        f"{b} ({g / base_err:.0%} of the error)" for b, g in ranked[:5]))
    models: dict[tuple[str, ...], Path] = {}

    def passes(chosen: tuple[str, ...]) -> bool:
        nodes = list(base_nodes) + [n for b in chosen for n in blocks[b]]
        path = build(nodes, tmp / f"trial{len(models)}.onnx")
        models[chosen] = path
        verdict = guard.evaluate(path, chosen)
        say(f"  float {', '.join(chosen)}: " + ", ".join(
            f"{s} {d:+.2f}" for s, d in verdict.drops.items())
            + (" ok" if verdict.passed else ""))
        return verdict.passed

    found = search_exclusions([b for b, _ in ranked], passes)
    return None if found is None else (found, models[found])


def _require_complete(result: Any, dataset: Any) -> None:
    if result.skipped:
        raise ConfigError(f"{len(result.skipped)} of {len(dataset)} evaluation images could not"
                          f" be read (first: {result.skipped[0][1]}); the guard needs them all")


def _round_ap(ap: Mapping[str, float]) -> dict[str, float | None]:
    return {s: (None if np.isnan(v) else round(float(v), 6)) for s, v in ap.items()}

