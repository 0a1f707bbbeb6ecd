#!/usr/bin/env python
"""Which HTTP server for the device (issue 12): the stdlib asyncio server edgeface ships, a
hardened stdlib ``ThreadingHTTPServer`` and aiohttp, each measured the same way.

* **asyncio** - ``edgeface.http.server.StatusServer``: one event-loop thread, one
  JPEG worker thread, deadlines on every connection, 512 connections, 503 past it.
* **threaded** - ``ThreadingHTTPServer`` hardened as the stdlib allows (below): a thread per
  connection but at most 32 (503 past it, right after accept), a 10 s socket timeout on every
  read and write (slowloris, stalled viewers), the same JPEG memo and rate cap (one encode
  per frame, at most 15/s, under a lock that no waiting thread holds a frame behind).
* **aiohttp** (``--aiohttp-path DIR``: ``pip install --target DIR aiohttp``, a throwaway
  folder outside the repository; never a dependency) - ``aiohttp.web`` on its own loop
  thread, the same :class:`FrameEncoder`, ``keepalive_timeout=30`` and a 10 s timeout on each
  stream write; aiohttp has neither a request-head timeout nor a connection cap.
* **asyncio-nobudget** - the same without its request (500/s) and snapshot (120/s) budgets.
* **original** (``--original REV``) - the server as it was before issue 12, from git.

Per server: RSS after import (fresh interpreter; bare, and on top of numpy + cv2 + ONNX
Runtime as in the device); 200 idle sockets against a server-only process (RSS per idle
connection, threads, /healthz answers and latency meanwhile); and the load of
``http_load.py`` (same clients, shorter phases) against `edgeface run` with that server
swapped in: peak RSS, FPS under load / without clients, /healthz failures, threads, exit.

    python benchmarks/http_servers.py --aiohttp-path /tmp/aiohttp-lib --original ed1ddba
        # -> benchmarks/results/http_servers.json + .md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import http_load

from edgeface.http.limits import HttpLimits
from edgeface.http.server import StatusServer as AsyncioStatusServer

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "http_servers.json"
BOUNDARY = "edgefaceframe"


# -- the hardened threaded server ----------------------------------------------------------
class ThreadedStatusServer:
    """``ThreadingHTTPServer`` with a bounded thread count and socket timeouts."""

    def __init__(self, latest, metrics, host="127.0.0.1", port=8080, *, max_threads=32,
                 timeout=10.0, max_streams=8, stream_max_fps=15.0, jpeg_max_fps=15.0,
                 stale_after=10.0):
        self.latest, self.metrics, self.stale_after = latest, metrics, stale_after
        self.health = AsyncioStatusServer.health.__get__(self)  # the same /healthz logic
        self.slots = threading.BoundedSemaphore(max_threads)
        self.streams = threading.BoundedSemaphore(max_streams)
        self.stream_interval = 1 / stream_max_fps if stream_max_fps else 0.0
        self.min_interval = 1 / jpeg_max_fps if jpeg_max_fps else 0.0
        self.stopping = threading.Event()
        self._jpeg_lock = threading.Lock()
        self._memo = (-1, b"", 0.0)
        handler = type("Handler", (_ThreadedHandler,), {"app": self, "timeout": timeout})
        self.httpd = _BoundedServer((host, port), handler)
        self.httpd.app = self
        self.host, self.port = self.httpd.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = None

    def jpeg(self):
        with self._jpeg_lock:  # one encode at a time; the waiters then share it
            seq, result = self.latest.latest()
            if result is None:
                return None
            s, jpg, t = self._memo
            if s != seq and time.monotonic() - t >= self.min_interval:
                before = self.latest.encodes
                jpg = self.latest.jpeg(seq, result)
                self.metrics.http.jpeg_encodes_total += self.latest.encodes - before
                self._memo = (seq, jpg, time.monotonic())
            return self._memo[0], self._memo[1]

    def start(self):
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={
            "poll_interval": 0.2}, name="http", daemon=True)
        self._thread.start()
        return self

    def close(self):
        self.stopping.set()
        self.latest.close()
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(5)
        self.httpd.server_close()


class _BoundedServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    app: ThreadedStatusServer

    def process_request(self, request, client_address):
        if not self.app.slots.acquire(blocking=False):
            self.app.metrics.http.refused_total += 1
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                b"Connection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.app.slots.release()

    def handle_error(self, request, client_address):
        pass  # timeouts and resets are the point of this benchmark


class _ThreadedHandler(BaseHTTPRequestHandler):
    app: ThreadedStatusServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, code, body, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):  # noqa: N802 - http.server's naming
        self.do_GET()

    def do_GET(self):  # noqa: N802
        app, path = self.app, self.path.split("?", 1)[0]
        try:
            if path == "/healthz":
                code, body = app.health()
                self._send(code, json.dumps(body).encode(), "application/json")
            elif path == "/metrics":
                self._send(200, app.metrics.prometheus().encode(), "text/plain")
            elif path == "/detections":
                self._send(200, app.latest.detections_json(), "application/json")
            elif path == "/snapshot.jpg":
                got = app.jpeg()
                self._send(200 if got else 503, got[1] if got else b"", "image/jpeg")
            elif path == "/stream.mjpg":
                self._stream()
            else:
                self._send(404, b"", "text/plain")
        except OSError:  # timeouts (slow or stalled clients) and resets
            self.close_connection = True

    def _stream(self):
        app = self.app
        if not app.streams.acquire(blocking=False):
            self._send(503, b"", "text/plain")
            return
        try:
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.end_headers()
            if self.command == "HEAD":
                return
            app.metrics.http.stream_clients += 1
            last = -1
            while not app.stopping.is_set():
                app.latest.wait_newer(last, 1.0)
                got = app.jpeg()
                if got is None or got[0] == last:
                    app.stopping.wait(app.stream_interval or 0.01)
                    continue
                last, jpg = got
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                 f"{len(jpg)}\r\n\r\n".encode() + jpg + b"\r\n")
                app.stopping.wait(app.stream_interval)
        finally:
            app.metrics.http.stream_clients -= 1 if self.command != "HEAD" else 0
            app.streams.release()


# -- aiohttp -------------------------------------------------------------------------------
class AiohttpStatusServer:
    """aiohttp.web on its own event-loop thread, with edgeface's FrameEncoder."""

    def __init__(self, latest, metrics, host="127.0.0.1", port=8080, *, max_streams=8,
                 stream_max_fps=15.0, jpeg_max_fps=15.0, write_timeout=10.0, stale_after=10.0):
        import asyncio

        from aiohttp import web

        from edgeface.http.encoder import FrameEncoder

        self.latest, self.metrics, self.stale_after = latest, metrics, stale_after
        self.health = AsyncioStatusServer.health.__get__(self)
        self.encoder = FrameEncoder(latest, metrics.http, jpeg_max_fps)
        self.max_streams, self.write_timeout = max_streams, write_timeout
        self.interval = 1 / stream_max_fps if stream_max_fps else 0.01
        self.host, self.port, self.url = host, port, f"http://{host}:{port}"
        self.web, self.asyncio = web, asyncio
        self.app = web.Application()
        self.app.add_routes([web.get("/healthz", self._healthz),
                             web.get("/metrics", self._metrics),
                             web.get("/detections", self._detections),
                             web.get("/snapshot.jpg", self._snapshot),
                             web.get("/stream.mjpg", self._stream)])
        self._loop = asyncio.new_event_loop()
        self._streams = 0
        self._closing = False
        self._thread = None

    def start(self):
        ready = threading.Event()

        def run():
            asyncio, web = self.asyncio, self.web
            asyncio.set_event_loop(self._loop)
            self.encoder.start(self._loop)
            self.runner = web.AppRunner(self.app, access_log=None, keepalive_timeout=30,
                                        shutdown_timeout=0.5)
            self._loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, self.host, self.port, backlog=128)
            self._loop.run_until_complete(site.start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="http", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def close(self):
        self.latest.close()
        self._closing = True  # stream handlers return within one frame interval
        fut = self.asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self._loop)
        try:
            fut.result(5)
        except Exception:
            pass
        self.encoder.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _healthz(self, request):
        code, body = self.health()
        return self.web.json_response(body, status=code)

    async def _metrics(self, request):
        return self.web.Response(text=self.metrics.prometheus(), content_type="text/plain")

    async def _detections(self, request):
        return self.web.Response(body=self.latest.detections_json(),
                                 content_type="application/json")

    async def _snapshot(self, request):
        got = await self.encoder.jpeg()
        if got is None:
            return self.web.Response(status=503)
        return self.web.Response(body=got[1], content_type="image/jpeg")

    async def _stream(self, request):
        web, asyncio = self.web, self.asyncio
        if self._streams >= self.max_streams:
            return web.Response(status=503)
        resp = web.StreamResponse(headers={
            "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}"})
        self._streams += 1
        self.metrics.http.stream_clients = self._streams
        try:
            await resp.prepare(request)
            last = -1
            while not self._closing:
                got = await self.encoder.jpeg(fresh=True)
                if got is not None and got[0] != last:
                    last, jpg = got
                    part = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: "
                            f"{len(jpg)}\r\n\r\n").encode() + jpg + b"\r\n"
                    await asyncio.wait_for(resp.write(part), self.write_timeout)
                await asyncio.sleep(self.interval)
        except (asyncio.TimeoutError, ConnectionError):
            return resp
        finally:
            self._streams -= 1
            self.metrics.http.stream_clients = self._streams


