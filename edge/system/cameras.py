"""Finding the cameras among ``/dev/video*`` (sysfs + ``VIDIOC_QUERYCAP``) and through libcamera.

A Raspberry Pi has a dozen video nodes and most are not cameras: the ISP (``bcm2835-isp``,
``pispbe`` — a Pi 5 ISP node even advertises multiplanar capture), the codecs
(``bcm2835-codec``, ``rpivid``) and the raw CSI receivers (``unicam``, ``rp1-cfe``) that only
libcamera can drive. A USB camera (``uvcvideo``) has a second node that carries metadata and
still lists VIDEO_CAPTURE in ``capabilities``: only ``device_caps`` tells them apart.
So a node is a camera when its ``device_caps`` has video capture, no metadata-only or
memory-to-memory bits, and its driver is not one of the SoC blocks above. Pi CSI cameras are
listed through picamera2/libcamera instead.

``querycap`` and the picamera2 import are injectable so that tests run on fixture trees.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from edgeface.system.sysfs import read_text

CAP_VIDEO_CAPTURE = 0x00000001
CAP_VIDEO_OUTPUT = 0x00000002
CAP_VIDEO_CAPTURE_MPLANE = 0x00001000
CAP_VIDEO_OUTPUT_MPLANE = 0x00002000
CAP_VIDEO_M2M_MPLANE = 0x00004000
CAP_VIDEO_M2M = 0x00008000
CAP_META_CAPTURE = 0x00800000
CAP_DEVICE_CAPS = 0x80000000
# _IOR('V', 0, struct v4l2_capability): the struct is 104 bytes.
VIDIOC_QUERYCAP = 0x80685600
_CAPABILITY = struct.Struct("16s32s32sIII12x")

#: SoC drivers whose nodes are not cameras (or only through libcamera / Argus).
SOC_DRIVERS = {
    "bcm2835-codec": "codec", "rpivid": "codec", "rpi-hevc-dec": "codec",
    "bcm2835-isp": "isp", "pispbe": "isp",
    "unicam": "csi", "rp1-cfe": "csi",  # raw Bayer from a Pi CSI camera: use picamera
    "tegra-video": "csi", "tegra-camrtc-capture-vi": "csi",  # Jetson VI: use csi (Argus)
}


@dataclass(frozen=True)
class V4l2Caps:
    """What ``VIDIOC_QUERYCAP`` says about a node."""

    driver: str
    card: str
    bus_info: str
    capabilities: int
    device_caps: int

    @property
    def node_caps(self) -> int:
        """This node's own caps: ``device_caps`` when the driver fills it, else the device's."""
        return self.device_caps if self.capabilities & CAP_DEVICE_CAPS else self.capabilities


QueryCap = Callable[[str], V4l2Caps]


def querycap(path: str) -> V4l2Caps:
    """``VIDIOC_QUERYCAP`` on a device node; raises OSError (no permission, not V4L2...)."""
    import fcntl

    # V4L2 nodes may be opened by several processes; this does not disturb a running capture.
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    try:
        buf = bytearray(_CAPABILITY.size)
        fcntl.ioctl(fd, VIDIOC_QUERYCAP, buf, True)
    finally:
        os.close(fd)
    driver, card, bus, _version, caps, dcaps = _CAPABILITY.unpack(bytes(buf))
    return V4l2Caps(_cstr(driver), _cstr(card), _cstr(bus), caps, dcaps)


@dataclass(frozen=True)
class VideoNode:
    """One ``/dev/videoN`` and what it is: camera, csi, isp, codec, metadata, output, unknown."""

    node: str  # /dev/videoN as the device sees it
    name: str  # sysfs name: the USB product string, "unicam-image", "pispbe-output0", ...
    driver: Optional[str]
    kind: str
    card: Optional[str] = None
    bus_info: Optional[str] = None
    device_caps: Optional[int] = None
    error: Optional[str] = None  # why QUERYCAP failed (then ``kind`` is from sysfs alone)


def classify(driver: Optional[str], node_caps: Optional[int], index: Optional[int]) -> str:
    """The kind of a node from its driver and caps (``index`` from sysfs when caps are unknown)."""
    if driver in SOC_DRIVERS:
        return SOC_DRIVERS[driver]
    if node_caps is None:  # no permission to open it: sysfs is all we have
        if driver == "uvcvideo":
            return "camera" if index == 0 else "metadata"
        return "unknown"
    if node_caps & (CAP_VIDEO_M2M | CAP_VIDEO_M2M_MPLANE):
        return "codec"
    if node_caps & (CAP_VIDEO_CAPTURE | CAP_VIDEO_CAPTURE_MPLANE):
        return "camera"
    if node_caps & CAP_META_CAPTURE:
        return "metadata"
    if node_caps & (CAP_VIDEO_OUTPUT | CAP_VIDEO_OUTPUT_MPLANE):
        return "output"
    return "unknown"


def video_nodes(root: str | Path = "/", query: QueryCap = querycap) -> list[VideoNode]:
    """Every ``video4linux`` node below ``root``, classified, in number order."""
    root = Path(root)
    out = []
    for d in sorted((root / "sys/class/video4linux").glob("video*"),
                    key=lambda p: int(re.sub(r"\D", "", p.name) or 0)):
        name = (read_text(d / "name") or "").strip()
        try:
            index: Optional[int] = int(read_text(d / "index") or "")
        except ValueError:
            index = None
        sys_driver = _link_name(d / "device" / "driver")
        dev = root / "dev" / d.name
        caps, error = None, None
        if not dev.exists():
            error = "no device node"
        else:
            try:
                caps = query(str(dev))
            except OSError as exc:
                error = exc.strerror or str(exc)
        driver = caps.driver if caps else sys_driver
        out.append(VideoNode(
            node=f"/dev/{d.name}", name=name or d.name, driver=driver,
            kind=classify(driver, caps.node_caps if caps else None, index),
            card=caps.card if caps else None, bus_info=caps.bus_info if caps else None,
            device_caps=caps.node_caps if caps else None, error=error))
    return out


def libcamera_cameras(importer: Callable[[str], Any]) -> list[dict[str, Any]]:
    """Cameras libcamera sees (Pi CSI and USB), through picamera2.

    ``importer`` is :func:`importlib.import_module` or a test's fake; import errors propagate
    so that the caller can say why picamera2 is unusable.
    """
    picamera2 = importer("picamera2")
    info = picamera2.Picamera2.global_camera_info()
    return [{"model": c.get("Model"), "id": c.get("Id"), "num": c.get("Num"),
             "location": c.get("Location")} for c in info]


def _link_name(path: Path) -> Optional[str]:
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")
