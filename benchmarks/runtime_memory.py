#!/usr/bin/env python
"""Runtime memory (issue 5): peak RSS of `edgeface run` on a video, V1 FP32 and INT8, with the
ONNX Runtime CPU memory arena off and on.

Each configuration is a fresh `edgeface run` process (exactly what the device runs: looping
video source decoded in the capture thread, JSON lines to a file, the HTTP server up with
no client, the default 512M limit) for ``--duration`` seconds. Peak RSS is the kernel's
high-water mark of that process (VmHWM: its own report at exit, and /proc samples); RSS is
sampled from /proc every 0.25 s to report the steady level and any growth (second half vs
first half after warm-up). Runs of
different configurations are interleaved, ``--repeats`` times; medians are reported.

    python benchmarks/runtime_memory.py          # -> benchmarks/results/runtime_memory.json

    python benchmarks/runtime_memory.py --arena on --with-video \
        --out benchmarks/results/runtime_memory_video.json     # with the annotated video
    python benchmarks/runtime_memory.py --arena on --duration 600 --before-path DIR \
        --out benchmarks/results/runtime_memory_soak_before_after.json  # 10 minutes: growth
    git clone . ../fresh && cd ../fresh && make setup && .venv/bin/python \
        benchmarks/runtime_memory.py --arena on \
        --out benchmarks/results/runtime_memory_fresh_install.json   # libraries just written
    ... --arena on --cold-libraries \
        --out benchmarks/results/runtime_memory_fresh_install_cold.json  # as after a reboot

    git worktree add /tmp/before 8ce0136 && pip install --no-deps --target /tmp/before-site \
        /tmp/before
    python benchmarks/runtime_memory.py --arena on --repeats 3 --before-path /tmp/before-site \
        --out benchmarks/results/runtime_memory_before_after.json   # "not worse", interleaved

``--before-path``: another install's ``edgeface`` (its PYTHONPATH), run on the same video and
models alternately with this checkout's, run by run, so that a noisy neighbour or a warm page
cache favours neither side; the report adds each figure's difference (now - before).

Acceptance (printed): peak RSS < 200 MB for FP32 and INT8. The arena comparison (peak and
steady RSS, p50 latency, FPS) is what the runtime's ``arena`` default is chosen from.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _shared import REPO, WIDERFACE_416, export_v1, make_video

DEFAULT_OUT = REPO / "benchmarks" / "results" / "runtime_memory.json"
LIMIT_MB = 200.0
_DONE = re.compile(r"done: (\d+) frames in ([\d.]+) s \(([\d.]+) fps\), (\d+) faces, latency "
                   r"p50 ([\d.]+) ms p95 ([\d.]+) ms, .* peak rss ([\d.]+) MB")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fp32", type=Path, default=None,
                    help="FP32 ONNX [default: export V1 from the shared weights]")
    ap.add_argument("--int8", type=Path, default=None,
                    help="INT8 ONNX [default: `edgeface quantize` the FP32 model]")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per run")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--size", default="1280x720", help="video resolution WxH")
    ap.add_argument("--arena", default="off,on", help="arena settings to compare")
    ap.add_argument("--models", default="fp32,int8", help="which models to run")
    ap.add_argument("--cold-libraries", action="store_true",
                    help="before each run, drop this environment's shared libraries from the "
                         "page cache (as after a reboot, when a service starts)")
    ap.add_argument("--with-video", action="store_true",
                    help="also write the annotated video (--video, deleted after each run)")
    ap.add_argument("--before-path", type=Path, default=None,
                    help="PYTHONPATH of another edgeface install to measure alternately "
                         "with this one (e.g. the previous release)")
    ap.add_argument("-o", "--output", "--out", dest="out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--strict", action="store_true", help="exit 1 if a peak is >= 200 MB")
    return ap.parse_args(argv)


def quantize(fp32: Path, out: Path) -> tuple[Path | None, str]:
    """INT8 through the project's own command (static QDQ, calibrated on the calib split;
    the accuracy guard is skipped: this measures memory, not AP). If the default calibration
    method fails, min-max calibration is tried (same graph, same memory footprint)."""
    base = [sys.executable, "-m", "edgeface.cli", "quantize", "--int8", "-m", str(fp32),
            "--dataset", str(WIDERFACE_416), "--no-eval", "--bench-runs", "0", "-o", str(out),
            "--force"]
    for extra in ([], ["--method", "minmax"]):
        r = subprocess.run(base + extra, capture_output=True, text=True, cwd=REPO)
        shown = "edgeface " + " ".join(base[3:] + extra)
        if r.returncode == 0 and out.exists():
            return out, shown
        print(f"INT8: `{shown}` failed: {r.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
    return None, ""


def evict_libraries() -> int:
    """Drop the shared libraries of this Python environment from the page cache, so that the
    next process reads them from disk, as a service started at boot does. How many pages of
    them a process maps (its file-backed RSS) depends on how they entered the cache: files
    pip has just written read ~50 MB higher on this machine than files read from disk."""
    import glob
    import sysconfig

    n = 0
    for root in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        for f in glob.glob(os.path.join(root, "**", "*.so*"), recursive=True):
            try:
                fd = os.open(f, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                n += 1
            finally:
                os.close(fd)
    return n


def run_once(model: Path, video: Path, arena: bool, duration: float, tmp: Path,
             with_video: bool = False, pythonpath: Path | None = None) -> dict:
    cmd = [sys.executable, "-m", "edgeface.cli", "run", "-m", str(model), "--source", str(video),
           "--loop", "--duration", str(duration), "--json", str(tmp / "out.jsonl"),
           "--http", "127.0.0.1:0", "--status-interval", "0",
           "--arena" if arena else "--no-arena"]
    if with_video:
        cmd += ["--video", str(tmp / "annotated.mp4")]
    err_path = tmp / "stderr.txt"
    with open(err_path, "w") as err:
        env = dict(os.environ)
        if pythonpath is not None:
            env["PYTHONPATH"] = str(pythonpath)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=REPO, env=env)
        samples = []  # (t, RSS, anonymous RSS, file-backed RSS) in MB
        hwm = 0.0
        t0 = time.monotonic()
        while True:
            try:
                with open(f"/proc/{proc.pid}/status") as f:
                    kb = {k: int(v.split()[0]) for k, v in
                          (line.split(":", 1) for line in f if ":" in line)
                          if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile")}
                hwm = max(hwm, kb["VmHWM"] / 1024)
                samples.append((time.monotonic() - t0, kb["VmRSS"] / 1024,
                                kb["RssAnon"] / 1024, kb["RssFile"] / 1024))
            except (FileNotFoundError, ProcessLookupError, ValueError, KeyError):
                pass
            if proc.poll() is not None:
                break
            time.sleep(0.25)
    (tmp / "out.jsonl").unlink(missing_ok=True)
    (tmp / "annotated.mp4").unlink(missing_ok=True)
    text = err_path.read_text()
    rc = proc.returncode
    m = _DONE.search(text)
    if rc != 0 or not m:
        raise SystemExit(f"`{' '.join(cmd)}` failed (exit {rc}):\n{text[-2000:]}")
    # Steady state: skip the first 10 % (imports, session creation, first frames).
    after = [x for x in samples if x[0] > 0.1 * duration]
    steady, anon = [x[1] for x in after], [x[2] for x in after]
    half = len(steady) // 2
    return {
        # VmHWM of the process (its own report at exit, and our samples): ru_maxrss would
        # count the parent's pages the child shared between fork and exec.
        "peak_rss_mb": round(max(float(m.group(7)), hwm), 1),
        "steady_rss_mb": round(statistics.median(steady), 1) if steady else None,
        "growth_mb": round(statistics.median(steady[half:]) - statistics.median(steady[:half]),
                           2) if half else None,
        # RSS = anonymous (the process's own allocations) + file-backed (mapped shared
        # libraries). The file-backed part depends on the page cache, not on edgeface: with
        # the libraries just written by pip, this machine (Linux 6.18, ext4) maps them in
        # large folios and it reads ~40 MB more than later (same anonymous memory).
        "peak_anon_mb": round(max(x[2] for x in samples), 1) if samples else None,
        "steady_file_mb": round(statistics.median(x[3] for x in after), 1) if after else None,
        "anon_growth_mb": round(statistics.median(anon[half:]) - statistics.median(anon[:half]),
                                2) if half else None,
        # A leak is a slope, not a difference of halves (which a late high-water mark or a
        # trimmed heap can move): least squares over the steady part, in MB per hour.
        "anon_slope_mb_per_h": _slope_per_hour([x[0] for x in after], anon),
        "anon_series": [(round(x[0], 1), round(x[2], 2)) for x in after[::40]],
        "frames": int(m.group(1)), "wall_s": float(m.group(2)), "fps": float(m.group(3)),
        "p50_ms": float(m.group(5)), "p95_ms": float(m.group(6)),
    }


BEFORE = " (before)"


def _key(name: str, arena: bool, side: str) -> str:
    return f"{name}/arena-{'on' if arena else 'off'}{side}"


def _swap_sides(configs: list) -> list:
    """The same runs with the two sides of each pair in the other order (odd repeats), so
    that neither side always runs second, on a page cache the other warmed."""
    out = list(configs)
    for i in range(0, len(out) - 1, 2):
        if out[i][:2] == out[i + 1][:2]:
            out[i], out[i + 1] = out[i + 1], out[i]
    return out


def _slope_per_hour(t: list[float], y: list[float]) -> float | None:
    if len(t) < 10:
        return None
    tm, ym = statistics.fmean(t), statistics.fmean(y)
    den = sum((a - tm) ** 2 for a in t)
    return round(sum((a - tm) * (b - ym) for a, b in zip(t, y)) / den * 3600, 2) if den else None


def main(argv=None) -> int:
    args = parse_args(argv)
    load0 = [round(x, 2) for x in os.getloadavg()]
    tmp = Path(tempfile.mkdtemp(prefix="edgeface-memory-"))
    fp32 = args.fp32
    if fp32 is None:
        fp32 = export_v1(tmp / "featherface_v1.onnx")
    wanted = {m.strip() for m in args.models.split(",")}
    int8, int8_cmd = (args.int8, "given") if args.int8 or "int8" not in wanted else \
        quantize(fp32, tmp / "featherface_v1_int8.onnx")
    models = {k: v for k, v in (("fp32", fp32), ("int8", int8)) if v and k in wanted}
    w, h = map(int, args.size.lower().split("x"))
    video = make_video(tmp / f"clip_{w}x{h}.mp4", (w, h))
    arenas = [a.strip() == "on" for a in args.arena.split(",")]
    sides = [("", None)] + ([(BEFORE, args.before_path)] if args.before_path else [])
    configs = [(name, arena, side) for name in models for arena in arenas for side in sides]
    runs: dict[str, list[dict]] = {_key(n, a, s[0]): [] for n, a, s in configs}
    for rep in range(args.repeats):
        for name, arena, (side, path) in configs if rep % 2 == 0 else _swap_sides(configs):
            key = _key(name, arena, side)
            if args.cold_libraries:
                evict_libraries()
            r = run_once(models[name], video, arena, args.duration, tmp, args.with_video, path)
            runs[key].append(r)
            print(f"[{rep + 1}/{args.repeats}] {key}: peak {r['peak_rss_mb']} MB, steady "
                  f"{r['steady_rss_mb']} MB, growth {r['growth_mb']} MB, {r['fps']} fps, "
                  f"p50 {r['p50_ms']} ms", file=sys.stderr)
    summary = {}
    for key, rs in runs.items():
        summary[key] = {k: round(statistics.median(r[k] for r in rs), 2)
                        for k in ("peak_rss_mb", "steady_rss_mb", "growth_mb", "peak_anon_mb",
                                  "steady_file_mb", "anon_growth_mb", "fps", "p50_ms", "p95_ms")}
        slopes = [r["anon_slope_mb_per_h"] for r in rs if r["anon_slope_mb_per_h"] is not None]
        summary[key]["anon_slope_mb_per_h"] = statistics.median(slopes) if slopes else None
        summary[key]["peak_rss_max_mb"] = max(r["peak_rss_mb"] for r in rs)
        summary[key]["under_limit"] = summary[key]["peak_rss_max_mb"] < LIMIT_MB
    compare = {key: {k: round(summary[key][k] - summary[key + BEFORE][k], 2)
                     for k in ("peak_rss_mb", "steady_rss_mb", "peak_anon_mb", "steady_file_mb")}
               for key in summary if not key.endswith(BEFORE) and key + BEFORE in summary}
    report = {
        "kind": "edgeface-runtime-memory", "schema_version": 1,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/runtime_memory.py " + " ".join(argv or sys.argv[1:]),
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "cpus": os.cpu_count(), "loadavg_at_start": load0,
                    "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "video": {"size": f"{w}x{h}", "frames": 150, "loop": True},
        "sinks": ["json", "http"] + (["video"] if args.with_video else []),
        "cold_libraries": args.cold_libraries,
        "duration_s": args.duration, "repeats": args.repeats, "limit_mb": LIMIT_MB,
        "models": {k: Path(v).name for k, v in models.items()}, "int8_made_with": int8_cmd,
        "before_path": str(args.before_path) if args.before_path else None,
        "summary": summary, "now_minus_before": compare, "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    md = [f"# Runtime memory: `edgeface run` peak RSS ({report['date']})", "",
          f"`{report['command'].strip()}` on {platform.machine()} with {os.cpu_count()} CPUs: "
          f"a looping {w}x{h} mp4v video, JSON lines to a file, HTTP server up, "
          + ("annotated mp4v video written, " if args.with_video else "")
          + ("libraries dropped from the page cache before each run, " if args.cold_libraries
             else "") +
          f"{args.duration:g} s per run, medians of {args.repeats} run(s); models "
          + ", ".join(f"{k}: {Path(v).name}" for k, v in models.items()) + ".", "",
          "| model / ONNX Runtime arena | peak RSS MB | steady RSS MB | growth MB | peak anon MB "
          "| file-backed MB | anon growth MB | anon slope MB/h | FPS | p50 ms | p95 ms |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, s in summary.items():
        over = "" if s["under_limit"] else f" (worst run {s['peak_rss_max_mb']}: over {LIMIT_MB:g})"
        md.append(f"| {key} | {s['peak_rss_mb']}{over} | "
                  f"{s['steady_rss_mb']} | {s['growth_mb']} | {s['peak_anon_mb']} | "
                  f"{s['steady_file_mb']} | {s['anon_growth_mb']} | {s['anon_slope_mb_per_h']} | "
                  f"{s['fps']} | "
                  f"{s['p50_ms']} | {s['p95_ms']} |")
    if compare:
        md += ["", f"Now minus before (`{args.before_path}`), medians of runs taken "
               "alternately (MB; negative: less now):", "",
               "| model / arena | peak RSS | steady RSS | peak anon | file-backed |",
               "|---|---|---|---|---|"]
        md += [f"| {key} | {c['peak_rss_mb']:+.1f} | {c['steady_rss_mb']:+.1f} | "
               f"{c['peak_anon_mb']:+.1f} | {c['steady_file_mb']:+.1f} |"
               for key, c in compare.items()]
    md += ["", f"Limit: peak < {LIMIT_MB:g} MB. Peak = VmHWM of the process; steady = "
           "median of /proc samples after the first 10 %; growth = second half minus first "
           "half. Anonymous RSS is the process's own memory; file-backed RSS (mapped shared "
           "libraries) depends on the page cache: it read ~40 MB higher right after a fresh "
           "install on this machine (Linux 6.18, ext4, libraries mapped in large folios). FPS "
           "and latency are indicative only (load average "
           f"{load0[0]} at start, {os.getloadavg()[0]:.2f} at end)."]
    print("\n".join(md))
    args.out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print(f"\nwrote {args.out}")
    ok = all(s["under_limit"] for s in summary.values())
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
