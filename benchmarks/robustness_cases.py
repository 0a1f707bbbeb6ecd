"""The hostile cases of issue 23 (classes 1-13) for benchmarks/robustness.py: each builds its
crafted inputs in a folder and returns the edgeface command line, plus a driver for the
server cases (it sends the hostile requests, then SIGTERM, and returns what it saw)."""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import signal
import socket
import socketserver
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import cv2
from hostile_inputs import jpeg_bomb, png_bomb
from http_hostile_clients import detect_client, detect_summary, half_open, slow_upload
from runtime_fakes import synthetic_frames, write_video
from test_config_values import bomb as yaml_bomb
from test_image_headers import jpeg, repeat_scan, tiff, with_sof

Driver = Callable[[subprocess.Popen, list], str]
#: Called after the case's process ended (a broker or an endpoint the case started).
CLEANUP: list[Callable[[], None]] = []
Build = Callable[[Path, Path], tuple[list[str], Optional[Driver]]]


@dataclass(frozen=True)
class Case:
    klass: str
    name: str
    build: Build
    expect: tuple[int, ...]
    control: bool = False  # the OOM kill is the point: it proves the limit bites


def _video(d: Path, suffix: str = ".avi", n: int = 100) -> Path:
    return write_video(d / f"clip{suffix}", synthetic_frames(n, (320, 240)), fps=25)


def _lying_tiff(d: Path) -> Path:
    p = d / "lying.tiff"  # 426 KB passing as 100x100, decoding as 20000x20000
    p.write_bytes(tiff(100, 100, extra=[(256, 4, 20000), (257, 4, 20000)]) + bytes(420_000))
    return p


def _good(d: Path) -> Path:
    p = d / "good.jpg"
    cv2.imwrite(str(p), synthetic_frames(1, (640, 480))[0])
    return p


# -- server drivers --------------------------------------------------------------------

def _url(lines: list, proc: subprocess.Popen, wait: float = 30) -> tuple[str, int]:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and proc.poll() is None:
        for line in list(lines):
            m = re.search(r"http://(127\.0\.0\.1):(\d+)", line)
            if m:
                return m.group(1), int(m.group(2))
        time.sleep(0.05)
    raise RuntimeError("the server did not start: " + "".join(lines)[-300:])


def _post(host: str, port: int, body: bytes, timeout: float = 60) -> int:
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("POST", "/detect", body, {"Content-Type": "image/jpeg"})
        r = c.getresponse()
        r.read()
        return r.status
    except OSError:
        return 0
    finally:
        c.close()


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)


def _serving(attack: Callable[[str, int], str]) -> Driver:
    def drive(proc: subprocess.Popen, lines: list) -> str:
        try:
            host, port = _url(lines, proc)
            return attack(host, port)
        finally:
            _stop(proc)
    return drive


def _posts(bodies: dict[str, bytes]) -> Callable[[str, int], str]:
    def attack(host: str, port: int) -> str:
        return ", ".join(f"{k}: {_post(host, port, b)}" for k, b in bodies.items())
    return attack


async def _healthz(port: int, end: float, st: Counter) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < end:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            st[f"healthz_{int(head.split(b' ', 2)[1])}"] += 1
            writer.close()
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
            st["healthz_failed"] += 1
        await asyncio.sleep(0.5)


def _hostile_clients(slow: int, half: int, seconds: float = 12) -> Callable[[str, int], str]:
    """benchmarks/http_hostile_clients.py's slow uploads and half-open heads, beside one
    well-behaved POST /detect client and a /healthz probe every 0.5 s."""
    def attack(host: str, port: int) -> str:
        st: Counter = Counter()
        latencies: list = []

        async def load() -> None:
            end = asyncio.get_running_loop().time() + seconds
            await asyncio.gather(
                *(slow_upload(port, end, st) for _ in range(slow)),
                *(half_open(port, end, st) for _ in range(half)),
                detect_client(port, end, st, jpeg(320, 240), 1.0, latencies),
                _healthz(port, end, st))
        asyncio.run(load())
        probes = sum(v for k, v in st.items() if k.startswith("healthz_"))
        detect = detect_summary(st, latencies)
        return (f"POST /detect 200: {st['detect_200']} of {detect['detect_sent']}; /healthz "
                f"200: {st['healthz_200']} of {probes}")
    return attack


def _long_length(host: str, port: int, n: int = 200) -> str:
    codes = []
    for _ in range(n):
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(b"POST /detect HTTP/1.1\r\nHost: x\r\nContent-Length: "
                      + b"9" * 5000 + b"\r\n\r\n")
            head = s.recv(64)
            codes.append(head.split(b" ")[1].decode() if head.count(b" ") else "closed")
    return f"{codes.count('400')} of {n} answered 400"


# -- builders --------------------------------------------------------------------------

def _detect(make: Callable[[Path], Path], *extra: str) -> Build:
    return lambda d, m: (["detect", "-m", str(m), str(make(d)), *extra], None)


def _run(make: Callable[[Path], Path], *extra: str) -> Build:
    return lambda d, m: (["run", "-m", str(m), "--source", str(make(d)), "--json",
                          str(d / "out.jsonl"), *extra], None)


def _serve(attack: Callable[[str, int], str]) -> Build:
    return lambda d, m: (["serve", "-m", str(m), "--http", "127.0.0.1:0"], _serving(attack))


def _folder(d: Path) -> Path:
    f = d / "folder"
    f.mkdir()
    _lying_tiff(f)
    jpeg_bomb(f / "bomb.jpg", 60000, 60000)
    _good(f)
    return f


def _real_png(d: Path) -> Path:
    f = d / "png"
    f.mkdir()
    png_bomb(f / "real.png", 20000, 20000, real_rows=True)  # 1.2 GB decoded, ~1 MB here
    return f