def original_server(rev: str):
    """The StatusServer class of ``rev`` (git), loaded as a module of its own."""
    import types

    # A revision before the move to edge/http/ imports edgeface.runtime.http, gone here.
    src = subprocess.run(["git", "show", f"{rev}:edge/http/server.py"], cwd=REPO,
                         check=True, capture_output=True, text=True).stdout
    mod = types.ModuleType("edgeface_original_http_server")
    exec(compile(src, f"{rev}:server.py", "exec"), mod.__dict__)  # noqa: S102 - our own git
    return mod.StatusServer


def unbudgeted(latest, metrics, host="127.0.0.1", port=8080, **kw):
    """edgeface's server without its request and snapshot budgets (what they buy)."""
    return AsyncioStatusServer(latest, metrics, host, port,
                               limits=HttpLimits(request_max_rate=0, snapshot_max_rate=0), **kw)


def server_class(variant: str, rev: str | None):
    if variant == "asyncio":
        return AsyncioStatusServer
    if variant == "asyncio-nobudget":
        return unbudgeted
    if variant == "original":
        return original_server(rev or "HEAD")
    return {"threaded": ThreadedStatusServer, "aiohttp": AiohttpStatusServer}[variant]


# -- child processes -----------------------------------------------------------------------
def device_main(variant: str, rev: str | None, run_args: list[str]) -> int:
    """`edgeface run` with the variant as its HTTP server."""
    import edgeface.http.server as srv

    srv.StatusServer = server_class(variant, rev)
    from edgeface.cli import main

    return main(run_args)


