"""sd_notify: READY/WATCHDOG/STATUS datagrams, and the systemd watchdog contract of a real
`edgeface run`: pings flow while frames do, and stop when the processing loop hangs."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest
from runtime_fakes import REPO, edgeface_cmd, synthetic_frames, tiny_onnx, write_video

from edgeface.runtime.notify import DEFAULT_WATCHDOG_INTERVAL, Notifier


@pytest.fixture
def listener(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(0.05)
    yield str(path), sock
    sock.close()


def receive(sock, seconds, until=None):
    """(arrival time, message) pairs for ``seconds`` (or until ``until(msgs)`` is true)."""
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            out.append((time.monotonic(), sock.recv(4096).decode()))
        except (socket.timeout, BlockingIOError):
            pass
        if until is not None and until(out):
            break
    return out


def test_messages_reach_a_path_socket(listener):
    path, sock = listener
    n = Notifier(path, watchdog_usec=1_000_000)
    assert n.enabled and n.watchdog_interval == 0.5
    assert n.ready("first frame")
    assert n.status("12.0 fps")
    assert n.watchdog(now=100.0) and not n.watchdog(now=100.3) and n.watchdog(now=100.6)
    assert n.stopping()
    msgs = [m for _, m in receive(sock, 0.3)]
    assert msgs == ["READY=1\nSTATUS=first frame", "STATUS=12.0 fps", "WATCHDOG=1",
                    "WATCHDOG=1", "STOPPING=1"]
    n.close()


def test_abstract_socket():
    name = f"edgeface-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        assert Notifier("@" + name).ready()
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()


def test_from_env(listener):
    path, _ = listener
    assert not Notifier.from_env({}).enabled
    assert not Notifier.from_env({}).watchdog()  # no-ops without a socket
    n = Notifier.from_env({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    assert n.enabled and n.watchdog_interval == pytest.approx(0.2)
    # WATCHDOG_PID names another process: the watchdog is not ours, ping at the default pace.
    n = Notifier.from_env({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000",
                           "WATCHDOG_PID": str(os.getpid() + 1)})
    assert n.watchdog_interval == DEFAULT_WATCHDOG_INTERVAL


def test_a_missing_socket_warns_once_and_disables(tmp_path, caplog):
    n = Notifier(str(tmp_path / "absent.sock"))
    with caplog.at_level(logging.WARNING):
        assert not n.ready() and not n.watchdog() and not n.status("x")
    assert caplog.text.count("sd_notify") == 1 and not n.enabled


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("notify")
    return tiny_onnx(d / "tiny.onnx"), write_video(d / "clip.avi", synthetic_frames(20))


#: The child of :func:`start_run` with ``hang_after``: `edgeface run` with a test-only output,
#: ``--hang-after N``, whose ``write`` blocks the processing loop forever at frame N (the
#: process and its threads stay alive), registered in the child before the command parses.
HANGING_MAIN = """
import sys, time
from edgeface.runtime.options import Option, number
from edgeface.runtime.sinks import SinkKind, register_sink

class HangingSinkForTests:
    def __init__(self, after):
        self.after, self.frames = after, 0
    def write(self, result):
        self.frames += 1
        if self.frames >= self.after:
            print(f"hanging sink: the loop hangs after {self.frames} frames", file=sys.stderr,
                  flush=True)
            while True:
                time.sleep(3600)
    def flush(self):
        pass
    def close(self):
        pass
    def describe(self):
        return f"hang after {self.after} frames"

register_sink(SinkKind("hang", (Option("hang_after", "--hang-after",
                                       number(1, 10**6, integer=True), metavar="N"),),
                       lambda values, context: HangingSinkForTests(values["hang_after"])))
from edgeface.cli import main
sys.exit(main(sys.argv[1:]))
"""


def start_run(media, tmp_path, sock_path, hang_after=None):
    model, video = media
    full_env = {**os.environ, "NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "400000"}
    # --live on a file paces it like a 50 fps camera, --loop keeps it going.
    args = ["run", "-m", str(model), "--source", str(video), "--live", "--loop",
            "--capture-fps", "50", "--json", str(tmp_path / "out.jsonl"),
            "--status-interval", "0.3"]
    if hang_after is None:
        cmd = edgeface_cmd(*args)
    else:
        cmd = [sys.executable, "-c", HANGING_MAIN, *args, "--hang-after", str(hang_after)]
    return subprocess.Popen(cmd, env=full_env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def test_real_run_sends_ready_then_periodic_watchdog_pings(media, tmp_path, listener):
    path, sock = listener
    proc = start_run(media, tmp_path, path)
    try:
        msgs = receive(sock, 20, until=lambda m: sum("WATCHDOG=1" in x for _, x in m) >= 8)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
        msgs += receive(sock, 0.2)
    finally:
        proc.kill()
    texts = [m for _, m in msgs]
    assert rc == 0, proc.stderr.read()
    assert texts[0].startswith("READY=1")  # only after the first frame went through
    pings = [t for t, m in msgs if m == "WATCHDOG=1"]
    assert len(pings) >= 8
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    # Half of WATCHDOG_USEC (0.2 s), never more often, and never near the 0.4 s timeout.
    assert min(gaps) > 0.15 and max(gaps) < 0.4, gaps
    assert any(m.startswith("STATUS=") and "fps" in m for m in texts)
    assert texts[-1] == "STOPPING=1"


def test_pings_stop_when_the_loop_hangs(media, tmp_path, listener):
    path, sock = listener
    proc = start_run(media, tmp_path, path, hang_after=10)
    try:
        msgs = receive(sock, 20, until=lambda m: any("WATCHDOG=1" in x for _, x in m))
        assert msgs and msgs[0][1].startswith("READY=1")
        # The loop hangs after 10 frames (0.2 s at 50 fps): within a few ping intervals the
        # pings must stop for good, although the process (and its threads) stays alive.
        msgs += receive(sock, 1.0)
        quiet_from = time.monotonic()
        late = [m for _, m in receive(sock, 1.2) if m == "WATCHDOG=1"]
        assert proc.poll() is None, "the hook must hang, not exit"
        assert late == [], f"pings kept coming after the hang (since {quiet_from})"
        assert sum(m == "WATCHDOG=1" for _, m in msgs) >= 1
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert "the loop hangs after 10 frames" in proc.stderr.read()
