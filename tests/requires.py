"""What the tests need beyond the base install (``pip install .``): the device runtime's
inference libraries, which a Jetson or Raspberry Pi OS provides itself and elsewhere come
with ``pip install '.[cpu]'``. conftest.py skips the tests that import them where they are
missing; ``needs_runtime`` marks a test that runs ``edgeface`` in a child process, where an
import hook cannot see them."""

from __future__ import annotations

import importlib.util

import pytest

from edgeface.system.onnxruntime_floor import runs_deformconv

RUNTIME_LIBS = {"cv2": "OpenCV", "onnxruntime": "ONNX Runtime"}
MISSING = [m for m in RUNTIME_LIBS if importlib.util.find_spec(m) is None]


def skip_reason(*modules: str) -> str:
    names = ", ".join(f"{RUNTIME_LIBS[m]} ({m})" for m in modules)
    return f"needs {names}: pip install '.[cpu]', or the platform's package"


needs_runtime = pytest.mark.skipif(bool(MISSING), reason=skip_reason(*MISSING))


def _onnxruntime_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return None


_ORT = _onnxruntime_version()
#: ONNX Runtime < 1.25 has no DeformConv kernel (the JetPack-floor venv has 1.23.2).
needs_deformconv = pytest.mark.skipif(
    _ORT is not None and not runs_deformconv(_ORT),
    reason=f"ONNX Runtime {_ORT} has no DeformConv kernel (1.25+ has)")