def serve_main(variant: str, rev: str | None, port: int) -> int:
    """The variant alone, fed a 720p frame 20 times a second, until stdin closes."""
    import numpy as np

    from edgeface.frames import Detections, Frame, FrameResult, Timing
    from edgeface.http.latest import LatestSink
    from edgeface.runtime.metrics import Metrics

    latest, metrics = LatestSink(), Metrics()
    server = server_class(variant, rev)(latest, metrics, "127.0.0.1", port).start()
    image = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), np.uint8)
    dets = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                      np.zeros((0, 5, 2), np.float32))
    stop = threading.Event()

    def frames():
        i = 0
        while not stop.wait(0.05):
            latest.write(FrameResult(Frame(i, time.time(), image), dets, Timing(0, 0.01, 0)))
            metrics.observe(0.01, 0)
            i += 1

    threading.Thread(target=frames, daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()
    stop.set()
    server.close()
    return 0


_STACK = {  # variant -> (modules alone, what the device adds on top of its runtime)
    "asyncio": ("import asyncio, email.utils, http, urllib.parse",
                "import edgeface.http.server"),
    "asyncio-nobudget": ("import asyncio, email.utils, http, urllib.parse",
                         "import edgeface.http.server"),
    "threaded": ("import http.server, socketserver", "import http.server, socketserver"),
    "aiohttp": ("import aiohttp.web", "import aiohttp.web, edgeface.http.encoder"),
    "original": ("import http.server, socketserver", "import http.server, socketserver"),
}


def import_rss(variant: str, on_top: bool, env: dict) -> float:
    """MB of RSS a fresh interpreter gains importing the variant's server stack (alone, or
    after numpy, cv2, ONNX Runtime and edgeface's runtime modules, as in the device)."""
    base = ("import numpy, cv2, onnxruntime, edgeface.runtime.metrics, "
            "edgeface.http.latest" if on_top else "")
    code = (f"import re\n{base}\n"
            "def rss(): return int(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status')"
            ".read()).group(1))\n"
            f"a = rss()\n{_STACK[variant][on_top]}\nprint((rss() - a) / 1024)")
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 env=env, cwd=REPO, check=True).stdout) for _ in range(3)]
    return round(sorted(runs)[1], 1)  # the median of 3


