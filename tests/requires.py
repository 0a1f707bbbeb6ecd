"""Skip markers for tests that need more than the base install (``pip install .``).

A test that runs ``edgeface run``/``detect`` in a child process needs the device runtime's
inference libraries there, which the import hooks in conftest.py cannot see."""

from __future__ import annotations

import importlib.util

import pytest

MISSING = [m for m in ("cv2", "onnxruntime") if importlib.util.find_spec(m) is None]

needs_runtime = pytest.mark.skipif(
    bool(MISSING), reason=f"needs {', '.join(MISSING)}: pip install '.[cpu]', or the "
                          "platform's package")
