"""`edgeface detect`: faces in still images, one line per image."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edgeface.errors import EXIT_FAILURE, EdgefaceError


@click.command("detect")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-m", "--model", required=True, type=click.Path(path_type=Path),
              help="ONNX model from `edgeface export` or `edgeface quantize`.")
@click.option("--conf", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Minimum face probability.")
@click.option("--nms", default=0.4, show_default=True, type=click.FloatRange(0, 1),
              help="NMS IoU threshold.")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="Inference threads [default: the cores available].")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="Write one JSON line per image here ('-' for stdout).")
@click.option("--annotate", "annotate_dir", type=click.Path(path_type=Path), default=None,
              help="Write annotated copies of the images into this directory.")
def detect(inputs: tuple[Path, ...], model: Path, conf: float, nms: float, threads: int | None,
           json_path: Path | None, annotate_dir: Path | None) -> None:
    """Detect faces in IMAGE_OR_DIR... and print one line per image.

    A missing or unreadable file is reported and skipped; the exit status is then non-zero
    after all other images were processed.
    """
    import cv2

    from edgeface.inference.detector import Detector
    from edgeface.inference.postprocess import PostprocessConfig
    from edgeface.media.draw import annotate
    from edgeface.media.images import ImageReadError, expand_inputs, read_image

    detector = Detector.open(model, PostprocessConfig(conf_threshold=conf,
                                                           nms_threshold=nms), threads=threads)
    if annotate_dir:
        annotate_dir.mkdir(parents=True, exist_ok=True)
    sink = None
    if json_path is not None:
        sink = sys.stdout if str(json_path) == "-" else open(json_path, "w", encoding="utf-8")
    failures = 0
    n = 0
    try:
        for path in expand_inputs(inputs):
            n += 1
            try:
                image = read_image(path)
            except ImageReadError as exc:
                click.echo(f"edgeface: error: {exc}", err=True)
                failures += 1
                continue
            dets, timing = detector.detect_timed(image)
            click.echo(f"{path}\t{len(dets)} faces\t{timing.total * 1000:.1f} ms")
            if sink is not None:
                record = {"image": str(path), "width": image.shape[1], "height": image.shape[0],
                          "latency_ms": round(timing.total * 1000, 3), "faces": dets.to_list()}
                sink.write(json.dumps(record) + "\n")
            if annotate_dir:
                out = annotate_dir / (path.stem + ".jpg")
                if not cv2.imwrite(str(out), annotate(image, dets)):
                    click.echo(f"edgeface: error: cannot write {out}", err=True)
                    failures += 1
    finally:
        if sink is not None and sink is not sys.stdout:
            sink.close()
    if n == 0:
        raise EdgefaceError("no images found in the given inputs")
    if failures:
        raise EdgefaceError(f"{failures} of {n} inputs failed", EXIT_FAILURE)
