#!/usr/bin/env python
"""The pipeline-overhead ratio before and after a change, interleaved in one run (issue 11:
"pipeline_overhead.py within 2 points"): ``benchmarks/pipeline_overhead.py`` of another
checkout (``--before``, e.g. a ``git worktree`` of the commit before the change) and of
this one run alternately, ``--pairs`` times each, on the same exported model; the figure is
each side's median of its runs' ratios, and the difference in points. Alternating whole
runs keeps a noisy neighbour from favouring one side: a busy minute hits both.

    git worktree add /tmp/before 8ce0136 && (cd /tmp/before && pip install --target
        /tmp/before-site --no-deps .)
    python benchmarks/before_after.py --before /tmp/before --before-path /tmp/before-site
    # -> benchmarks/results/pipeline_overhead_before_after.json + .md

``--before-path``: a folder with the before checkout's package installed (its PYTHONPATH),
as its ``edgeface`` package must not be this checkout's. Arguments after ``--`` go to both
scripts (e.g. ``-- --rounds 3``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _shared import REPO, export_v1

DEFAULT_OUT = REPO / "benchmarks" / "results" / "pipeline_overhead_before_after.json"


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="the other checkout")
    ap.add_argument("--before-path", type=Path, default=None,
                    help="PYTHONPATH for the other checkout (its installed package)")
    ap.add_argument("--pairs", type=int, default=4, help="runs of each side")
    ap.add_argument("--model", type=Path, default=None,
                    help="ONNX model [default: export V1 from the shared weights]")
    ap.add_argument("-o", "--output", dest="out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("extra", nargs="*", help="arguments for pipeline_overhead.py (after --)")
    return ap.parse_args(argv)


def run_side(checkout: Path, path: Path | None, model: Path, extra: list[str],
             tmp: Path, tag: str) -> dict[str, dict[str, float]]:
    """One pipeline_overhead.py run of ``checkout``: {video: {ratio, e2e_fps, model_fps}}."""
    out = tmp / f"{tag}.json"
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = str(path)
    subprocess.run([sys.executable, str(checkout / "benchmarks" / "pipeline_overhead.py"),
                    "--model", str(model), "--out", str(out), *extra],
                   cwd=checkout, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    report = json.loads(out.read_text())
    return {r["video"]: {"ratio": r["ratio_median"], "e2e_fps": r["e2e_fps_median"],
                         "model_fps": r["model_fps_median"]} for r in report["results"]}


def main(argv=None) -> int:
    args = parse_args(argv)
    load0 = [round(x, 2) for x in os.getloadavg()]
    tmp = Path(tempfile.mkdtemp(prefix="edgeface-before-after-"))
    model = args.model or export_v1(tmp / "featherface_v1.onnx")
    sides = {"before": (args.before.resolve(), args.before_path), "after": (REPO, None)}
    runs: dict[str, list[dict[str, dict[str, float]]]] = {"before": [], "after": []}
    for i in range(args.pairs):
        order = ("before", "after") if i % 2 == 0 else ("after", "before")
        for side in order:
            checkout, path = sides[side]
            runs[side].append(run_side(checkout, path, model, args.extra, tmp, f"{side}{i}"))
            print(f"pair {i + 1}/{args.pairs} {side}: {runs[side][-1]}", file=sys.stderr)
    videos = list(runs["after"][0])
    med = {side: {v: {k: round(statistics.median(r[v][k] for r in runs[side]), 4)
                      for k in ("ratio", "e2e_fps", "model_fps")} for v in videos}
           for side in runs}
    diff = {v: round((med["after"][v]["ratio"] - med["before"][v]["ratio"]) * 100, 2)
            for v in videos}
    report = {
        "kind": "edgeface-before-after", "schema_version": 1,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/before_after.py " + " ".join(argv or sys.argv[1:]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "loadavg_at_start": load0,
                    "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "before": str(args.before), "metric": "pipeline_overhead.py FPS ratio (median)",
        "runs": runs, "median": med, "after_minus_before_points": diff,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    md = [f"# Pipeline overhead before / after ({report['date']})", "",
          f"`{report['command'].strip()}` on {platform.machine()} with {os.cpu_count()} CPUs "
          f"(load average {load0[0]} at start, {report['machine']['loadavg_at_end'][0]} at "
          f"end). Before: `{args.before}`. Each side ran `pipeline_overhead.py` "
          f"{args.pairs} times, alternating; figures are medians of the runs' FPS ratios "
          f"(end-to-end / model-only).", "",
          "| video | ratio before | ratio after | after - before (points) | end-to-end FPS "
          "before / after | model-only FPS before / after | each run's ratio, before "
          "| each run's ratio, after |",
          "|---|---:|---:|---:|---:|---:|---|---|"]
    for v in videos:
        b, a = med["before"][v], med["after"][v]
        md.append(f"| {v} | {b['ratio']} | {a['ratio']} | {diff[v]:+.2f} | "
                  f"{b['e2e_fps']} / {a['e2e_fps']} | {b['model_fps']} / {a['model_fps']} | "
                  f"{', '.join(str(r[v]['ratio']) for r in runs['before'])} | "
                  f"{', '.join(str(r[v]['ratio']) for r in runs['after'])} |")
    args.out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
