"""Fixture boards for the system probes: a fake root per board, the VIDIOC_QUERYCAP answers its
/dev nodes would give (``querycap.json``), and fake Python modules for the importer.

Board trees (tests/system/fixtures/platforms/): a Raspberry Pi 4 (under-voltage, memory
cgroup off, a USB webcam beside the unicam/ISP/codec nodes), a Raspberry Pi 5 (memory cgroup
re-enabled on cmdline.txt, a CSI camera through libcamera, PiSP nodes), a Jetson Orin Nano
(JetPack 6.0, 15W mode, an IMX219 on the VI) and this x86 VM (no thermal zones, cpufreq or
cameras). Files follow the formats cited in /work/notes/devices.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Optional

from edgeface.system.cameras import V4l2Caps
from edgeface.system.doctor import Probe, PythonFacts

BOARDS = Path(__file__).parent / "fixtures" / "platforms"

# The "Video I/O" block of cv2.getBuildInformation(), as JetPack's and pip's builds print it.
BUILD_INFO = "  Video I/O:\n    GStreamer:                   {}\n    v4l/v4l2:                    YES (linux/videodev2.h)\n"  # noqa: E501
GST_YES, GST_NO = BUILD_INFO.format("YES (1.20.3)"), BUILD_INFO.format("NO")
SITE = "/home/pi/venv/lib/python3.11/site-packages"
APT = "/usr/lib/python3/dist-packages"


def fake_numpy(version: str = "1.24.2", where: str = APT) -> Any:
    return SimpleNamespace(__version__=version, __file__=f"{where}/numpy/__init__.py")


def fake_cv2(version: str = "4.10.0", gstreamer: bool = False, where: str = SITE) -> Any:
    info = GST_YES if gstreamer else GST_NO
    return SimpleNamespace(__version__=version, __file__=f"{where}/cv2/__init__.py",
                           getBuildInformation=lambda: info)


def fake_ort(version: str = "1.25.0", providers: tuple[str, ...] = ("CPUExecutionProvider",)
             ) -> Any:
    return SimpleNamespace(__version__=version, get_available_providers=lambda: list(providers))


def fake_picamera2(cameras: Optional[list[dict[str, Any]]] = None) -> Any:
    found = cameras if cameras is not None else [
        {"Model": "imx708", "Location": 2, "Rotation": 180, "Num": 0,
         "Id": "/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a"}]
    return SimpleNamespace(Picamera2=SimpleNamespace(global_camera_info=lambda: found))


def importer(modules: dict[str, Any]) -> Callable[[str], Any]:
    """``import_module`` over ``modules``: a value that is an exception is raised; a name
    that is absent raises ModuleNotFoundError, as for a module that is not installed."""
    def load(name: str) -> Any:
        got = modules.get(name)
        if isinstance(got, BaseException):
            raise got
        if got is None:
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        return got
    return load


def querycap_for(board: str) -> Callable[[str], V4l2Caps]:
    """The ioctl answers of a fixture board's nodes, keyed by their path below its root."""
    root = BOARDS / board
    table = json.loads((root / "querycap.json").read_text()) \
        if (root / "querycap.json").exists() else {}

    def query(path: str) -> V4l2Caps:
        rel = "/" + str(Path(path).relative_to(root))
        if rel not in table:
            raise OSError(25, "Inappropriate ioctl for device")
        return V4l2Caps(**table[rel])
    return query


def venv(tmp_path: Path, system_site: bool, version: str = "3.11.2") -> PythonFacts:
    prefix = tmp_path / "venv"
    prefix.mkdir(exist_ok=True)
    (prefix / "pyvenv.cfg").write_text(
        f"home = /usr/bin\ninclude-system-site-packages = {str(system_site).lower()}\n"
        f"version = {version}\n")
    return PythonFacts(version, str(prefix), "/usr", str(prefix / "bin" / "python3"))


def plenty_of_disk(_path: str) -> Any:
    """``shutil.disk_usage`` of a 64 GB card with 56 GB free."""
    return SimpleNamespace(total=64 << 30, used=8 << 30, free=56 << 30)


def board_probe(board: str, modules: dict[str, Any], python: PythonFacts, *,
                dists: Optional[dict[str, str]] = None,
                run: Optional[Callable[..., Optional[str]]] = None,
                hwcaps: Optional[tuple[int, int]] = None, machine: str = "aarch64") -> Probe:
    """A Probe over a fixture board: its root, its ioctl answers, the given modules and
    distributions; commands run only when ``run`` is given."""
    return Probe(root=BOARDS / board, importer=importer(modules),
                 version_of=lambda name: (dists or {}).get(name),
                 run=run or (lambda argv, timeout: None), query=querycap_for(board),
                 disk_usage=plenty_of_disk, python=python, machine=machine, hwcaps=hwcaps,
                 commands=run is not None)
