"""`edgeface detect`: faces in still images, one line per image; the JSON records are the
ones `edgeface run` writes (see docs/detect.md, "Detection records")."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from edgeface.cli.options import option, renamed
from edgeface.errors import EXIT_FAILURE, EdgefaceError
from edgeface.runtime.settings import DETECTION, JSON, DetectionSettings


def _with_detection(f: Any) -> Any:
    for opt in reversed(DETECTION):
        f = option(opt, required=opt.key == "model")(f)
    return f


@click.command("detect", **renamed({"--conf": "--confidence-threshold",
                                    "--nms": "--nms-threshold"}))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@_with_detection
@option(JSON, help="Write one JSON line per image here ('-' for stdout).")
@click.option("--annotate", "annotate_dir", type=click.Path(path_type=Path, file_okay=False),
              default=None, metavar="DIR",
              help="Write annotated copies of the images into this directory.")
def detect(inputs: tuple[Path, ...], json: Path | None, annotate_dir: Path | None,
           **values: Any) -> None:
    """Detect faces in IMAGE_OR_DIR... and print one line per image.

    A missing or unreadable file is reported and skipped; the exit status is then non-zero
    after all other images were processed.
    """
    import cv2

    settings = DetectionSettings.from_values(values)
    json_path = json
    model = Path(settings.model)

    from edgeface.common.files import refuse_overwriting_inputs
    from edgeface.frames import Frame, FrameResult
    from edgeface.inference.detector import Detector
    from edgeface.inference.draw import annotate
    from edgeface.media.images import ImageReadError, expand_inputs, read_image
    from edgeface.runtime.sinks import JsonLinesSink

    paths = list(expand_inputs(inputs))
    if not paths:
        raise EdgefaceError("no images found in the given inputs")
    annotated = annotation_names(paths, annotate_dir) if annotate_dir else {}
    refuse_overwriting_inputs(
        {"--json": json_path, **{f"--annotate ({p.name})": a for p, a in annotated.items()}},
        {"--model": model, **{str(p): p for p in paths}})
    detector = Detector.open(model, settings.postprocess(), provider=settings.provider,
                             threads=settings.threads, input_size=settings.size,
                             arena=settings.arena, family=settings.family)
    if annotate_dir:
        try:
            annotate_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EdgefaceError(f"cannot create {annotate_dir}: {exc.strerror or exc}") from None
    sink = JsonLinesSink(json_path, truncate=True) if json_path is not None else None
    failures = 0
    n = 0
    try:
        for path in paths:
            n += 1
            t0 = time.perf_counter()
            try:
                image = read_image(path)
            except ImageReadError as exc:
                click.echo(f"edgeface: error: {exc}", err=True)
                failures += 1
                continue
            dets, timing = detector.detect_timed(image)
            # Reading and decoding count as preprocessing: a slow decode is the image's cost.
            timing = replace(timing, preprocess=timing.preprocess + time.perf_counter() - t0
                             - timing.total)
            click.echo(f"{path}\t{len(dets)} faces\t{timing.total * 1000:.1f} ms")
            if sink is not None:
                sink.write(FrameResult(Frame(n - 1, time.time(), image, label=str(path)), dets,
                                       timing))
            if annotate_dir:
                out = annotated[path]
                if not cv2.imwrite(str(out), annotate(image, dets)):
                    click.echo(f"edgeface: error: cannot write {out}", err=True)
                    failures += 1
    finally:
        if sink is not None:
            sink.close()
    if failures:
        raise EdgefaceError(f"{failures} of {n} inputs failed", EXIT_FAILURE)


def annotation_names(paths: list[Path], folder: Path) -> dict[Path, Path]:
    """``folder/<stem>.jpg`` per input; stems shared by several inputs (``a/x.jpg``,
    ``b/x.png``) get ``-2``, ``-3``... in input order, so no copy overwrites another."""
    used: set[str] = set()
    names = {}
    for p in paths:
        name, k = f"{p.stem}.jpg", 1
        while name.lower() in used:
            k += 1
            name = f"{p.stem}-{k}.jpg"
        used.add(name.lower())
        names[p] = folder / name
    return names
