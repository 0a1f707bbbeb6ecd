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
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from edgeface import __version__
from edgeface.calibration.calib_data import CalibrationSet, check_disjoint
from edgeface.common.files import atomic_copy, sha256_file
from edgeface.errors import ConfigError, ModelError
from edgeface.inference.backends import default_threads, open_backend
from edgeface.inference.model_info import ModelInfo
from edgeface.quantize.config import DEFAULT_MAX_AP_DROP, AccuracyBudgetExceeded, Int8Config
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
from edgeface.quantize.ort_quant import build_model, calibrate, preprocess_model, save_ranges
from edgeface.quantize.report import Int8Report, rejected_path, report_path, write_json


def quantize_int8(
    model: str | os.PathLike,
    output: str | os.PathLike,
    calib: Any,
    config: Int8Config | None = None,
    num_images: int | None = None,
    eval_dataset: Any = None,
    max_ap_drop: float | None = DEFAULT_MAX_AP_DROP,
    exclude: Sequence[str] | str = (),
    threads: int | None = None,
    bench_runs: int = 50,
    keep_rejected: bool = False,
    force: bool = False,
    progress: bool | None = True,
    log_fn: Callable[[str], None] | None = None,
) -> Int8Report:
    """Quantize an edgeface FP32 ONNX model to INT8 (QDQ) and write ``output`` + its report.

    ``calib``: an image reader (``open_image_set``, a WIDERFace split, ...); ``num_images`` of
    its images, spread evenly, calibrate. ``eval_dataset``: a WIDERFace split for the
    accuracy guard, or None to skip it (``max_ap_drop=None`` skips it too). ``exclude``: node
    or block names kept in float, or ``"auto"`` to search for the fewest blocks that keep every
    AP drop within ``max_ap_drop``. Raises :class:`AccuracyBudgetExceeded` (output not
    written; kept as ``*.rejected.onnx`` with ``keep_rejected``) when the budget is not met.
    """
    import onnxruntime as ort

    t0 = time.perf_counter()
    say = log_fn or (lambda m: None)
    config = config or Int8Config()
    config.validate()
    model, output = Path(model), Path(output)
    auto = isinstance(exclude, str) and exclude == "auto"
    requested = [] if auto else [exclude] if isinstance(exclude, str) else list(exclude)
    guard = eval_dataset is not None and max_ap_drop is not None
    if auto and not guard:
        raise ConfigError("--exclude auto needs the accuracy guard (evaluation data and "
                          "--max-ap-drop)")
    if output.exists() and not force:
        raise ConfigError(f"{output} exists; use --force to overwrite")
    if output.resolve() == model.resolve():
        raise ConfigError("the output must not overwrite the FP32 model")

    proto = load_model(model)
    if is_quantized(proto):
        raise ModelError(f"{model} is already quantized (it has QuantizeLinear/QLinear "
                         "nodes); give the FP32 export")
    fp32_meta = {p.key: p.value for p in proto.metadata_props}
    # Validates the I/O contract; the guard and the sensitivity ranking run it.
    fp32_backend = open_backend(model, provider="cpu", threads=threads)
    info: ModelInfo = fp32_backend.info
    threads = threads or default_threads()

    calib_set = CalibrationSet(calib, info.input_size, info.mean, num_images)
    if eval_dataset is not None:
        check_disjoint(calib_set.entries, eval_dataset.entries)

    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgeface-int8-") as tmp:
        tmp = Path(tmp)
        pre = tmp / "pre.onnx"
        say("pre-processing (shape inference, ONNX Runtime basic optimisation)")
        preprocess_model(model, pre)
        pre_proto = load_model(pre)
        blocks = node_blocks(pre_proto)
        excluded_nodes = expand_exclusions(requested, blocks, pre_proto)

        say(f"calibrating on {len(calib_set)} images ({config.method})")
        ranges_path = tmp / "ranges.json"
        sample_blobs: list[np.ndarray] = []  # a few inputs for the search and latency

        def keep_some(blobs: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
            for b in blobs:
                if len(sample_blobs) < 8:
                    sample_blobs.append(b)
                yield b

        t_cal = time.perf_counter()
        ranges, used = calibrate(pre, keep_some(calib_set.blobs()), config, tmp,
                                 total=len(calib_set), progress=progress)
        if used == 0:
            first = calib_set.skipped[0][1] if calib_set.skipped else ""
            raise ConfigError(f"none of the {len(calib_set)} calibration images could be read"
                              + (f" (first: {first})" if first else ""))
        if calib_set.skipped:
            from edgeface.calibration.image_folder import warn

            warn(f"skipped {len(calib_set.skipped)} unreadable calibration images (first: "
                 f"{calib_set.skipped[0][1]})")
        save_ranges(ranges, ranges_path)
        calib_seconds = time.perf_counter() - t_cal

        provenance_base = {
            "format": "QDQ", "tool": f"onnxruntime.quantization {ort.__version__}",
            **config.record(),
            "calibration_images": used,
            "calibration_source": _describe_reader(calib),
            "source_sha256": sha256_file(model), "edgeface_version": __version__,
            "created": _now(),
        }

        def build(nodes: Sequence[str], dst: Path) -> Path:
            return build_model(pre, ranges_path, config, nodes, fp32_meta, provenance_base,
                               dst)

        candidate = build(excluded_nodes, tmp / "int8.onnx")

        accuracy, trials, auto_blocks, passed = None, [], [], True
        if guard:
            say(f"evaluating FP32 and INT8 on {eval_dataset.split} ({len(eval_dataset)} "
                "images)")
            judge = AccuracyGuard(fp32_backend, eval_dataset, max_ap_drop, threads, progress)
            verdict = judge.evaluate(candidate)
            chosen = judge.trials[-1]
            if not verdict.passed and auto:
                say(f"AP drop {verdict.drops[verdict.worst]:.2f} points ({verdict.worst}) is "
                    f"over {max_ap_drop:g}; searching for blocks to keep in float")
                found = auto_exclude(judge, pre, ranges_path, config, blocks, excluded_nodes,
                                     sample_blobs, fp32_backend, tmp, build, say, progress)
                if found is not None:
                    auto_blocks, candidate = list(found[0]), found[1]
                    excluded_nodes = expand_exclusions(requested + auto_blocks, blocks,
                                                       pre_proto)
                    chosen = next(t for t in judge.trials if t["float_blocks"] == auto_blocks)
            accuracy, trials = judge.record(chosen), judge.trials
            passed = accuracy["passed"]

        latency = None
        if bench_runs > 0:
            say(f"measuring latency ({bench_runs} runs each, {threads} threads, alternating)")
            latency = measure_latency({"fp32": model, "int8": candidate}, sample_blobs[0],
                                      threads, runs=bench_runs)

        q_proto = load_model(candidate)
        int8_rec = {"path": str(output), "sha256": sha256_file(candidate),
                    "size_bytes": candidate.stat().st_size}
        report = Int8Report(
            fp32={"path": str(model), "sha256": sha256_file(model),
                  "size_bytes": model.stat().st_size},
            int8=int8_rec,
            config={**config.record(), "description": config.describe(), "format": "QDQ"},
            calibration={"source": _describe_reader(calib), "images": used,
                         "requested": num_images, "skipped": [list(s) for s in
                                                              calib_set.skipped],
                         "method": config.method, "seconds": round(calib_seconds, 2)},
            excluded={"requested": requested, "auto": auto_blocks,
                      "blocks": requested + auto_blocks, "nodes": list(excluded_nodes)},
            float_nodes=float_nodes(q_proto),
            accuracy=accuracy, latency=latency, search=trials, accepted=passed,
            created=_now(),
            versions={"edgeface": __version__, "onnxruntime": ort.__version__,
                      "onnx": require_onnx().__version__})
        report.seconds = round(time.perf_counter() - t0, 2)

        if not passed:
            report.int8["path"] = str(rejected_path(output)) if keep_rejected else None
            if keep_rejected:
                shutil.move(str(candidate), rejected_path(output))
                write_json(report_path(rejected_path(output)), report.to_json())
            worst = accuracy["drop_points"]
            over = ", ".join(f"{s} {d:.2f}" for s, d in worst.items() if d > max_ap_drop)
            hint = (f"no set of blocks kept in float met it ({len(trials) - 1} tried)" if auto
                    else "try --exclude auto, another --method, or more calibration images")
            raise AccuracyBudgetExceeded(
                f"INT8 model rejected: AP drop over {max_ap_drop:g} points ({over}); {hint}; "
                + (f"kept as {rejected_path(output)}" if keep_rejected else
                   f"{output} was not written"), report)

        atomic_copy(candidate, output)
        write_json(report_path(output), report.to_json())
        return report


def _describe_reader(reader: Any) -> str:
    root = getattr(reader, "root", None)
    split = getattr(reader, "split", None)
    return f"{root}" + (f" split {split}" if split else "") + f" ({len(reader)} listed)"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
