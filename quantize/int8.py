"""Static INT8 quantization of an edgeface ONNX export, with an accuracy guard: the pipeline.

ONNX Runtime's own tooling does the work: ``quant_pre_process`` (shape inference + basic graph
optimisation), calibration over real images preprocessed exactly as at run time, then
``quantize_static`` in QDQ format (:mod:`edgeface.quantize.ort_quant`). Around it
:func:`quantize_int8` adds what a device build needs:

- calibration images never overlap the evaluation images (checked by key;
  :mod:`edgeface.calibration.calib_data`);
- operators without an INT8 kernel (``DeformConv``) stay float; their weights are stored as
  int8 + ``DequantizeLinear`` so that the file still shrinks (:mod:`edgeface.quantize.graph`);
- the accuracy guard: FP32 and INT8 are scored on the evaluation split with ``edgeface eval``'s
  code; over ``max_ap_drop`` points in any setting the model is rejected, or, with
  ``exclude="auto"``, the smallest set of blocks kept in float is searched for
  (:mod:`edgeface.quantize.guard`);
- a compact file with the same numerics: no exporter metadata, identical constants merged,
  short internal tensor names (graph inputs/outputs and ``edgeface.*`` metadata unchanged;
  :mod:`edgeface.quantize.compaction`);
- a report: sizes, AP, latency measured alternating FP32/INT8 with the runtime's session
  options, nodes left in float, digests; the INT8 file's metadata records how it was made
  (:mod:`edgeface.quantize.report`, :mod:`edgeface.quantize.latency`).
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from edgeface import __version__
from edgeface.calibration.calib_data import CalibrationSet, check_disjoint
from edgeface.common.files import atomic_copy, sha256_file
from edgeface.errors import ConfigError, ModelError
from edgeface.inference.backends import default_threads, open_backend
from edgeface.quantize.border_max import spell_border_max
from edgeface.quantize.config import Int8Job
from edgeface.quantize.fold import fold_scalings
from edgeface.quantize.graph import (
    expand_exclusions,
    float_nodes,
    is_quantized,
    load_model,
    node_blocks,
    require_onnx,
)
from edgeface.quantize.guard import AccuracyGuard, auto_exclude
from edgeface.quantize.latency import measure_latency
from edgeface.quantize.merge import merge_sibling_convs
from edgeface.quantize.ort_quant import build_model, calibrate, preprocess_model, save_ranges
from edgeface.quantize.report import (
    AccuracyBudgetExceeded,
    Int8Report,
    rejected_path,
    report_path,
    write_json,
)
from edgeface.quantize.score_head import spell_face_scores
from edgeface.quantize.upsample import spell_upsampling

SAMPLE_BLOBS = 8  # calibration inputs kept for the block search and the latency check


def quantize_int8(model: str | os.PathLike, output: str | os.PathLike, calib: Any,
                  job: Int8Job | None = None, *, eval_dataset: Any = None,
                  log_fn: Callable[[str], None] | None = None) -> Int8Report:
    """Quantize an edgeface FP32 ONNX model to INT8 (QDQ) and write ``output`` + its report.

    ``calib``: an image reader (``open_image_set``, a WIDERFace split, ...); ``job.num_images``
    of its images, spread evenly, calibrate. ``eval_dataset``: a WIDERFace split for the
    accuracy guard, or None to skip it (``job.max_ap_drop=None`` skips it too). See
    :class:`~edgeface.quantize.config.Int8Job` for the rest. Raises
    :class:`~edgeface.quantize.report.AccuracyBudgetExceeded` (output not written; kept as
    ``*.rejected.onnx`` with ``job.keep_rejected``) when the budget is not met. ``log_fn``
    receives one line per step.
    """
    t0 = time.perf_counter()
    run = _Run(job or Int8Job(), Path(model), Path(output), calib, eval_dataset,
               log_fn or _silent)
    _check_request(run)
    _open_fp32(run)
    run.output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgeface-int8-") as tmp:
        run.tmp = Path(tmp)
        _preprocess(run)
        _calibrate(run)
        run.candidate = run.build(run.excluded_nodes, run.tmp / "int8.onnx")
        _guard(run)
        _measure_latency(run)
        report = _report(run)
        report.seconds = round(time.perf_counter() - t0, 2)
        _publish(run, report)
        return report


@dataclass
class _Run:
    """What the steps of one :func:`quantize_int8` call hand each other."""

    job: Int8Job
    model: Path
    output: Path
    calib: Any
    eval_dataset: Any
    say: Callable[[str], None]
    # _open_fp32
    fp32_meta: dict[str, str] = field(default_factory=dict)
    fp32_backend: Any = None
    threads: int = 0
    calib_set: Any = None
    # _preprocess
    tmp: Path = Path()
    pre: Path = Path()
    pre_proto: Any = None
    blocks: dict[str, list[str]] = field(default_factory=dict)
    excluded_nodes: list[str] = field(default_factory=list)
    score_path: list[str] = field(default_factory=list)  # kept in float (score_head.py)
    # _calibrate
    ranges_path: Path = Path()
    samples: list[np.ndarray] = field(default_factory=list)
    used: int = 0
    calib_seconds: float = 0.0
    provenance: dict[str, Any] = field(default_factory=dict)
    # the candidate model, then _guard and _measure_latency
    candidate: Path = Path()
    accuracy: dict[str, Any] | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)
    auto_blocks: list[str] = field(default_factory=list)
    passed: bool = True
    latency: dict[str, Any] | None = None

    @property
    def guarded(self) -> bool:
        return self.eval_dataset is not None and self.job.max_ap_drop is not None

    def build(self, nodes: Sequence[str], dst: Path) -> Path:
        """The INT8 model with ``nodes`` kept in float, from the one calibration."""
        return build_model(self.pre, self.ranges_path, self.job.config, nodes,
                           self.fp32_meta, self.provenance, dst)


def _check_request(run: _Run) -> None:
    """Refuse a request that cannot succeed, before any work."""
    run.job.config.validate()
    if run.job.auto_exclude and not run.guarded:
        raise ConfigError("--exclude auto needs the accuracy guard (evaluation data and "
                          "--max-ap-drop)")
    if run.output.exists() and not run.job.force:
        raise ConfigError(f"{run.output} exists; use --force to overwrite")
    if run.output.resolve() == run.model.resolve():
        raise ConfigError("the output must not overwrite the FP32 model")


def _open_fp32(run: _Run) -> None:
    """The FP32 model (refused when already quantized), its runtime backend and the
    calibration images, checked disjoint from the evaluation images."""
    proto = load_model(run.model)
    if is_quantized(proto):
        raise ModelError(f"{run.model} is already quantized (it has QuantizeLinear/QLinear "
                         "nodes); give the FP32 export")
    run.fp32_meta = {p.key: p.value for p in proto.metadata_props}
    # Validates the I/O contract; the guard and the sensitivity ranking run it.
    run.fp32_backend = open_backend(run.model, provider="cpu", threads=run.job.threads)
    info = run.fp32_backend.info
    run.threads = run.job.threads or default_threads()
    run.calib_set = CalibrationSet(run.calib, info.input_size, info.mean, run.job.num_images)
    if run.eval_dataset is not None:
        check_disjoint(run.calib_set.entries, run.eval_dataset.entries)


def _preprocess(run: _Run) -> None:
    """ORT's pre-processing, then the blocks and the requested exclusions on its graph."""
    run.say("pre-processing (shape inference, ONNX Runtime basic optimisation)")
    run.pre = run.tmp / "pre.onnx"
    preprocess_model(run.model, run.pre)
    run.pre_proto = load_model(run.pre)
    if run.job.config.cpu_graph_rewrites:
        changed, run.score_path = _rewrite(run.pre_proto)
        if changed:
            require_onnx().save(run.pre_proto, str(run.pre))
    run.blocks = node_blocks(run.pre_proto)
    run.excluded_nodes = _exclusions(run, run.job.requested)


