"""`edgeface quantize`: FP32 ONNX -> INT8 (QDQ), calibrated, guarded, reported
(``--int8``, for the CPU or, with ``--provider tensorrt``, a Q/DQ model TensorRT builds directly);
ONNX -> a TensorRT engine on the device (``--tensorrt``, FP32/FP16/INT8, ``--dry-run`` plans).
The flags pick a format from :data:`edgeface.quantize.formats.FORMATS`, which says which
options it takes and what builds it."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import click

from edgeface.cli.options import (
    DATASET,
    DRY_RUN,
    EVAL_DATASET,
    EVAL_SPLIT,
    FORCE,
    OUTPUT,
    SPLIT,
    FiniteRange,
    option,
    renamed,
)
from edgeface.errors import ConfigError
from edgeface.quantize.config import (
    DEFAULT_MAX_AP_DROP,
    DEFAULT_METHOD,
    DEFAULT_PERCENTILE,
    DEFAULT_REDUCE_RANGE,
    METHODS,
)
from edgeface.quantize.formats import FORMATS, Format, resolve
from edgeface.quantize.targets import TARGETS
from edgeface.runtime.options import Option, memory
from edgeface.runtime.settings import MODEL, PROVIDER, THREADS

if TYPE_CHECKING:
    from edgeface.quantize.config import Int8Job

log = logging.getLogger(__name__)


def _is_widerface(root: Path) -> bool:
    from edgeface.calibration.widerface import GT_TXT

    return (root / "images").is_dir() and any(
        (root / d / GT_TXT).is_file() for d in (".", "ground_truth", "wider_face_split"))


# The builder's workspace: parsed to bytes once, by the same size check as --memory-limit.
WORKSPACE = Option("workspace", "--workspace", memory(1 << 20), "1G", metavar="SIZE",
                   help="--tensorrt: builder workspace limit (K/M/G).")


# `--target` was where the INT8 model runs; it is --provider, spelled as everywhere.
@click.command("quantize", **renamed({"--target": "--provider", "--calib": "--dataset",
                                      "--eval": "--eval-dataset"}))
@click.option("--int8", "int8", is_flag=True,
              help="Quantize to INT8: an INT8 ONNX model, or with --tensorrt an INT8 engine.")
@option(PROVIDER, help="What runs the --int8 model: auto or cpu (ONNX Runtime on x86/ARM) "
                      "or tensorrt (a Q/DQ model TensorRT builds directly: symmetric S8, "
                      "float bias and DeformConv).")
@click.option("--tensorrt", is_flag=True,
              help="Build a TensorRT engine (-o X.engine) on this device, with its sidecar "
                   "and timing cache beside it; --fp16 or --int8 for the precision.")
@click.option("--fp16", is_flag=True, help="--tensorrt: allow FP16 kernels.")
@option(WORKSPACE)
@option(DRY_RUN, help="--tensorrt: print the build plan; build nothing (works without "
                      "TensorRT).")
@click.option("--trt-version", default=None, metavar="X.Y",
              help="--tensorrt --dry-run: plan for this TensorRT (e.g. 8.5 for JetPack 5) "
                   "[default: the installed one, else 10.3].")
@option(MODEL, required=True,
        help="FP32 ONNX model from `edgeface export` (--tensorrt: also a Q/DQ model).")
@option(DATASET, help="Calibration images: a WIDERFace directory (images/, splits/) or any "
                      "folder of images (needed by --int8).")
@option(SPLIT)
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
@option(EVAL_DATASET)
@option(EVAL_SPLIT)
@click.option("--max-ap-drop", type=FiniteRange(0, 100), default=DEFAULT_MAX_AP_DROP,
              show_default=True, help="Largest AP loss allowed per setting, in points.")
@click.option("--no-eval", is_flag=True,
              help="Skip the accuracy guard (the report then says AP was not checked).")
@option(THREADS, help="Threads for evaluation and the latency check [default: the "
                     "runtime's, the cores available].")
@click.option("--bench-runs", type=click.IntRange(0), default=50, show_default=True,
              help="Latency runs per model, FP32 and INT8 alternating (0: skip).")
@click.option("--keep-rejected", is_flag=True,
              help="Keep an out-of-budget model as <output>.rejected.onnx (+ .json).")
@option(OUTPUT, required=True, help="INT8 .onnx to write, the report beside it as .json "
                                    "(--tensorrt: the .engine).")
@option(FORCE)
def quantize(int8: bool, provider: str, tensorrt: bool, fp16: bool, workspace: int,
             dry_run: bool, trt_version: str | None, model: Path, dataset: Path | None,
             split: str | None, num_images: int | None, method: str, percentile: float,
             per_channel: bool, reduce_range: bool, activation_type: str, weight_type: str,
             exclude: str | None, eval_dataset: Path | None, eval_split: str,
             max_ap_drop: float, no_eval: bool, threads: int | None, bench_runs: int,
             keep_rejected: bool, output: Path, force: bool) -> None:
    """Quantize an FP32 ONNX export to INT8, calibrated on real images, with an accuracy guard.

    ONNX Runtime static quantization (QDQ). Deformable convolutions stay float. FP32 and INT8
    are evaluated on WIDERFace; a model losing more than --max-ap-drop AP points in any of
    easy/medium/hard is not written (exit 1). Prints a report and writes it beside the model.
    --provider tensorrt writes the Q/DQ model TensorRT consumes (symmetric signed INT8,
    per-channel weights, zero points 0, float bias, DeformConv float), same guard.

    --tensorrt builds an engine on this device (TensorRT's Python bindings and cuda-python);
    --int8 then uses the model's Q/DQ scales, or quantizes an FP32 model for TensorRT first
    (TensorRT >= 8.6) or calibrates in TensorRT (older). --dry-run prints the plan anywhere.
    """
    from edgeface.common.files import ensure_writable_dir, refuse_overwriting_inputs
    from edgeface.quantize.formats import check_options, select_format

    ctx = click.get_current_context()
    fmt = select_format(int8=int8, tensorrt=tensorrt, target=_int8_target(provider), fp16=fp16)
    given = _given(ctx)
    check_options(fmt, given, lambda name: _flag(ctx, name, given[name]))
    refuse_overwriting_inputs({"-o/--output": output}, {"-m/--model": model})
    if fmt.pipeline == "int8" and output.exists() and not force:
        raise ConfigError(f"{output} exists; use --force to overwrite")
    if not dry_run:
        ensure_writable_dir(output.parent, "-o/--output")
    if not model.is_file():
        from edgeface.errors import ModelError

        raise ModelError(f"model file not found: {model}")
    data = Int8Data(dataset, split, eval_dataset, eval_split, guard=not no_eval)
    job = _int8_job(fmt, ctx.params) if fmt.int8_config else None
    interactive = sys.stderr.isatty()

    def say(msg: str) -> None:
        # Step-by-step progress on a terminal; in scripts/CI only the result and errors.
        if interactive:
            click.echo(f"edgeface: {msg}", err=True)
        else:
            log.info(msg)

    if fmt.pipeline == "tensorrt":
        engine = EngineRequest(fp16=fp16, int8=int8, workspace=workspace, dry_run=dry_run,
                               trt_version=trt_version, force=force)
        _build_tensorrt(fmt, model, output, engine, data, job, say)
        return
    _quantize_onnx(fmt, model, output, data, job, say)
    if fmt.check:
        resolve(fmt.check)(output)
        click.echo(f"{output} keeps TensorRT's Q/DQ rules; build it on the device: edgeface "
                   f"quantize --tensorrt -m {output.name} -o {output.stem}.engine")


def _int8_target(provider: str) -> str:
    """What the --int8 model is made for: TensorRT, or ONNX Runtime's CPU (auto)."""
    if provider not in TARGETS and provider != "auto":
        raise ConfigError(f"--provider {provider}: an INT8 model is made for "
                          f"{' or '.join(TARGETS)} (auto: cpu)")
    return "tensorrt" if provider == "tensorrt" else "cpu"


@dataclass(frozen=True)
class Int8Data:
    """The images an INT8 pipeline reads: calibration, and evaluation for the guard."""

    dataset: Path | None
    split: str | None
    eval_dataset: Path | None
    eval_split: str
    guard: bool  # False: --no-eval


@dataclass(frozen=True)
class EngineRequest:
    """`--tensorrt`: what to build and how."""

    fp16: bool
    int8: bool
    workspace: Optional[int]  # bytes (the option's check parsed it)
    dry_run: bool
    trt_version: str | None
    force: bool


def _given(ctx: click.Context) -> dict[str, Any]:
    """The options set on the command line (or the environment), with their values."""
    from click.core import ParameterSource

    unset = (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)
    return {name: value for name, value in ctx.params.items()
            if ctx.get_parameter_source(name) not in unset}


def _flag(ctx: click.Context, name: str, value: Any = None) -> str:
    """A parameter's spelling as the user gave it: ``dataset`` -> ``--dataset``,
    ``per_channel`` False -> ``--per-tensor``."""
    param = next(p for p in ctx.command.params if p.name == name)
    secondary = getattr(param, "secondary_opts", None)
    if value is False and secondary:
        return max(secondary, key=len)
    return max(param.opts, key=len)


def _int8_job(fmt: Format, params: dict[str, Any]) -> Int8Job:
    """The format's INT8 settings from the command's options (a fixed setting is the
    format's; check_options refused a contradicting flag) and the pipeline's run options."""
    import inspect

    from edgeface.quantize.config import Int8Job

    make = fmt.config_function()
    takes = inspect.signature(make).parameters
    config = make(**{k: params[k] for k in ("method", "percentile", "per_channel",
                                            "reduce_range", "activation_type", "weight_type")
                     if k in takes})
    no_eval = params["no_eval"]
    return Int8Job(config, num_images=params["num_images"],
                   max_ap_drop=None if no_eval else params["max_ap_drop"],
                   exclude=_exclusions(params["exclude"], no_eval),
                   threads=params["threads"], bench_runs=params["bench_runs"],
                   keep_rejected=params["keep_rejected"], force=params["force"],
                   progress=None)


def _exclusions(exclude: str | None, no_eval: bool) -> str | tuple[str, ...]:
    """``--exclude``: "auto" (the default with the guard), "none", or names."""
    if exclude is None:
        return () if no_eval else "auto"
    names = exclude.strip()
    if names in ("none", ""):
        return ()
    return "auto" if names == "auto" else tuple(
        e.strip() for e in exclude.split(",") if e.strip())


def _quantize_onnx(fmt: Format, model: Path, output: Path, data: Int8Data, job: Int8Job,
                   say: Callable[[str], None]) -> Path:
    """The `--int8` pipeline (quantize_int8) with the CLI's guard settings; prints the
    report."""
    from edgeface.calibration.calib_data import open_image_set
    from edgeface.calibration.widerface import load_widerface
    from edgeface.quantize.report import AccuracyBudgetExceeded, report_path

    if data.dataset is None:
        raise ConfigError("--int8 needs calibration images: --dataset DIR")
    eval_root = data.eval_dataset or (data.dataset if _is_widerface(data.dataset) else None)
    if not data.guard:
        if job.auto_exclude:
            raise ConfigError("--exclude auto needs the accuracy guard; drop --no-eval")
        eval_ds = None
    elif eval_root is None:
        raise ConfigError("the accuracy guard needs WIDERFace data: give --eval-dataset DIR "
                          "(or --no-eval to skip it)")
    else:
        eval_ds = load_widerface(eval_root, data.eval_split)
    calib = open_image_set(data.dataset, data.split)
    quantize_int8 = fmt.build_function()
    try:
        report = quantize_int8(model, output, calib, job, eval_dataset=eval_ds, log_fn=say)
    except AccuracyBudgetExceeded as exc:
        if exc.report is not None:
            click.echo(exc.report.summary())  # the figures behind the rejection
        raise
    click.echo(report.summary())
    click.echo(f"wrote {output} and {report_path(output)}")
    return output


def _build_tensorrt(fmt: Format, model: Path, output: Path, engine: EngineRequest,
                    data: Int8Data, job: Int8Job | None, say: Callable[[str], None]) -> None:
    """`--tensorrt`: plan (and with --dry-run print) the build, then run it."""
    from edgeface.errors import EdgefaceError, MissingDependency
    from edgeface.inference.backends.tensorrt.plan import plan_build
    from edgeface.inference.backends.tensorrt.runtime import load_tensorrt

    ws = engine.workspace
    if not ws:  # 0/off: the check's "none", which a builder cannot take
        raise ConfigError("--workspace: give a size such as 512M or 1G")
    if engine.trt_version and not engine.dry_run:
        raise ConfigError("--trt-version only plans (with --dry-run); a build uses the "
                          "installed TensorRT")
    trt, missing = None, None
    try:
        trt = load_tensorrt()
    except MissingDependency as exc:
        if not engine.dry_run:
            raise
        missing = exc
    installed = str(trt.__version__) if trt is not None else None
    wanted = engine.trt_version

    def plan_for(src: Path):  # noqa: ANN202 - a BuildPlan
        return plan_build(src, output, fp16=engine.fp16, int8=engine.int8,
                          calib=data.dataset, trt_version=wanted or installed,
                          trt_installed=installed is not None and wanted in (None, installed),
                          workspace=ws)

    plan = plan_for(model)
    if engine.dry_run:
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
        plan = plan_for(_quantize_onnx(FORMATS[fmt.via], model, plan.qdq_model, data, job, say))
    elif plan.int8_mode == "calibrator":
        from edgeface.calibration.calib_data import CalibrationSet, open_image_set

        calib_set = CalibrationSet(open_image_set(plan.calib, data.split), plan.info.input_size,
                                   plan.info.mean, job.num_images if job else None)
        calib_blobs = calib_set.blobs()
    build_engine = fmt.build_function()
    doc = build_engine(plan, say=say, calib_blobs=calib_blobs, force=engine.force, trt=trt)
    state = "up to date" if doc.get("up_to_date") else "built"
    seconds = (doc.get("builder") or {}).get("seconds")
    click.echo(f"{state}: {output} ({plan.precision.upper()}, "
               + (f"{seconds} s, " if seconds is not None and state == "built" else "")
               + f"sidecar {plan.sidecar.name}); check it: edgeface bench --model {output}")
