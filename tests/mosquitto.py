"""A real Mosquitto broker on loopback for the MQTT tests (Debian: apt-get install mosquitto),
a test CA and password file for it, and a paho subscriber that collects what arrives.

Each broker gets a free port, its own config in a temporary folder and no persistence, so
retained messages never leak between tests. Only the broker's own process is ever stopped.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pytest
from event_fakes import wait_until

MOSQUITTO = shutil.which("mosquitto") or next(
    (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)), None)
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
OPENSSL = shutil.which("openssl")


def need(binary: Optional[str], name: str, package: str) -> str:
    if binary is None:
        pytest.skip(f"{name} not found: install Debian's {package} package to run this test")
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """``mosquitto -c conf`` on 127.0.0.1:``port``; ``extra`` lines go into its config."""

    def __init__(self, workdir: Path, extra: str = "", port: Optional[int] = None):
        self.binary = need(MOSQUITTO, "mosquitto", "mosquitto")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.conf = self.workdir / f"mosquitto-{self.port}.conf"
        self.log = self.workdir / f"mosquitto-{self.port}.log"
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "log_dest stderr",
                 "log_type error", "log_type warning", "log_type notice"]
        if "allow_anonymous" not in extra:
            lines.append("allow_anonymous true")
        if os.geteuid() == 0:
            # As root it would switch to user mosquitto, who cannot read pytest's 0700
            # folders (the certificates, the password file).
            lines.append("user root")
        self.conf.write_text("\n".join(lines) + "\n" + extra)
        self.proc: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 5.0) -> Broker:
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=logf,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        logf.close()

        def accepting() -> bool:
            if self.proc.poll() is not None:
                return True
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False

        if not wait_until(accepting, timeout, 0.05) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError(f"mosquitto did not start on port {self.port}:\n"
                               f"{self.log.read_text()[-2000:]}")
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


@dataclass
class Tls:
    ca: Path
    cert: Path
    key: Path
    other_ca: Path  # a CA that did not sign the broker's certificate


def make_tls(folder: Path) -> Tls:
    """A test CA and a server certificate for localhost / 127.0.0.1 (EC keys: fast)."""
    openssl = need(OPENSSL, "openssl", "openssl")
    folder.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True,
                       timeout=30)

    for name in ("ca", "other-ca"):
        run("req", "-x509", *ec, "-days", "2", "-subj", f"/CN=edgeface test {name}",
            "-keyout", f"{name}.key", "-out", f"{name}.crt")
    run("req", *ec, "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr")
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt")
    return Tls(folder / "ca.crt", folder / "server.crt", folder / "server.key",
               folder / "other-ca.crt")


def make_passwd(folder: Path, user: str, password: str) -> Path:
    binary = need(MOSQUITTO_PASSWD, "mosquitto_passwd", "mosquitto")
    path = folder / "passwd"
    subprocess.run([binary, "-b", "-c", str(path), user, password], check=True,
                   capture_output=True, timeout=30)
    return path


class Subscriber:
    """A paho client that subscribes to ``topics`` and records (topic, payload, retain)."""

    def __init__(self, port: int, topics: list[str], ca: Optional[Path] = None,
                 user: Optional[str] = None, password: Optional[str] = None):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
        self.client.reconnect_delay_set(0.05, 0.2)
        if ca is not None:
            self.client.tls_set(ca_certs=str(ca))
        if user is not None:
            self.client.username_pw_set(user, password)

        def on_connect(client, userdata, flags, rc, props):
            client.subscribe([(t, 1) for t in topics])

        def on_subscribe(client, userdata, mid, rcs, props):
            self._subscribed.set()

        def on_message(client, userdata, msg):
            with self._cond:
                self.messages.append((msg.topic, msg.payload, bool(msg.retain)))
                self._cond.notify_all()

        self.client.on_connect, self.client.on_message = on_connect, on_message
        self.client.on_subscribe = on_subscribe
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert self._subscribed.wait(5), "the test subscriber could not subscribe"

    def on(self, topic: str) -> list[tuple[bytes, bool]]:
        with self._cond:
            return [(p, r) for t, p, r in self.messages if t == topic]

    def wait_for(self, topic: str, predicate: Callable[[bytes], bool] = lambda p: True,
                 timeout: float = 5.0, count: int = 1) -> list[tuple[bytes, bool]]:
        """Wait until ``count`` messages on ``topic`` satisfy ``predicate``; return them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [(p, r) for t, p, r in self.messages if t == topic and predicate(p)]
                left = deadline - time.monotonic()
                if len(found) >= count or left <= 0:
                    break
                self._cond.wait(left)
        assert len(found) >= count, (f"{len(found)}/{count} wanted messages on {topic}; got "
                                     f"{[(t, p[:80]) for t, p, _ in self.messages]}")
        return found

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
