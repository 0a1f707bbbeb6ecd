"""The ONNX Runtime quantization calls: pre-processing, calibration, ``quantize_static`` (QDQ).

Every setting comes from the :class:`~edgeface.quantize.config.Int8Config` (integer types,
per-channel, reduce_range, calibration method and symmetry, ``extra_options``), so a new target
is a new config, not new calls. ORT's tools print to stdout and log warnings; they run inside
:func:`quiet`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from edgeface.calibration.calib_data import calibration_reader_class
from edgeface.errors import ModelError, require
from edgeface.quantize.config import FLOAT_OP_TYPES, QUANTIZED_OP_TYPES, Int8Config
from edgeface.quantize.graph import finalize_model, load_model, require_onnx

CALIB_CHUNK = 5  # images per calibrator pass: bounds memory (every activation is kept)


def ort_quantization():
    """``onnxruntime.quantization``, or a clear MissingDependency."""
    return require("onnxruntime.quantization", "quantize",
                   "INT8 quantization uses ONNX Runtime's quantization tools")


def quant_type(name: str):
    """``"u8"``/``"s8"`` -> ORT ``QuantType``."""
    q = ort_quantization()
    return q.QuantType.QUInt8 if name == "u8" else q.QuantType.QInt8


def calib_method(name: str):
    """A :data:`~edgeface.quantize.config.METHODS` name -> ORT ``CalibrationMethod``."""
    q = ort_quantization()
    return {"minmax": q.CalibrationMethod.MinMax, "entropy": q.CalibrationMethod.Entropy,
            "percentile": q.CalibrationMethod.Percentile}[name]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """ORT's quantization tools print progress to stdout and warn through logging; our
    stdout is the report."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def preprocess_model(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """``quant_pre_process``: ONNX shape inference + ORT basic optimisation (fixed shapes: no
    symbolic inference, hence no sympy)."""
    q = ort_quantization()
    with quiet():
        try:
            q.quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelError(f"{src}: ONNX Runtime's quantization pre-processing failed: "
                             f"{first[:200]}") from None


def calibrator_options(config: Int8Config) -> dict[str, Any]:
    """``create_calibrator``'s extra_options for ``config``."""
    options: dict[str, Any] = {"symmetric": config.symmetric_activations}
    if config.method == "percentile":
        options["percentile"] = config.percentile
    return options


def calibrate(model_path: str | os.PathLike, blobs: Iterable[np.ndarray], config: Int8Config,
              workdir: str | os.PathLike, total: int | None = None,
              progress: bool | None = True) -> tuple[Any, int]:
    """Activation ranges of ``model_path`` over ``blobs`` -> (ORT ``TensorsData``, images used).

    Feeds the calibrator ``CALIB_CHUNK`` images at a time (each pass keeps every activation of
    its images in memory) and merges the passes.
    """
    from tqdm import tqdm

    q = ort_quantization()
    reader_cls = calibration_reader_class()
    bar = tqdm(total=total, desc="calibrating", unit="img", leave=False, file=sys.stderr,
               disable=None if progress is None else not progress, dynamic_ncols=True)
    used = 0
    with quiet():
        calibrator = q.create_calibrator(
            Path(model_path), list(QUANTIZED_OP_TYPES),
            augmented_model_path=str(Path(workdir) / "augmented.onnx"),
            calibrate_method=calib_method(config.method),
            extra_options=calibrator_options(config))
        try:
            chunk: list[np.ndarray] = []
            for blob in blobs:
                chunk.append(blob)
                if len(chunk) == CALIB_CHUNK:
                    calibrator.collect_data(reader_cls(chunk, bar.update))
                    used += len(chunk)
                    chunk = []
            if chunk:
                calibrator.collect_data(reader_cls(chunk, bar.update))
                used += len(chunk)
            if used == 0:
                return None, 0
            ranges = calibrator.compute_data()
        finally:
            bar.close()
            del calibrator
    return ranges, used


def save_ranges(ranges: Any, path: str | os.PathLike) -> None:
    """Write :func:`calibrate`'s ranges where :func:`quantize_qdq` reads them."""
    ort_quantization().save_tensors_data(ranges, path)


def quantizer_arguments(config: Int8Config) -> dict[str, Any]:
    """``quantize_static``'s keyword arguments that ``config`` decides."""
    return {"per_channel": config.per_channel, "reduce_range": config.reduce_range,
            "activation_type": quant_type(config.activation_type),
            "weight_type": quant_type(config.weight_type),
            "calibrate_method": calib_method(config.method),
            "extra_options": dict(config.extra_options)}


def quantize_qdq(pre_model: str | os.PathLike, output: str | os.PathLike,
                 ranges_path: str | os.PathLike, config: Int8Config,
                 exclude_nodes: Sequence[str] = ()) -> None:
    """``quantize_static`` (QDQ) from saved calibration ranges: cheap to repeat with
    different exclusions."""
    q = ort_quantization()
    with quiet():
        q.quantize_static(
            str(pre_model), str(output), None,
            quant_format=q.QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OP_TYPES),
            nodes_to_exclude=list(exclude_nodes),
            calibration_cache_path=str(ranges_path),
            **quantizer_arguments(config))


def build_model(pre_model: str | os.PathLike, ranges_path: str | os.PathLike,
                config: Int8Config, exclude_nodes: Sequence[str], fp32_meta: Mapping[str, str],
                provenance: Mapping[str, Any], dst: str | os.PathLike) -> Path:
    """Quantize (:func:`quantize_qdq`) then :func:`finalize_model` into ``dst``."""
    dst = Path(dst)
    quantize_qdq(pre_model, dst, ranges_path, config, exclude_nodes)
    proto = load_model(dst)
    prov = dict(provenance, excluded_nodes=list(exclude_nodes),
                float_op_types=sorted(FLOAT_OP_TYPES))
    finalize_model(proto, fp32_meta, prov, config)
    require_onnx().save(proto, str(dst))
    return dst