def idle_sockets(variant: str, rev: str | None, env: dict, n: int = 200) -> dict:
    port = http_load.free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", variant, "--port", str(port)]
                            + (["--original", rev] if rev else []),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env, cwd=REPO)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        st0 = http_load.proc_status(proc.pid)
        socks = []
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if i % 2:
                s.sendall(b"GET /snapshot.jpg HTTP/1.1\r\nHost: d\r\n")  # half sent
            socks.append(s)
        time.sleep(2.0)
        st1 = http_load.proc_status(proc.pid)
        polls = [http_load.healthz(port) for _ in range(10)]
        for s in socks:
            s.close()
        lat = sorted(p[1] * 1e3 for p in polls if p[0] == 200)
        return {"connections": n, "rss_growth_mb": round((st1["VmRSS"] - st0["VmRSS"]) / 1024, 2),
                "threads_idle": st0["Threads"], "threads_with_sockets": st1["Threads"],
                "healthz_ok": sum(p[0] == 200 for p in polls), "healthz_polls": len(polls),
                "healthz_statuses": sorted({p[0] for p in polls}),
                "healthz_p50_ms": round(lat[len(lat) // 2], 2) if lat else None}
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default="asyncio,asyncio-nobudget,threaded,aiohttp,original")
    ap.add_argument("--aiohttp-path", type=Path, default=None,
                    help="folder with aiohttp installed (pip install --target DIR aiohttp)")
    ap.add_argument("--original", default=None, metavar="REV",
                    help="git revision whose server.py is the 'original' variant")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--before", type=float, default=10.0)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--after", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--window", type=float, default=6.0)
    ap.add_argument("--snapshots", type=int, default=30)
    ap.add_argument("--streams", type=int, default=10)
    ap.add_argument("--pollers", type=int, default=10)
    ap.add_argument("--idle", type=int, default=200)
    ap.add_argument("--client-nice", type=int, default=10)
    ap.add_argument("--device-nice", type=int, default=0)
    ap.add_argument("-o", "--output", "--out", dest="out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--device", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    return ap.parse_known_args(argv)


def main(argv=None) -> int:
    args, rest = parse_args(argv)
    if args.device:
        return device_main(args.device, args.original, rest[1:] if rest[:1] == ["--"] else rest)
    if args.serve:
        return serve_main(args.serve, args.original, args.port)
    variants = [v for v in args.variants.split(",")
                if (v != "aiohttp" or args.aiohttp_path) and (v != "original" or args.original)]
    load0 = [round(x, 2) for x in os.getloadavg()]
    tmp = Path(tempfile.mkdtemp(prefix="edgeface-http-servers-"))
    model, video = http_load.prepare_inputs(args, tmp)
    env = dict(os.environ)
    if args.aiohttp_path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(args.aiohttp_path),
                                                          env.get("PYTHONPATH")]))
    results = {}
    for v in variants:
        r = {"import_rss_mb": import_rss(v, False, env),
             "import_rss_on_runtime_mb": import_rss(v, True, env),
             "idle_200": idle_sockets(v, args.original, env)}
        port = http_load.free_port()
        out_jsonl = tmp / f"{v}.jsonl"
        cmd = ([sys.executable, __file__, "--device", v]
               + (["--original", args.original] if args.original else []) + ["--"]
               + http_load.device_command(model, video, port, out_jsonl)[3:])
        load = http_load.measure(cmd, port, out_jsonl, args, tmp, env)
        load.pop("samples")
        r["load"] = load
        r["passed"] = http_load.verdict(load)
        results[v] = r
        print(f"{v}: {json.dumps({k: r[k] for k in ('import_rss_mb', 'idle_200')})} "
              f"load fps ratio {load['fps_ratio']} peak {load['peak_rss_mb']} MB "
              f"healthz failures {load['healthz_failures']} exit {load['exit_code']}",
              file=sys.stderr)
    report = {"kind": "edgeface-http-servers", "schema_version": 1,
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "command": "python benchmarks/http_servers.py " + " ".join(argv or sys.argv[1:]),
              "machine": http_load.machine(load0),
              "load": {k: getattr(args, k) for k in ("size", "before", "duration", "after",
                                                     "rounds", "window",
                                                     "snapshots", "streams", "pollers", "idle",
                                                     "client_nice", "device_nice")},
              "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    md = render_md(report)
    args.out.with_suffix(".md").write_text(md + http_load.kept_notes(args.out.with_suffix(".md")))
    print(md)
    return 0


def render_md(report: dict) -> str:
    res, ld = report["results"], report["load"]
    names = list(res)
    rows = [
        ("RSS after import, bare interpreter (MB)", lambda r: r["import_rss_mb"]),
        ("RSS after import, on numpy+cv2+ORT (MB)", lambda r: r["import_rss_on_runtime_mb"]),
        ("RSS growth with 200 idle sockets (MB; half half-sent)",
         lambda r: r["idle_200"]["rss_growth_mb"]),
        ("threads: server idle / with 200 idle sockets", lambda r: (
            f"{r['idle_200']['threads_idle']} / {r['idle_200']['threads_with_sockets']}")),
        ("/healthz under 200 idle sockets: answered 200 (p50 ms)", lambda r: (
            f"{r['idle_200']['healthz_ok']}/{r['idle_200']['healthz_polls']} "
            f"({r['idle_200']['healthz_p50_ms']})")),
        ("load: peak RSS, whole run (MB)", lambda r: r["load"]["peak_rss_mb"]),
        ("load: RSS before / peak under load (MB)", lambda r: (
            f"{r['load']['rss_before_load_mb']} / {r['load']['peak_rss_under_load_mb']}")),
        ("load: FPS without clients / under load", lambda r: (
            f"{r['load']['fps_without_clients']} / {r['load']['fps']['load']}")),
        ("load: FPS ratio, 30 s phase vs quiet phases", lambda r: r["load"]["fps_ratio"]),
        ("load: FPS ratio, interleaved windows (median)",
         lambda r: r["load"]["fps_ratio_interleaved"]),
        ("load: device CPU cores, quiet (before) / under load", lambda r: (
            f"{r['load']['cpu_cores_used']['before']['process']} / "
            f"{r['load']['cpu_cores_used']['load']['process']}")),
        ("load: device CPU ms per frame, quiet / under load", lambda r: (
            f"{r['load']['cpu_ms_per_frame']['before']} / "
            f"{r['load']['cpu_ms_per_frame']['load']}")),
        ("load: CPU per frame ratio quiet / load (FPS ratio if CPU-bound)",
         lambda r: r["load"]["cpu_cost_ratio"]),
        ("load: same, interleaved windows (median)",
         lambda r: r["load"]["cpu_cost_ratio_interleaved"]),
        ("load: /healthz failures / polls", lambda r: (
            f"{r['load']['healthz_failures']} / {r['load']['healthz_polls']}")),
        ("load: /healthz p50 / p95 / max ms (answered ones)",
         lambda r: "{p50} / {p95} / {max}".format(**r["load"]["healthz_latency_ms_under_load"])),
        ("load: threads max", lambda r: r["load"]["threads_max"]),
        ("load: snapshots served (200 / 503)", lambda r: (
            f"{r['load']['client'].get('snapshot_200', 0)} / "
            f"{r['load']['client'].get('snapshot_503', 0)}")),
        ("load: stream frames received", lambda r: r["load"]["client"].get("stream_frames", 0)),
        ("load: exit code after SIGTERM (s)", lambda r: (
            f"{r['load']['exit_code']} ({r['load']['exit_s']})")),
        ("load: JSON lines == summary frames", lambda r: r["load"]["frames_match"]),
    ]
    out = [f"# HTTP servers compared ({report['date']})", "",
           f"`{report['command'].strip()}` on {report['machine']['processor']}, "
           f"{report['machine']['cpus']} CPUs, Python {report['machine']['python']} (load "
           f"average {report['machine']['loadavg_at_start'][0]} at start, "
           f"{report['machine']['loadavg_at_end'][0]} at end: a shared machine, FPS is noisy)."
           f" Load per server: {ld['before']:g} s quiet, {ld['duration']:g} s of "
           f"{ld['snapshots']} snapshot loops + {ld['streams']} stream readers + "
           f"{ld['pollers']} /metrics pollers + {ld['idle']} idle sockets, {ld['after']:g} s "
           f"quiet, then SIGTERM under the same load (benchmarks/http_load.py); device at nice "
           f"{ld['device_nice']}, clients at nice {ld['client_nice']}.", "",
           "| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, get in rows:
        cells = []
        for n in names:
            try:
                cells.append(str(get(res[n])))
            except (KeyError, TypeError):
                cells.append("-")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