def _exclusions(run: _Run, names: list[str]) -> list[str]:
    """The nodes kept in float: those of ``names`` (nodes or blocks) and the score path."""
    return list(dict.fromkeys(expand_exclusions(names, run.blocks, run.pre_proto)
                              + run.score_path))


def _rewrite(proto: Any) -> tuple[int, list[str]]:
    """The exact float rewrites that leave the INT8 graph fewer operators for ONNX Runtime's
    CPU kernels: how many nodes they changed, and the face score path's nodes, to be kept in
    float (quantize/score_head.py). In this order: the scalings fold through a Resize, not
    through its channels-last spelling, and through the pooling border's Where, not through
    its Max."""
    # No Pad + MaxPool spelling of BiFPN's zero-padded pooling: ONNX Runtime 1.23.2 (the
    # JetPack floor) fuses the Pad into the MaxPool's -inf padding, and 19 of 338 values of a
    # 26x26 pooling changed (by up to 1.84); it saved 0.20 ms of a 14 ms INT8 frame.
    changed = (merge_sibling_convs(proto) + fold_scalings(proto) + spell_border_max(proto)
               + spell_upsampling(proto))
    scores = spell_face_scores(proto)
    return changed + len(scores), scores


def _calibrate(run: _Run) -> None:
    """Activation ranges over the calibration images (a few inputs kept as samples), and
    the provenance every candidate model records."""
    import onnxruntime as ort

    config, calib_set = run.job.config, run.calib_set
    run.say(f"calibrating on {len(calib_set)} images ({config.method})")

    def keep_some(blobs: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for b in blobs:
            if len(run.samples) < SAMPLE_BLOBS:
                run.samples.append(b)
            yield b

    t_cal = time.perf_counter()
    ranges, run.used = calibrate(run.pre, keep_some(calib_set.blobs()), config, run.tmp,
                                 total=len(calib_set), progress=run.job.progress)
    if run.used == 0:
        first = calib_set.skipped[0][1] if calib_set.skipped else ""
        raise ConfigError(f"none of the {len(calib_set)} calibration images could be read"
                          + (f" (first: {first})" if first else ""))
    if calib_set.skipped:
        from edgeface.calibration.image_folder import warn

        warn(f"skipped {len(calib_set.skipped)} unreadable calibration images (first: "
             f"{calib_set.skipped[0][1]})")
    run.ranges_path = run.tmp / "ranges.json"
    save_ranges(ranges, run.ranges_path)
    run.calib_seconds = time.perf_counter() - t_cal
    run.provenance = {
        "format": "QDQ", "tool": f"onnxruntime.quantization {ort.__version__}",
        **config.record(),
        "calibration_images": run.used,
        "calibration_source": _describe_reader(run.calib),
        "source_sha256": sha256_file(run.model), "edgeface_version": __version__,
        "created": _now(),
    }


def _guard(run: _Run) -> None:
    """Score FP32 and the candidate on the evaluation split; with ``exclude="auto"`` and the
    budget missed, search for the fewest blocks kept in float that meet it."""
    if not run.guarded:
        return
    ds, budget = run.eval_dataset, run.job.max_ap_drop
    run.say(f"evaluating FP32 and INT8 on {ds.split} ({len(ds)} images)")
    judge = AccuracyGuard(run.fp32_backend, ds, budget, run.threads, run.job.progress)
    verdict = judge.evaluate(run.candidate)
    chosen = judge.trials[-1]
    if not verdict.passed and run.job.auto_exclude:
        run.say(f"AP drop {verdict.drops[verdict.worst]:.2f} points ({verdict.worst}) is "
                f"over {budget:g}; searching for blocks to keep in float")
        found = auto_exclude(judge, run.pre, run.ranges_path, run.job.config, run.blocks,
                             run.excluded_nodes, run.samples, run.fp32_backend, run.tmp,
                             run.build, run.say, run.job.progress)
        if found is not None:
            run.auto_blocks, run.candidate = list(found[0]), found[1]
            run.excluded_nodes = _exclusions(run, run.job.requested + run.auto_blocks)
            chosen = next(t for t in judge.trials if t["float_blocks"] == run.auto_blocks)
    run.accuracy, run.trials = judge.record(chosen), judge.trials
    run.passed = run.accuracy["passed"]


def _measure_latency(run: _Run) -> None:
    """FP32 and the candidate, alternating, on one calibration input."""
    runs = run.job.bench_runs
    if runs <= 0:
        return
    run.say(f"measuring latency ({runs} runs each, {run.threads} threads, alternating)")
    run.latency = measure_latency({"fp32": run.model, "int8": run.candidate}, run.samples[0],
                                  run.threads, runs=runs)


def _report(run: _Run) -> Int8Report:
    import onnxruntime as ort

    job, config, cand = run.job, run.job.config, run.candidate
    requested = job.requested
    return Int8Report(
        fp32={"path": str(run.model), "sha256": sha256_file(run.model),
              "size_bytes": run.model.stat().st_size},
        int8={"path": str(run.output), "sha256": sha256_file(cand),
              "size_bytes": cand.stat().st_size},
        config={**config.record(), "description": config.describe(), "format": "QDQ"},
        calibration={"source": _describe_reader(run.calib), "images": run.used,
                     "requested": job.num_images,
                     "skipped": [list(s) for s in run.calib_set.skipped],
                     "method": config.method, "seconds": round(run.calib_seconds, 2)},
        excluded={"requested": requested, "auto": run.auto_blocks,
                  "blocks": requested + run.auto_blocks, "nodes": list(run.excluded_nodes),
                  "score_path": list(run.score_path)},
        float_nodes=float_nodes(load_model(cand)),
        accuracy=run.accuracy, latency=run.latency, search=run.trials, accepted=run.passed,
        created=_now(),
        versions={"edgeface": __version__, "onnxruntime": ort.__version__,
                  "onnx": require_onnx().__version__})


def _publish(run: _Run, report: Int8Report) -> None:
    """Write the accepted model and its report; or reject (kept aside with keep_rejected)."""
    out, budget = run.output, run.job.max_ap_drop
    if run.passed:
        atomic_copy(run.candidate, out)
        write_json(report_path(out), report.to_json())
        return
    keep = run.job.keep_rejected
    report.int8["path"] = str(rejected_path(out)) if keep else None
    if keep:
        shutil.move(str(run.candidate), rejected_path(out))
        write_json(report_path(rejected_path(out)), report.to_json())
    over = ", ".join(f"{s} {d:.2f}" for s, d in run.accuracy["drop_points"].items()
                     if d > budget)
    hint = (f"no set of blocks kept in float met it ({len(run.trials) - 1} tried)"
            if run.job.auto_exclude else
            "try --exclude auto, another --method, or more calibration images")
    raise AccuracyBudgetExceeded(
        f"INT8 model rejected: AP drop over {budget:g} points ({over}); {hint}; "
        + (f"kept as {rejected_path(out)}" if keep else f"{out} was not written"), report)


def _silent(_msg: str) -> None:
    pass


def _describe_reader(reader: Any) -> str:
    root = getattr(reader, "root", None)
    split = getattr(reader, "split", None)
    return f"{root}" + (f" split {split}" if split else "") + f" ({len(reader)} listed)"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
