"""The device's page (``GET /``, ``page.html``): the live annotated stream, the faces in the
newest frame, recent face events with their crops, FPS, memory and the SoC's temperature, and
a form to try ``POST /detect``; and the page asking for the token (``login.html``).

Each is one self-contained HTML document (inline CSS and JS, no external asset: the device may
have no internet, and a page that loads nothing foreign leaks nothing), shipped as package
data beside this module and read once, at import. The page polls ``/status`` (2 s),
``/detections`` (1 s) and ``/events`` (3 s); with a token required, the session cookie
(:mod:`.auth`) lets its requests in.
"""

from __future__ import annotations

from importlib import resources


def read(name: str) -> bytes:
    """The bytes of ``name``, a file shipped in this package (``pip install .`` included)."""
    return resources.files(__package__).joinpath(name).read_bytes()


PAGE = read("page.html")
LOGIN = read("login.html")
