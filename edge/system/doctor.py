"""``edgeface doctor``: what a device owner runs first, as small checks over injectable roots.

Each check is a function ``(Probe) -> Finding`` (or a list of them): a status, one line that
says what was found, and the fix in one line when something is wrong. The :class:`Probe`
holds everything a check may touch — the filesystem root (``/proc``, ``/sys``, ``/dev``,
``/etc``, ``/boot/firmware`` below it), the import function, the distribution-version
lookup, the command runner, ``VIDIOC_QUERYCAP`` and this Python's facts — so tests run every
check on fixture trees of boards we do not have, with modules present or missing at will.

Heavy modules (cv2, onnxruntime, picamera2, tensorrt) are imported inside the checks,
through :meth:`Probe.load`, once each; an import that fails in any way (ImportError, numpy's
"dtype size changed" ValueError...) becomes one line, never a traceback.

Statuses: ``ok``, ``info``, ``skip`` (not relevant here), ``warn`` (works, but worse or at
risk), ``fail`` (the configured service cannot run). :func:`exit_code` is 1 when any check
failed, else 0. The checks live in :mod:`.doctor_stack` (Python packages),
:mod:`.doctor_host` (CPU, cameras, cgroup, clocks, thermals, memory, disk),
:mod:`.doctor_service` (the configured service: model, provider, source) and in each
backend's spec; they import this module, never the other way round, and the command
(:mod:`edgeface.cli.doctor_cmd`) puts them together.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

from edgeface.system.cameras import QueryCap, querycap
from edgeface.system.commands import Runner, run_quiet
from edgeface.system.sysfs import read_text

STATUSES = ("ok", "info", "skip", "warn", "fail")


@dataclass
class Finding:
    check: str
    status: str  # one of STATUSES
    summary: str  # one line: what was found
    fix: Optional[str] = None  # one line: what to do, when something is wrong
    details: dict[str, Any] = field(default_factory=dict)  # for --json


def dist_version(name: str) -> Optional[str]:
    """The installed version of distribution ``name`` (pip's view), or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass
class PythonFacts:
    version: str
    prefix: str
    base_prefix: str
    executable: str

    @classmethod
    def this(cls) -> PythonFacts:
        v = sys.version_info
        return cls(f"{v.major}.{v.minor}.{v.micro}", sys.prefix, sys.base_prefix,
                   sys.executable)

    @property
    def venv(self) -> bool:
        return self.prefix != self.base_prefix

    def system_site_packages(self) -> Optional[bool]:
        """``include-system-site-packages`` of the venv's pyvenv.cfg (None outside a venv)."""
        if not self.venv:
            return None
        text = read_text(Path(self.prefix) / "pyvenv.cfg") or ""
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "include-system-site-packages":
                return value.strip().lower() == "true"
        return False


@dataclass
class Probe:
    """What checks may touch; every field has the live default and is replaced in tests."""

    root: Path = Path("/")
    importer: Callable[[str], Any] = importlib.import_module
    version_of: Callable[[str], Optional[str]] = dist_version
    run: Runner = run_quiet
    query: QueryCap = querycap
    disk_usage: Callable[[str], Any] = shutil.disk_usage
    python: PythonFacts = field(default_factory=PythonFacts.this)
    machine: Optional[str] = None  # None: this host's
    hwcaps: Optional[tuple[int, int]] = None  # None: this process's (live root only)
    commands: Optional[bool] = None  # may run vcgencmd/nvpmodel/dpkg-query (None: live root)
    _loaded: dict[str, tuple[Any, Optional[str]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if self.commands is None:
            self.commands = self.live

    @property
    def live(self) -> bool:
        """True when the root is this machine's "/" (not a fixture tree)."""
        return self.root.resolve() == Path("/")

    def load(self, name: str) -> tuple[Any, Optional[str]]:
        """(module, None) or (None, one-line reason); each module is imported once."""
        if name not in self._loaded:
            try:
                self._loaded[name] = (self.importer(name), None)
            except Exception as exc:  # a broken extension raises more than ImportError
                self._loaded[name] = (None, one_line(exc))
        return self._loaded[name]

    def read(self, rel: str) -> Optional[str]:
        return read_text(self.root / rel)

    def board(self) -> Optional[str]:
        """``raspberry-pi``, ``jetson`` or None, from the device tree / cpuinfo / L4T."""
        model = (self.read("proc/device-tree/model") or "") + (self.read("proc/cpuinfo") or "")
        if "Raspberry Pi" in model:
            return "raspberry-pi"
        if self.read("etc/nv_tegra_release") is not None or "Jetson" in model:
            return "jetson"
        return None

    def origin(self, path: Optional[str]) -> str:
        """``apt`` for a module from the distribution's Python paths (``/usr/lib/python3/``,
        and ``/usr/lib/python3.10/dist-packages``, where JetPack's python3-libnvinfer and
        OpenCV put theirs), else ``pip``."""
        if not path:
            return "built-in"
        return "apt" if re.match(r"/usr/lib/python3(\.\d+)?/", str(path)) else "pip"


def one_line(exc: BaseException, limit: int = 200) -> str:
    """``ModuleNotFoundError: No module named 'libcamera'``: the first line, cut."""
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


Check = Callable[[Probe], Union[Finding, list[Finding]]]


def run_checks(probe: Probe, checks: Iterable[tuple[str, Check]]) -> list[Finding]:
    """Run each check; a check that raises is reported as a warning, never a traceback."""
    out: list[Finding] = []
    for name, check in checks:
        try:
            got = check(probe)
        except Exception as exc:
            got = Finding(name, "warn", f"could not check: {one_line(exc)}")
        out.extend(got if isinstance(got, list) else [got])
    return out


def exit_code(findings: Iterable[Finding]) -> int:
    return 1 if any(f.status == "fail" for f in findings) else 0


def verdict(findings: list[Finding]) -> str:
    fails = sum(f.status == "fail" for f in findings)
    warns = sum(f.status == "warn" for f in findings)
    counts = f"{fails} problem{'s' * (fails != 1)}, {warns} warning{'s' * (warns != 1)}"
    if fails:
        return f"{counts}: the configured service cannot run"
    return f"{counts}: the configured service can run"


def render_text(findings: list[Finding], header: str = "") -> str:
    """Aligned lines: status, check, summary; the fix indented below it."""
    width = max([len(f.check) for f in findings] + [8])
    lines = [header, ""] if header else []
    for f in findings:
        lines.append(f"{f.status.upper() if f.status == 'fail' else f.status:<5} "
                     f"{f.check:<{width}}  {f.summary}")
        if f.fix:
            lines.append(f"{'':<5} {'':<{width}}  fix: {f.fix}")
    lines += ["", verdict(findings)]
    return "\n".join(lines)


def to_json(findings: list[Finding], **extra: Any) -> dict[str, Any]:
    """``{"ok", "exit_code", "verdict", ..., "checks": [{"check", "status", ...}]}``."""
    return {"ok": exit_code(findings) == 0, "exit_code": exit_code(findings),
            "verdict": verdict(findings), **extra,
            "checks": [asdict(f) for f in findings]}


def header_line(probe: Probe) -> str:
    """``edgeface 0.4.0 doctor on Raspberry Pi 5 Model B Rev 1.0, Debian ... (aarch64)``."""
    from edgeface import __version__
    from edgeface.system.platform import parse_cpuinfo, parse_device_tree_model, parse_os_release

    board = parse_device_tree_model(probe.read("proc/device-tree/model") or "")
    cpu = parse_cpuinfo(probe.read("proc/cpuinfo") or "")
    osname = parse_os_release(probe.read("etc/os-release") or "")
    machine = probe.machine or os.uname().machine
    return (f"edgeface {__version__} doctor on {board or cpu['board_model'] or cpu['cpu_model']}"
            f", {osname} ({machine})")
