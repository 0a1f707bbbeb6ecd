"""`edgeface quantize`: FP32 ONNX -> INT8 (QDQ), calibrated, guarded, reported
(``--int8``, for the CPU or, with ``--target tensorrt``, a Q/DQ model TensorRT builds directly);
ONNX -> a TensorRT engine on the device (``--tensorrt``, FP32/FP16/INT8, ``--dry-run`` plans)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Callable

import click

from edgeface.cli.options import FiniteRange
from edgeface.errors import ConfigError
from edgeface.quantize.config import (
    DEFAULT_MAX_AP_DROP,
    DEFAULT_METHOD,
    DEFAULT_PERCENTILE,
    DEFAULT_REDUCE_RANGE,
    METHODS,
)
from edgeface.quantize.tensorrt_qdq import TARGETS, TENSORRT_FIXED

log = logging.getLogger(__name__)


def _is_widerface(root: Path) -> bool:
    from edgeface.calibration.widerface import GT_TXT

    return (root / "images").is_dir() and any(
        (root / d / GT_TXT).is_file() for d in (".", "ground_truth", "wider_face_split"))


@click.command("quantize")
@click.option("--int8", "int8", is_flag=True,
              help="Quantize to INT8: an INT8 ONNX model, or with --tensorrt an INT8 engine.")
@click.option("--target", type=click.Choice(TARGETS), default="cpu", show_default=True,
              help="--int8 for: cpu (ONNX Runtime on x86/ARM) or tensorrt (a Q/DQ model "
                   "TensorRT builds directly: symmetric S8, float bias and DeformConv).")
@click.option("--tensorrt", is_flag=True,
              help="Build a TensorRT engine (-o X.engine) on this device, with its sidecar "
                   "and timing cache beside it; --fp16 or --int8 for the precision.")
@click.option("--fp16", is_flag=True, help="--tensorrt: allow FP16 kernels.")
@click.option("--workspace", default="1G", show_default=True, metavar="SIZE",
              help="--tensorrt: builder workspace limit (K/M/G).")
@click.option("-n", "--dry-run", is_flag=True,
              help="--tensorrt: print the build plan; build nothing (works without TensorRT).")
@click.option("--trt-version", default=None, metavar="X.Y",
              help="--tensorrt --dry-run: plan for this TensorRT (e.g. 8.5 for JetPack 5) "
                   "[default: the installed one, else 10.3].")
@click.option("-m", "--model", required=True, type=click.Path(path_type=Path),
              help="FP32 ONNX model from `edgeface export` (--tensorrt: also a Q/DQ model).")
@click.option("--calib", "calib_dir", default=None, type=click.Path(path_type=Path),
              help="Calibration images: a WIDERFace directory (images/, splits/) or any "
                   "folder of images (needed by --int8).")
@click.option("--split", default=None,
              help="Calibration split under DIR/splits/ or a list file [default: 'calib' "
                   "when DIR has splits/calib.txt, else every image].")
@click.option("--num-images", type=click.IntRange(1), default=None,
              help="Calibrate on N images spread over the split [default: all].")
@click.option("--method", type=click.Choice(METHODS), default=DEFAULT_METHOD,
              show_default=True, help="Activation range calibration.")
@click.option("--percentile", type=FiniteRange(90, 100), default=DEFAULT_PERCENTILE,
              show_default=True,
              help="Percentile kept by --method percentile.")
@click.option("--per-channel/--per-tensor", default=True, show_default=True,
              help="Weight scales per output channel or per tensor.")
@click.option("--reduce-range/--no-reduce-range", default=DEFAULT_REDUCE_RANGE,
              show_default=True,
              help="7-bit weights (measured better AP here; see docs/quantize.md).")
@click.option("--activation-type", type=click.Choice(["u8", "s8"]), default="u8",
              show_default=True, help="Activation integer type (u8: x86 fast path).")
@click.option("--weight-type", type=click.Choice(["s8", "u8"]), default="s8",
              show_default=True, help="Weight integer type.")
@click.option("--exclude", default=None,
              help="Nodes or blocks (e.g. inner.body.stage1) to keep in float, comma "
                   "separated; 'auto': if the AP budget is missed, search for the fewest "
                   "blocks that meet it; 'none' [default: auto with the guard, else none].")
@click.option("--eval", "eval_dir", type=click.Path(path_type=Path), default=None,
              help="WIDERFace directory for the accuracy guard [default: --calib when it is "
                   "one].")
@click.option("--eval-split", default="eval", show_default=True,
              help="Evaluation split (must not share images with the calibration split).")
@click.option("--max-ap-drop", type=FiniteRange(0, 100), default=DEFAULT_MAX_AP_DROP,
              show_default=True, help="Largest AP loss allowed per setting, in points.")
@click.option("--no-eval", is_flag=True,
              help="Skip the accuracy guard (the report then says AP was not checked).")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="Threads for evaluation and the latency check [default: the runtime's].")
@click.option("--bench-runs", type=click.IntRange(0), default=50, show_default=True,
              help="Latency runs per model, FP32 and INT8 alternating (0: skip).")
@click.option("--keep-rejected", is_flag=True,
              help="Keep an out-of-budget model as <output>.rejected.onnx (+ .json).")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="INT8 .onnx to write, the report beside it as .json (--tensorrt: the "
                   ".engine).")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
def quantize(int8: bool, target: str, tensorrt: bool, fp16: bool, workspace: str,
             dry_run: bool, trt_version: str | None, model: Path, calib_dir: Path | None,
             split: str | None, num_images: int | None, method: str, percentile: float,
             per_channel: bool, reduce_range: bool, activation_type: str, weight_type: str,
             exclude: str | None, eval_dir: Path | None, eval_split: str, max_ap_drop: float,
             no_eval: bool, threads: int | None, bench_runs: int, keep_rejected: bool,
             output: Path, force: bool) -> None:
    """Quantize an FP32 ONNX export to INT8, calibrated on real images, with an accuracy guard.

    ONNX Runtime static quantization (QDQ). Deformable convolutions stay float. FP32 and INT8
    are evaluated on WIDERFace; a model losing more than --max-ap-drop AP points in any of
    easy/medium/hard is not written (exit 1). Prints a report and writes it beside the model.
    --target tensorrt writes the Q/DQ model TensorRT consumes (symmetric signed INT8,
    per-channel weights, zero points 0, float bias, DeformConv float), same guard.

    --tensorrt builds an engine on this device (TensorRT's Python bindings and cuda-python);
    --int8 then uses the model's Q/DQ scales, or quantizes an FP32 model for TensorRT first
    (TensorRT >= 8.6) or calibrates in TensorRT (older). --dry-run prints the plan anywhere.
    """
    from edgeface.common.files import ensure_writable_dir, refuse_overwriting_inputs
    from edgeface.quantize.config import Int8Config
    from edgeface.quantize.tensorrt_qdq import check_tensorrt_qdq, tensorrt_int8_config

    if not (int8 or tensorrt):
        raise ConfigError("give --int8 (an INT8 ONNX model) or --tensorrt (a TensorRT engine)")
    if (dry_run or trt_version) and not tensorrt:
        raise ConfigError("--dry-run and --trt-version plan a TensorRT build: add --tensorrt")
    if fp16 and not tensorrt:
        raise ConfigError("--fp16 is a TensorRT precision: add --tensorrt")
    refuse_overwriting_inputs({"-o/--output": output}, {"-m/--model": model})
    if not tensorrt and output.exists() and not force:
        raise ConfigError(f"{output} exists; use --force to overwrite")
    if not dry_run:
        ensure_writable_dir(output.parent, "-o/--output")
    if not model.is_file():
        from edgeface.errors import ModelError

        raise ModelError(f"model file not found: {model}")
    if target == "tensorrt" or tensorrt:
        _check_fixed_settings(click.get_current_context())
    excl: str | list[str] = "auto" if exclude is None and not no_eval else ()
    if exclude and exclude.strip() not in ("none", ""):
        excl = "auto" if exclude.strip() == "auto" else [
            e.strip() for e in exclude.split(",") if e.strip()]
    elif exclude:
        excl = ()
    interactive = sys.stderr.isatty()

    def say(msg: str) -> None:
        # Step-by-step progress on a terminal; in scripts/CI only the result and errors.
        if interactive:
            click.echo(f"edgeface: {msg}", err=True)
        else:
            log.info(msg)

    def int8_pipeline(dst: Path, config: Int8Config) -> Path:
        _quantize_onnx(model, dst, calib_dir, split, num_images, config, excl, eval_dir,
                       eval_split, max_ap_drop, no_eval, threads, bench_runs, keep_rejected,
                       force, say)
        return dst

    if tensorrt:
        _build_tensorrt(model, output, fp16=fp16, int8=int8, calib_dir=calib_dir, split=split,
                        num_images=num_images, workspace=workspace, dry_run=dry_run,
                        trt_version=trt_version, force=force, say=say,
                        quantize=lambda dst: int8_pipeline(
                            dst, tensorrt_int8_config(method, percentile)))
        return
    if calib_dir is None:
        raise ConfigError("--int8 needs calibration images: --calib DIR")
    if target == "tensorrt":
        config = tensorrt_int8_config(method, percentile)
    else:
        config = Int8Config(method=method, per_channel=per_channel, reduce_range=reduce_range,
                            activation_type=activation_type, weight_type=weight_type,
                            percentile=percentile)
    int8_pipeline(output, config)
    if target == "tensorrt":
        check_tensorrt_qdq(output)
        click.echo(f"{output} keeps TensorRT's Q/DQ rules; build it on the device: edgeface "
                   f"quantize --tensorrt -m {output.name} -o {output.stem}.engine")


def _quantize_onnx(model: Path, output: Path, calib_dir: Path | None, split: str | None,
                   num_images: int | None, config: Any, excl: str | list[str] | tuple,
                   eval_dir: Path | None, eval_split: str, max_ap_drop: float, no_eval: bool,
                   threads: int | None, bench_runs: int, keep_rejected: bool, force: bool,
                   say: Callable[[str], None]) -> None:
    """The `--int8` pipeline (quantize_int8) with the CLI's guard settings; prints the
    report."""
    from edgeface.calibration.calib_data import open_image_set
    from edgeface.calibration.widerface import load_widerface
    from edgeface.quantize.config import AccuracyBudgetExceeded
    from edgeface.quantize.int8 import quantize_int8
    from edgeface.quantize.report import report_path

    if calib_dir is None:
        raise ConfigError("--int8 needs calibration images: --calib DIR")
    eval_root = eval_dir or (calib_dir if _is_widerface(calib_dir) else None)
    if no_eval:
        if excl == "auto":
            raise ConfigError("--exclude auto needs the accuracy guard; drop --no-eval")
        eval_ds = None
    elif eval_root is None:
        raise ConfigError("the accuracy guard needs WIDERFace data: give --eval DIR (or "
                          "--no-eval to skip it)")
    else:
        eval_ds = load_widerface(eval_root, eval_split)
    calib = open_image_set(calib_dir, split)
    try:
        report = quantize_int8(model, output, calib, config, num_images=num_images,
                               eval_dataset=eval_ds,
                               max_ap_drop=None if no_eval else max_ap_drop, exclude=excl,
                               threads=threads, bench_runs=bench_runs,
                               keep_rejected=keep_rejected, force=force, progress=None,
                               log_fn=say)
    except AccuracyBudgetExceeded as exc:
        if exc.report is not None:
            click.echo(exc.report.summary())  # the figures behind the rejection
        raise
    click.echo(report.summary())
    click.echo(f"wrote {output} and {report_path(output)}")


def _check_fixed_settings(ctx: click.Context) -> None:
    """The TensorRT target fixes the integer types, per-channel and reduce_range: a flag
    given on the command line that contradicts it is an error, not silently ignored."""
    from click.core import ParameterSource

    for name, fixed in TENSORRT_FIXED.items():
        if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE and \
                ctx.params[name] != fixed:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"TensorRT reads symmetric S8 Q/DQ with per-channel weights and "
                              f"no reduce_range: drop {flag}")


def _build_tensorrt(model: Path, output: Path, *, fp16: bool, int8: bool,
                    calib_dir: Path | None, split: str | None, num_images: int | None,
                    workspace: str, dry_run: bool, trt_version: str | None, force: bool,
                    say: Callable[[str], None], quantize: Callable[[Path], Path]) -> None:
    """`--tensorrt`: plan (and with --dry-run print) the build, then run it."""
    from edgeface.common.sizes import parse_size
    from edgeface.errors import EdgefaceError, MissingDependency
    from edgeface.inference.backends.tensorrt_backend import load_tensorrt
    from edgeface.quantize.tensorrt_plan import plan_build

    try:
        ws = parse_size(workspace)
    except ConfigError as exc:
        raise ConfigError(f"--workspace: {exc}") from None
    if not ws:
        raise ConfigError(f"--workspace {workspace!r}: give a size such as 512M or 1G")
    if trt_version and not dry_run:
        raise ConfigError("--trt-version only plans (with --dry-run); a build uses the "
                          "installed TensorRT")
    trt, missing = None, None
    try:
        trt = load_tensorrt()
    except MissingDependency as exc:
        if not dry_run:
            raise
        missing = exc
    installed = str(trt.__version__) if trt is not None else None

    def plan_for(src: Path):  # noqa: ANN202 - a BuildPlan
        return plan_build(src, output, fp16=fp16, int8=int8, calib=calib_dir,
                          trt_version=trt_version or installed,
                          trt_installed=installed is not None and trt_version in (None,
                                                                                  installed),
                          workspace=ws)

    plan = plan_for(model)
    if dry_run:
        click.echo("\n".join(plan.lines()))
        if missing is not None:
            click.echo(f"  (a real build here would stop: {missing})")
        if plan.problems:
            raise EdgefaceError(*plan.problems[0])
        return
    if plan.problems:
        raise EdgefaceError(*plan.problems[0])
    calib_blobs = None
    if plan.qdq_model is not None:
        say(f"quantizing {model.name} for TensorRT -> {plan.qdq_model}")
        plan = plan_for(quantize(plan.qdq_model))
    elif plan.int8_mode == "calibrator":
        from edgeface.calibration.calib_data import CalibrationSet, open_image_set

        calib_set = CalibrationSet(open_image_set(plan.calib, split), plan.info.input_size,
                                   plan.info.mean, num_images)
        calib_blobs = calib_set.blobs()
    from edgeface.quantize.tensorrt_build import build_engine

    doc = build_engine(plan, say=say, calib_blobs=calib_blobs, force=force, trt=trt)
    state = "up to date" if doc.get("up_to_date") else "built"
    seconds = (doc.get("builder") or {}).get("seconds")
    click.echo(f"{state}: {output} ({plan.precision.upper()}, "
               + (f"{seconds} s, " if seconds is not None and state == "built" else "")
               + f"sidecar {plan.sidecar.name}); check it: edgeface bench --model {output}")
