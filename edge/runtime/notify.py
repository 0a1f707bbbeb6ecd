"""systemd notifications (sd_notify) over ``$NOTIFY_SOCKET``, without libsystemd.

READY=1 once the first frame went through, WATCHDOG=1 from the processing loop (so a hung
pipeline stops pinging and systemd restarts it), STATUS=... for ``systemctl status``.
Without ``NOTIFY_SOCKET`` every method is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)

DEFAULT_WATCHDOG_INTERVAL = 5.0  # seconds between pings when systemd sets no WATCHDOG_USEC


class Notifier:
    """Send sd_notify datagrams. Abstract sockets (``@name``) are supported."""

    def __init__(self, address: str | None = None, watchdog_usec: int | None = None):
        self.address = address or None
        self._sock: socket.socket | None = None
        if watchdog_usec:
            # Half the timeout, as sd_watchdog_enabled(3) recommends.
            self.watchdog_interval = watchdog_usec / 1e6 / 2
        else:
            self.watchdog_interval = DEFAULT_WATCHDOG_INTERVAL
        self._last_ping = float("-inf")
        self._failed = False

    @classmethod
    def from_env(cls, environ: dict | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        usec = None
        raw = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        if raw and (not pid or pid == str(os.getpid())):
            try:
                usec = int(raw)
            except ValueError:
                log.warning("ignoring invalid WATCHDOG_USEC=%r", raw)
        return cls(env.get("NOTIFY_SOCKET"), usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None and not self._failed

    def _target(self) -> str | bytes:
        assert self.address is not None
        if self.address.startswith("@"):
            return b"\0" + self.address[1:].encode()
        return self.address

    def send(self, *lines: str) -> bool:
        """Send one datagram of ``KEY=value`` lines; False (and a single warning) on failure."""
        if not self.enabled:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(lines).encode(), self._target())
            return True
        except OSError as exc:
            # A missing socket will not come back; don't retry (and log) on every frame.
            log.warning("sd_notify to %s failed (%s); notifications disabled", self.address, exc)
            self._failed = True
            self.close()
            return False

    def ready(self, status: str | None = None) -> bool:
        lines = ["READY=1"] + ([f"STATUS={status}"] if status else [])
        return self.send(*lines)

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def watchdog(self, now: float | None = None) -> bool:
        """Ping the watchdog, at most once per ``watchdog_interval``; True if a ping was sent."""
        if not self.enabled:
            return False
        now = time.monotonic() if now is None else now
        if now - self._last_ping < self.watchdog_interval:
            return False
        self._last_ping = now
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
