#!/usr/bin/env python
"""The image API beside the camera (issue 15): `edgeface run --http` on a looping 1280x720
video while a client sends ``--rate`` POST /detect requests a second of real face images;
does the camera keep its FPS, what latency and refusals does the API give, and (``--mqtt``,
with a Mosquitto broker started on loopback) how much memory does it all take?

Phases, one device process (as benchmarks/http_load.py): ``--before`` s without clients,
``--duration`` s of API load, ``--after`` s without clients, then ``--rounds`` interleaved
pairs of a quiet and a loaded ``--window`` (the acceptance FPS ratio: the median of the
per-round ratios), then the load again for 5 s and SIGTERM while it runs. The load is one
client process (asyncio, loopback, at ``--client-nice``) that starts a request every
1/``--rate`` s on a fresh connection whatever the answers (open loop, at most 64 in
flight), each one image as the raw body, cycling through the shared WIDERFace native
images (1024 px wide JPEGs, 130-190 KB), and records every status and latency.

The device runs with ``--http-api-rate`` / ``--http-api-total-rate`` at ``--api-rate`` /
``--api-total-rate`` (default 1000: the rate limits out of the way, so the API is as busy
as the clients make it and the worker's queue is what refuses: the worst case for the
camera); pass the device's defaults (5 / 10) to see the 429s a real client gets.

    python benchmarks/api_load.py                 # -> benchmarks/results/api_load.json + .md
    python benchmarks/api_load.py --mqtt --rounds 0 -o benchmarks/results/api_load_mqtt.json

The API's inferences run on the camera's own session, between frames, within
``--http-api-share`` of the loop's time (``--share``; edgeface.runtime.lend): the report
gives the images and seconds lent during the load phase, from the device's /metrics.

Acceptance (printed): FPS under API load / without >= 0.9 (interleaved median), peak RSS
< 200 MB (with ``--mqtt``), exit 0 after SIGTERM under load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

from _shared import SHARED
from http_load import (
    WARMUP,
    LineCounter,
    cpu_seconds,
    free_port,
    interleaved,
    kept_notes,
    kill_left,
    load_report,
    prepare_inputs,
    proc_status,
    start_device,
    term_under_load,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "api_load.json"
IMAGES = SHARED / "datasets" / "widerface-val-native" / "images"
FPS_RATIO = 0.9
PEAK_RSS_MB = 200.0
MAX_IN_FLIGHT = 64


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None,
                    help="ONNX model [default: export V1 from the shared weights]")
    ap.add_argument("--size", default="1280x720", help="video resolution WxH")
    ap.add_argument("--before", type=float, default=15.0)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of API load")
    ap.add_argument("--after", type=float, default=15.0)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--window", type=float, default=8.0)
    ap.add_argument("--rate", type=float, default=20.0, help="requests per second sent")
    ap.add_argument("--api-rate", type=float, default=1000.0,
                    help="the device's --http-api-rate (per client)")
    ap.add_argument("--api-total-rate", type=float, default=1000.0,
                    help="the device's --http-api-total-rate")
    ap.add_argument("--share", type=float, default=None,
                    help="the device's --http-api-share [default: the device's default]")
    ap.add_argument("--mqtt", action="store_true",
                    help="also publish face events to a Mosquitto started on loopback")
    ap.add_argument("--client-nice", type=int, default=10)
    ap.add_argument("-o", "--output", "--out", dest="out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    ap.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


# -- the client (a child process) -----------------------------------------------------------
async def _one(port: int, body: bytes, st: Counter, lat: list) -> None:
    t0 = time.perf_counter()
    writer = None
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /detect HTTP/1.1\r\nHost: d\r\nContent-Type: image/jpeg\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
        code = int(head.split(b" ", 2)[1])
        await reader.read()
        st[str(code)] += 1
        if code == 200:
            lat.append(time.perf_counter() - t0)
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError,
            IndexError):
        st["errors"] += 1
    finally:
        if writer is not None:
            writer.close()


async def _load(args: argparse.Namespace) -> dict:
    bodies = [p.read_bytes() for p in sorted(IMAGES.rglob("*.jpg"))]
    st: Counter = Counter()
    lat: list[float] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks: set = set()
    i = 0
    while loop.time() - start < args.duration:
        tasks = {t for t in tasks if not t.done()}
        if len(tasks) < MAX_IN_FLIGHT:
            tasks.add(asyncio.ensure_future(_one(args.port, bodies[i % len(bodies)], st, lat)))
            st["sent"] += 1
        else:
            st["client_skipped"] += 1
        i += 1
        await asyncio.sleep(max(0.0, start + i / args.rate - loop.time()))
    if tasks:
        await asyncio.wait(tasks, timeout=20)
    lat.sort()
    out = dict(st)
    if lat:
        out["latency_ms"] = {"p50": round(lat[len(lat) // 2] * 1e3, 1),
                             "p95": round(lat[int(0.95 * (len(lat) - 1))] * 1e3, 1),
                             "max": round(lat[-1] * 1e3, 1), "n": len(lat)}
    return out


def client_main(args: argparse.Namespace) -> int:
    json.dump(asyncio.run(_load(args)), sys.stdout)
    return 0


def start_client(args: argparse.Namespace, port: int, duration: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, "--client", "--port", str(port), "--duration",
         str(duration), "--rate", str(args.rate)],
        stdout=subprocess.PIPE, text=True, preexec_fn=lambda: os.nice(args.client_nice))


def lent(port: int) -> dict[str, float]:
    """The device's ``edgeface_api_lent_*`` figures from /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("edgeface_api_lent_"):
            name, value = line.split()[:2]
            out[name[len("edgeface_api_lent_"):].removesuffix("_total")] = float(value)
    return out


