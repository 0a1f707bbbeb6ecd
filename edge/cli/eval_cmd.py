"""`edgeface eval`: WIDER FACE easy/medium/hard AP of an ONNX model or a PyTorch checkpoint."""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path

import click

from edgeface.cli.options import (
    ARCH,
    DATASET,
    OUTPUT_DIR,
    SPLIT,
    WEIGHTS,
    option,
    renamed,
)
from edgeface.errors import EXIT_FAILURE, ConfigError, EdgefaceError, ModelError, require
from edgeface.runtime.settings import FAMILY, MODEL, PROVIDER, SIZE, THREADS

#: The split `eval` reads when --split is not given: the shared eval split.
DEFAULT_SPLIT = "eval"


@click.command("eval", **renamed({"-o": "--output-dir", "--out": "--output-dir",
                                  "--providers": "--provider", "--widerface": "--dataset"}))
@option(MODEL, help="ONNX model (FP32 or INT8) to evaluate.")
@option(WEIGHTS, help="PyTorch checkpoint to evaluate instead (runs PyTorch; needs "
                     "edgeface[export]).")
@option(ARCH)
@option(DATASET, required=True, help="WIDER FACE directory: images/, ground truth, optional "
                                     "splits/ and image_sizes.txt.")
@option(SPLIT)
@option(SIZE)
@option(OUTPUT_DIR, help="Output directory [default: results/eval-<model name>/].")
@option(THREADS)
@option(PROVIDER)
@option(FAMILY)
def eval_cmd(model: Path | None, weights: Path | None, arch: str | None, dataset: Path,
             split: str | None, size: tuple[int, int] | None, output_dir: Path | None,
             threads: int | None, provider: str, family: str | None) -> None:
    """Evaluate a detector on WIDER FACE with the official protocol and print easy/medium/hard AP.

    Detection uses the usual evaluation settings (confidence 0.02, NMS 0.4, keep 750). Writes
    the predictions in the WIDER FACE text format, summary.json and a PR curve per setting.
    Unreadable images are reported and make the exit status non-zero.
    """
    from edgeface.calibration.evaluation import evaluate_detector
    from edgeface.calibration.plots import write_pr_plots
    from edgeface.calibration.widerface import load_widerface, write_predictions
    from edgeface.common.files import sha256_file
    from edgeface.inference.backends import open_backend
    from edgeface.inference.detector import family_options

    if (model is None) == (weights is None):
        raise ConfigError("give exactly one of --model (ONNX) or --weights (PyTorch checkpoint)")
    if arch and weights is None:
        raise ConfigError("--arch applies to --weights only (an ONNX model names its own)")
    if family and weights is not None:
        raise ConfigError("--family applies to --model only (a checkpoint is FeatherFace's)")
    source = model or weights
    if not source.is_file():
        raise ModelError(f"model file not found: {source}")

    require("matplotlib", "eval", "draws the PR curves")  # before the run, not after it
    root, out = dataset, output_dir
    dataset = load_widerface(root, split or DEFAULT_SPLIT)
    options = {"arch": arch} if weights is not None else family_options(source, family)
    backend = open_backend(source, provider=provider, threads=threads, input_size=size,
                           **options)
    fmt = "pytorch" if backend.name == "pytorch" else source.suffix.lstrip(".").lower()
    w, h = backend.info.input_size
    click.echo(f"evaluating {source.name} ({backend.name}, {backend.info.family} "
               f"{backend.info.arch}, {w}x{h}) on "
               f"{dataset.root} split {dataset.split}: {len(dataset)} images", err=True)

    result = evaluate_detector(backend, dataset, progress=None)
    if result.num_images == 0:
        raise EdgefaceError(f"none of the {len(dataset)} images could be read", EXIT_FAILURE)

    out = out or Path("results") / f"eval-{source.stem}"
    summary = result.to_json()
    summary["model"].update(path=str(source), sha256=sha256_file(source), format=fmt,
                            providers=list(getattr(backend, "providers", []) or []))
    summary["dataset"] = {"root": str(dataset.root), "split": dataset.split,
                          "images_listed": len(dataset), "resized": dataset.resized}
    summary["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds")
    try:
        out.mkdir(parents=True, exist_ok=True)
        _clear_predictions(out / "predictions")
        write_predictions(result.predictions, out / "predictions")
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        plots = write_pr_plots(result.pr_curves, result.ap, out, source.name)
    except OSError as exc:
        raise EdgefaceError(f"cannot write results to {out}: {exc.strerror or exc}") from None

    click.echo(result.table())
    click.echo(result.settings_line())
    click.echo(f"{result.num_images} images, {result.num_predictions} detections, "
               f"{result.seconds:.1f} s")
    click.echo(f"wrote {out}/: predictions/ ({len(result.predictions)} files), summary.json, "
               f"{', '.join(p.name for p in plots)}")
    if result.skipped:
        raise EdgefaceError(
            f"{len(result.skipped)} of {len(dataset)} images could not be read (listed above); "
            f"the AP covers the {result.num_images} that were", EXIT_FAILURE)


def _clear_predictions(pred_dir: Path) -> None:
    """Remove an earlier run's ``<event>/<name>.txt`` files, so that a re-run on another split
    leaves no stale predictions behind for an external scorer to pick up."""
    if not pred_dir.is_dir():
        return
    for f in pred_dir.glob("*/*.txt"):
        f.unlink()
    for d in pred_dir.iterdir():
        if d.is_dir() and not any(d.iterdir()):
            shutil.rmtree(d)
