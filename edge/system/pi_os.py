"""Raspberry Pi OS releases and the install route each needs (docs/install.md#on-a-raspberry-pi).

What differs between releases is apt's numpy, which python3-picamera2 and
python3-simplejpeg are compiled against, so the venv (``--system-site-packages``) must keep
using it:

- Bookworm (Debian 12): numpy 1.24.2. pip's OpenCV 4.12+ requires numpy 2, so the ``pi``
  extra keeps OpenCV below 4.12 (4.11 works with numpy 1.23.5 to 2.x).
- Trixie (Debian 13): numpy 2.2. Current OpenCV wheels work with it: the ``cpu`` extra.
  A numpy 1.x in the venv breaks picamera2 there, so "numpy<2" is the wrong advice.

Both pin numpy to apt's with ``-c numpy-pin.txt`` so that no dependency replaces it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

# Debian codename -> apt's numpy major. Raspberry Pi OS keeps Debian's codenames and numpy.
NUMPY_MAJOR = {"buster": 1, "bullseye": 1, "bookworm": 1, "trixie": 2}
FIRST_NUMPY2_DEBIAN = 13  # trixie; later releases are assumed to keep numpy 2


def os_release_fields(text: str) -> dict[str, str]:
    """``/etc/os-release`` as a dict (quotes stripped)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.lstrip().startswith("#"):
            values[key.strip()] = value.strip().strip('"').strip("'")
    return values


@dataclass(frozen=True)
class PiRoute:
    """The install route for one Raspberry Pi OS release."""

    release: str  # "Bookworm", "Trixie", or "unknown release"
    numpy_major: int  # of apt's numpy, which picamera2/simplejpeg are built against
    system_numpy: Optional[str]  # apt's numpy version, when installed

    @property
    def extra(self) -> str:
        return "pi" if self.numpy_major < 2 else "cpu"

    @property
    def install(self) -> str:
        """The install page's pip command for this release (after writing numpy-pin.txt)."""
        return f"pip install 'edgeface[{self.extra}]' -c numpy-pin.txt"

    @property
    def name(self) -> str:
        return f"Raspberry Pi OS {self.release}"

    def why_extra(self) -> str:
        """Why this extra, in a few words for a fix line."""
        if self.numpy_major < 2:
            return ("its OpenCV is below 4.12: 4.12+ needs numpy 2, which breaks apt's "
                    "picamera2")
        return f"apt's numpy {self.system_numpy or '2.x'} works with current OpenCV wheels"


def pi_route(os_release: Optional[str], system_numpy: Optional[str]) -> PiRoute:
    """The route for this system: apt's numpy decides; the release names it (and decides
    when apt's numpy is not installed)."""
    fields = os_release_fields(os_release or "")
    codename = fields.get("VERSION_CODENAME", "").lower()
    version = re.match(r"\d+", fields.get("VERSION_ID", ""))
    release = codename.capitalize() or "unknown release"
    if system_numpy and re.match(r"\d+", system_numpy):
        major = int(re.match(r"\d+", system_numpy).group(0))
    elif codename in NUMPY_MAJOR:
        major = NUMPY_MAJOR[codename]
    elif version and fields.get("ID") == "debian":
        major = 2 if int(version.group(0)) >= FIRST_NUMPY2_DEBIAN else 1
    else:
        major = 1  # unknown: the pi extra's OpenCV 4.11 works with numpy 1.23.5 to 2.x
    return PiRoute(release, major, system_numpy)
