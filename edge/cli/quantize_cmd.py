"""`edgeface quantize --int8`: FP32 ONNX -> INT8 (QDQ), calibrated, guarded, reported."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

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

log = logging.getLogger(__name__)


def _is_widerface(root: Path) -> bool:
    from edgeface.calibration.widerface import GT_TXT

    return (root / "images").is_dir() and any(
        (root / d / GT_TXT).is_file() for d in (".", "ground_truth", "wider_face_split"))


@click.command("quantize")
@click.option("--int8", "int8", is_flag=True, help="Quantize to INT8 (the only precision).")
@click.option("-m", "--model", required=True, type=click.Path(path_type=Path),
              help="FP32 ONNX model from `edgeface export`.")
@click.option("--calib", "calib_dir", required=True, type=click.Path(path_type=Path),
              help="Calibration images: a WIDERFace directory (images/, splits/) or any "
                   "folder of images.")
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
              show_default=True, help="7-bit weights (measured better AP here; see README).")
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
              help="INT8 .onnx to write; the report goes beside it as .json.")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
def quantize(int8: bool, model: Path, calib_dir: Path, split: str | None,
             num_images: int | None, method: str, percentile: float, per_channel: bool,
             reduce_range: bool, activation_type: str, weight_type: str, exclude: str | None,
             eval_dir: Path | None, eval_split: str, max_ap_drop: float, no_eval: bool,
             threads: int | None, bench_runs: int, keep_rejected: bool, output: Path,
             force: bool) -> None:
    """Quantize an FP32 ONNX export to INT8, calibrated on real images, with an accuracy guard.

    ONNX Runtime static quantization (QDQ). Deformable convolutions stay float. FP32 and INT8
    are evaluated on WIDERFace; a model losing more than --max-ap-drop AP points in any of
    easy/medium/hard is not written (exit 1). Prints a report and writes it beside the model.
    """
    from edgeface.calibration.calib_data import open_image_set
    from edgeface.calibration.widerface import load_widerface
    from edgeface.common.files import ensure_writable_dir, refuse_overwriting_inputs
    from edgeface.quantize.config import AccuracyBudgetExceeded, Int8Config
    from edgeface.quantize.int8 import quantize_int8
    from edgeface.quantize.report import report_path

    if not int8:
        raise ConfigError("give --int8 (the only precision `edgeface quantize` produces)")
    refuse_overwriting_inputs({"-o/--output": output}, {"-m/--model": model})
    if output.exists() and not force:
        raise ConfigError(f"{output} exists; use --force to overwrite")
    ensure_writable_dir(output.parent, "-o/--output")
    if not model.is_file():
        from edgeface.errors import ModelError

        raise ModelError(f"model file not found: {model}")
    excl: str | list[str] = "auto" if exclude is None and not no_eval else ()
    if exclude and exclude.strip() not in ("none", ""):
        excl = "auto" if exclude.strip() == "auto" else [
            e.strip() for e in exclude.split(",") if e.strip()]
    elif exclude:
        excl = ()
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
    config = Int8Config(method=method, per_channel=per_channel, reduce_range=reduce_range,
                        activation_type=activation_type, weight_type=weight_type,
                        percentile=percentile)
    calib = open_image_set(calib_dir, split)

    interactive = sys.stderr.isatty()

    def say(msg: str) -> None:
        # Step-by-step progress on a terminal; in scripts/CI only the result and errors.
        if interactive:
            click.echo(f"edgeface: {msg}", err=True)
        else:
            log.info(msg)

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
