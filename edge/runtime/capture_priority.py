"""Background scheduling for the capture thread while it works ahead of the detector.

On a board where inference already uses every core, decoding the next frame takes a core
from an inference thread, and the whole parallel operator waits for it. A ``SCHED_IDLE``
thread runs only on a core nothing else wants and is preempted at once when an inference
thread wakes up, so work done ahead (a frame is already waiting for the detector) fills the
gaps between operators instead. When the detector has nothing to work on, the capture thread
must not wait behind anything: it runs at normal priority again.

Leaving ``SCHED_IDLE`` needs ``CAP_SYS_NICE`` or ``RLIMIT_NICE`` >= 20 - nice (systemd:
``LimitNICE=+0``, set by the shipped unit). Where that is missing, :func:`can_leave_idle`
says so and the thread simply stays at normal priority: it is never stranded in the
background. Linux only; elsewhere this is a no-op.
"""

from __future__ import annotations

import functools
import logging
import os
import threading

log = logging.getLogger(__name__)

_IDLE = getattr(os, "SCHED_IDLE", None)
_OTHER = getattr(os, "SCHED_OTHER", None)


@functools.lru_cache(maxsize=1)
def can_leave_idle() -> bool:
    """Whether a thread of this process may go to ``SCHED_IDLE`` and come back.

    Probed once on a throwaway thread, so a refusal strands nothing that matters."""
    if _IDLE is None or _OTHER is None or not hasattr(os, "sched_setscheduler"):
        return False
    ok: list[bool] = []

    def probe() -> None:
        try:
            os.sched_setscheduler(0, _IDLE, os.sched_param(0))
            os.sched_setscheduler(0, _OTHER, os.sched_param(0))
            ok.append(True)
        except OSError as exc:
            log.debug("capture thread stays at normal priority: %s", exc)
            ok.append(False)

    t = threading.Thread(target=probe, name="edgeface priority probe", daemon=True)
    t.start()
    t.join()
    return bool(ok and ok[0])


class BackgroundSwitch:
    """Moves one thread between normal and background (``SCHED_IDLE``) scheduling.

    :meth:`attach` is called by the thread itself; :meth:`set` may then be called from any
    thread (the consumer raises the capture thread when it has to wait for a frame).
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and can_leave_idle()
        self.background = False
        self._tid: int | None = None
        self._lock = threading.Lock()

    def attach(self) -> None:
        self._tid = threading.get_native_id()

    def set(self, background: bool) -> None:
        if not self.enabled or self._tid is None or background == self.background:
            return
        with self._lock:
            if background == self.background:
                return
            try:
                os.sched_setscheduler(self._tid, _IDLE if background else _OTHER,
                                      os.sched_param(0))
            except ProcessLookupError:  # the thread has ended
                self.enabled = False
                return
            except OSError as exc:  # not expected after the probe; stop trying
                log.warning("cannot change the capture thread's priority: %s", exc)
                self.enabled = False
                return
            self.background = background