# -- a broker ---------------------------------------------------------------------------------
def start_mosquitto(tmp: Path) -> tuple[subprocess.Popen, int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(binary):
        raise SystemExit("--mqtt needs Mosquitto (Debian: apt-get install mosquitto)")
    port = free_port()
    conf = tmp / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false",
             "log_dest stderr", "log_type error"]
    if os.geteuid() == 0:
        lines.append("user root")
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("mosquitto did not start")


# -- the measurement ----------------------------------------------------------------------
def measure(cmd: list[str], port: int, out_jsonl: Path, args: argparse.Namespace,
            tmp: Path) -> dict:
    err_path = tmp / "device.stderr"
    proc = start_device(cmd, port, err_path)
    client = None
    start = lambda duration: start_client(args, port, duration)  # noqa: E731
    try:
        counter = LineCounter(out_jsonl)
        samples = []  # (t, phase, lines, rss_kb, threads)
        fps, cpu, client_stats, lent_load = {}, {}, {}, {}
        t0 = time.monotonic()
        for phase, length in (("before", args.before), ("load", args.duration),
                              ("after", args.after)):
            if phase == "load":
                client = start(length)
                time.sleep(WARMUP)
            n0, c0, w0 = counter.poll(), cpu_seconds(proc.pid)["process"], time.monotonic()
            end = w0 + length - (WARMUP if phase == "load" else 0)
            while time.monotonic() < end:
                st = proc_status(proc.pid)
                samples.append((round(time.monotonic() - t0, 2), phase, counter.poll(),
                                st["VmRSS"], st["Threads"]))
                time.sleep(0.5)
            n1, c1, w1 = counter.poll(), cpu_seconds(proc.pid)["process"], time.monotonic()
            fps[phase] = round((n1 - n0) / (w1 - w0), 2)
            cpu[phase] = round((c1 - c0) / max(n1 - n0, 1) * 1e3, 2)
            if phase == "load":
                out, _ = client.communicate(timeout=90)
                client_stats = json.loads(out or "{}")
                client = None
                lent_load = lent(port)
                lent_load["of_wall"] = round(lent_load.get("seconds", 0) / (w1 - w0), 3)
        rounds = interleaved(proc.pid, port, counter, args, start)
        rc, _, hwm_kb = term_under_load(proc, start)
    finally:
        kill_left(proc, client)
    text = err_path.read_text()
    quiet = statistics.mean([fps["before"], fps["after"]])
    ratios = sorted(r["fps_ratio"] for r in rounds)
    return {
        "fps": fps, "fps_without_clients": round(quiet, 2),
        "fps_ratio": round(fps["load"] / quiet, 3) if quiet else None,
        "fps_ratio_interleaved": round(statistics.median(ratios), 3) if ratios else None,
        "cpu_ms_per_frame": cpu, "interleaved": rounds,
        "peak_rss_mb": round(hwm_kb / 1024, 1),
        "rss_before_load_mb": round(max(s[3] for s in samples if s[1] == "before") / 1024, 1),
        "peak_rss_under_load_mb": round(max(s[3] for s in samples if s[1] == "load") / 1024, 1),
        "threads_max": max(s[4] for s in samples),
        "client": client_stats, "lent_during_load": lent_load, "exit_code": rc,
        "tracebacks": text.count("Traceback"),
        "device_summary": next((line for line in text.splitlines() if "done:" in line), ""),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.client:
        return client_main(args)
    if not any(IMAGES.rglob("*.jpg")):
        raise SystemExit(f"no face images under {IMAGES} (set EDGEFACE_SHARED)")
    load0 = [round(x, 2) for x in os.getloadavg()]
    tmp = Path(tempfile.mkdtemp(prefix="edgeface-api-load-"))
    model, video = prepare_inputs(args, tmp)
    port = free_port()
    out_jsonl = tmp / "out.jsonl"
    cmd = [sys.executable, "-m", "edgeface.cli", "run", "-m", str(model), "--source",
           str(video), "--loop", "--json", str(out_jsonl), "--http", f"127.0.0.1:{port}",
           "--http-api-rate", str(args.api_rate), "--http-api-total-rate",
           str(args.api_total_rate), "--status-interval", "0"]
    if args.share is not None:
        cmd += ["--http-api-share", str(args.share)]
    broker = None
    if args.mqtt:
        broker, mqtt_port = start_mosquitto(tmp)
        cmd += ["--mqtt", f"mqtt://127.0.0.1:{mqtt_port}"]
    try:
        r = measure(cmd, port, out_jsonl, args, tmp)
    finally:
        if broker is not None:
            broker.terminate()
            broker.wait(10)
    ratio = r["fps_ratio_interleaved"] or r["fps_ratio"] or 0
    ok = {"fps_ratio": ratio >= FPS_RATIO, "exit_0": r["exit_code"] == 0
          and r["tracebacks"] == 0}
    if args.mqtt:
        ok["peak_rss"] = r["peak_rss_mb"] < PEAK_RSS_MB
    load_report("edgeface-api-load", "api_load.py", argv, cmd, tmp, load0, args,
                ("size", "before", "duration", "after", "rounds", "window", "rate", "api_rate",
                 "api_total_rate", "share", "mqtt", "client_nice"),
                {"fps_ratio": FPS_RATIO, "peak_rss_mb": PEAK_RSS_MB}, ok, r, args.out)
    print(write_md(args.out))
    print(f"wrote {args.out}")
    return 0 if all(ok.values()) or not args.strict else 1


def write_md(result: Path) -> str:
    """Render ``result`` (.json) to its .md, keeping the hand-written notes there."""
    md = render_md(json.loads(result.read_text()))
    result.with_suffix(".md").write_text(md + kept_notes(result.with_suffix(".md")))
    return md


def render_md(report: dict) -> str:
    r, ok, ld, c = report["result"], report["passed"], report["load"], report["result"]["client"]
    mark = {True: "yes", False: "**NO**"}
    lat = c.get("latency_ms", {})
    rounds = r["interleaved"]
    spread = (f" ({min(x['fps_ratio'] for x in rounds)}-{max(x['fps_ratio'] for x in rounds)})"
              if rounds else "")
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(c.items())
                         if k.isdigit() or k in ("errors", "sent", "client_skipped"))
    lent_ = r.get("lent_during_load", {})
    rows = [
        f"# Image API beside the camera: `edgeface run --http` + POST /detect "
        f"({report['date']})", "",
        f"`{report['command'].strip()}` on {report['machine']['processor']} with "
        f"{report['machine']['cpus']} CPUs (load average "
        f"{report['machine']['loadavg_at_start'][0]} at start, "
        f"{report['machine']['loadavg_at_end'][0]} at end; a shared machine). Device: "
        f"`{report['device_command']}` (V1 FP32, looping {ld['size']} video"
        f"{', MQTT to a local Mosquitto' if ld['mqtt'] else ''}). Load: {ld['rate']:g} "
        f"POST /detect a second (one WIDERFace image each, open loop, fresh connections, "
        f"client at nice {ld['client_nice']}) for {ld['duration']:g} s, then "
        f"{ld['rounds']} interleaved rounds of {ld['window']:g} s quiet/loaded windows.", "",
        "| figure | value | target | met |", "|---|---|---|---|",
        f"| FPS without API load (before / after) | {r['fps']['before']} / "
        f"{r['fps']['after']} | | |",
        f"| FPS under API load ({ld['duration']:g} s phase) | {r['fps']['load']} | | |",
        f"| FPS under load / without, {ld['duration']:g} s phase vs quiet phases | "
        f"{r['fps_ratio']} | | |",
        (f"| FPS under load / without, interleaved (median of {len(rounds)} rounds; "
         f"min-max) | {r['fps_ratio_interleaved']}{spread} | >= {FPS_RATIO} | "
         f"{mark[ok['fps_ratio']]} |" if rounds else
         f"| FPS ratio for the target (no interleaved rounds: the load phase's) | "
         f"{r['fps_ratio']} | >= {FPS_RATIO} | {mark[ok['fps_ratio']]} |"),
        f"| device CPU per frame, before / load / after | {r['cpu_ms_per_frame']['before']} / "
        f"{r['cpu_ms_per_frame']['load']} / {r['cpu_ms_per_frame']['after']} ms | | |",
        f"| API answers in the {ld['duration']:g} s phase | {statuses} | | |",
        f"| API latency of the 200s, p50 / p95 / max (n) | {lat.get('p50')} / "
        f"{lat.get('p95')} / {lat.get('max')} ms ({lat.get('n', 0)}) | | |",
        f"| peak RSS (VmHWM, whole run) | {r['peak_rss_mb']} MB | "
        f"{f'< {PEAK_RSS_MB:g} MB' if ld['mqtt'] else ''} | "
        f"{mark[ok['peak_rss']] if 'peak_rss' in ok else ''} |",
        f"| RSS before load / peak under load | {r['rss_before_load_mb']} / "
        f"{r['peak_rss_under_load_mb']} MB | | |",
        f"| lent to the API until the end of the load phase: images / seconds / of the "
        f"phase's wall time | {lent_.get('images', 0):g} / {lent_.get('seconds', 0):g} s / "
        f"{lent_.get('of_wall', 0)} (share {lent_.get('share', '?')}) | | |",
        f"| threads (max) | {r['threads_max']} | | |",
        f"| exit code after SIGTERM under load | {r['exit_code']}, {r['tracebacks']} "
        f"tracebacks | 0 | {mark[ok['exit_0']]} |", "",
        f"Device summary: `{r['device_summary'].strip()}`", "",
        "FPS = JSON lines appended per second. 503 = the worker's queue was full, or a "
        "request was not started (decoded at SCHED_IDLE, inferred by the camera loop within "
        "its share) within its queue timeout; 429 = over a rate limit.", ""]
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