def _scan_bomb(d: Path) -> Path:
    p = d / "scans.jpg"
    p.write_bytes(repeat_scan(jpeg(4000, 3000, True, smooth=True), 20000))
    return p


def _hard_link_json(d: Path, m: Path) -> tuple[list[str], None]:
    img = _good(d)
    os.link(img, d / "alias.jpg")
    return ["detect", "-m", str(m), str(img), "--json", str(d / "alias.jpg")], None


def _hard_link_video(d: Path, m: Path) -> tuple[list[str], None]:
    clip = _video(d)
    os.link(clip, d / "alias.avi")
    return ["run", "-m", str(m), "--source", str(clip), "--video", str(d / "alias.avi")], None


def _damaged_avi(d: Path) -> Path:
    clip = _video(d, n=300)
    data = bytearray(clip.read_bytes())
    data[len(data) // 2:len(data) // 2 + 20000] = bytes(20000)
    clip.write_bytes(bytes(data))
    return clip


def _cut_avi(d: Path) -> Path:
    clip = _video(d, n=300)
    clip.write_bytes(clip.read_bytes()[:clip.stat().st_size // 2])
    return clip


def _config(text: str) -> Callable[[Path, Path], tuple[list[str], None]]:
    def build(d: Path, m: Path) -> tuple[list[str], None]:
        (d / "c.yaml").write_text(text)
        return ["run", "-m", str(m), "--source", str(_video(d)), "-c", str(d / "c.yaml")], None
    return build


class _Trickle(socketserver.BaseRequestHandler):
    def handle(self) -> None:  # an endpoint answering one byte a second, for a minute
        self.request.recv(65536)
        for b in b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n" + b"x" * 40:
            try:
                self.request.send(bytes([b]))
            except OSError:
                return
            time.sleep(1)


def _webhook(d: Path, m: Path) -> tuple[list[str], None]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    CLEANUP.append(server.shutdown)
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    return ["run", "-m", str(m), "--source", str(_video(d)), "--webhook", url,
            "--webhook-timeout", "2", "--webhook-retries", "1"], None


def _retained_status(d: Path, m: Path) -> tuple[list[str], None]:
    """150 MB retained on homeassistant/status (RSS 606 MB, or an OOM kill, on every start)."""
    import paho.mqtt.client as mqtt
    from mosquitto import Broker

    broker = Broker(d).start()
    CLEANUP.append(broker.stop)
    c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    c.publish("homeassistant/status", b"x" * (150 << 20), qos=1, retain=True).wait_for_publish(60)
    c.disconnect()
    c.loop_stop()
    return ["run", "-m", str(m), "--source", str(_video(d)), "--mqtt",
            f"127.0.0.1:{broker.port}", "--mqtt-discovery"], None


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


CASES = [
    Case("1", "detect: TIFF whose size tags lie", _detect(_lying_tiff), (1,)),
    Case("1", "run: folder with lying TIFF and bombs", _run(_folder), (1,)),
    Case("2", "detect: progressive JPEG, 20000 scans", _detect(_scan_bomb), (1,)),
    Case("2", "serve: POST scan bomb, then a good image",
         _serve(lambda h, p: _posts({"bomb": repeat_scan(jpeg(4000, 3000, True, smooth=True),
                                                         20000),
                                     "good": jpeg(320, 240)})(h, p)), (0,)),
    Case("3", "run: 150 MB retained on homeassistant/status", _retained_status, (0,)),
    Case("4", "serve: 5 uploads at 1 byte/s", _serve(_hostile_clients(5, 0)), (0,)),
    Case("5", "serve: 5000-digit Content-Length x200", _serve(_long_length), (0,)),
    Case("6", "serve: 530 half-open heads", _serve(_hostile_clients(0, 530)), (0,)),
    Case("7", "run: MQTT broker down at start",
         lambda d, m: (["run", "-m", str(m), "--source", str(_video(d)), "--mqtt",
                        _closed_port(), "--mqtt-discovery"], None), (0,)),
    Case("8", "detect: --json a hard link of the input", _hard_link_json, (2,)),
    Case("8", "run: --video a hard link of the source", _hard_link_video, (2,)),
    Case("9", "run: --json on a full disk (/dev/full)",
         lambda d, m: (["run", "-m", str(m), "--source", str(_video(d)), "--json",
                        "/dev/full"], None), (1,)),
    Case("10", "run: webhook answering 1 byte/s", _webhook, (0,)),
    Case("11", "run: --crops into a file", _run(_video, "--crops", "/etc/hostname/crops"),
         (1,)),
    Case("11", "run: --crops-max-size 0", _run(_video, "--crops", "crops",
                                                "--crops-max-size", "0"), (2,)),
    Case("12", "run: non-UTF-8 --mqtt-prefix",
         _run(_video, "--mqtt", "127.0.0.1:1", "--mqtt-prefix", os.fsdecode(b"cam\xff")),
         (2,)),
    Case("13", "run: AVI with 20 KB of damaged chunks", _run(_damaged_avi), (1,)),
    Case("13", "run: AVI cut in half", _run(_cut_avi), (1,)),
    Case("13", "run: YAML alias bomb in a value", _config(yaml_bomb("source", depth=7)), (2,)),
    Case("13", "run: --status-interval nan", _run(_video, "--status-interval", "nan"), (2,)),
    Case("control", "run: real 20000x20000 PNG, budget lifted",
         _run(_real_png, "--max-image-pixels", "1000000000", "--memory-limit", "0"), (-9,),
         control=True),
    Case("13", "serve: POST JPEG whose SOF claims 4000x3000",
         _serve(_posts({"sof lie": with_sof(jpeg(160, 120), 4000, 3000)})), (0,)),
]
