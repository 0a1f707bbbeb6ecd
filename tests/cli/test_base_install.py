"""The base install (no OpenCV, no ONNX Runtime: a device before its stack is in place):
``--help`` of the device commands works, and running one says in one line what to install."""

from __future__ import annotations

import subprocess
import sys

import pytest
from runtime_fakes import REPO

#: A child `edgeface` in which cv2 and onnxruntime cannot be imported, as on a base install,
#: whatever this venv has: a meta-path finder ahead of all others refuses them.
WITHOUT_STACK = """
import sys

class RefuseTheDeviceStackForTests:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("cv2", "onnxruntime"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, RefuseTheDeviceStackForTests())
from edgeface.cli import main
code = main(sys.argv[1:])
leaked = sorted(m for m in ("cv2", "onnxruntime") if m in sys.modules)
assert not leaked, leaked
sys.exit(code)
"""


def edgeface_without_stack(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_STACK, *args], capture_output=True,
                          text=True, timeout=120, cwd=REPO)


@pytest.mark.parametrize("command, text", [
    ("run", "Run the face detector on a camera"),
    ("detect", "Detect faces in IMAGE_OR_DIR"),
    ("serve", "Serve POST /detect"),
])
def test_help_works_without_opencv_and_onnxruntime(command, text):
    p = edgeface_without_stack(command, "--help")
    assert p.returncode == 0, p.stderr
    assert text in p.stdout and "--model" in p.stdout
    assert p.stderr == ""


@pytest.mark.parametrize("args", [
    ["detect", "{tmp}/x.png", "-m", "{tmp}/m.onnx"],
    ["run", "-m", "{tmp}/m.onnx", "--source", "{tmp}/x.png"],
    ["serve", "-m", "{tmp}/m.onnx"],
])
def test_running_without_them_gives_the_one_line_install_hint(args, tmp_path):
    p = edgeface_without_stack(*(a.format(tmp=tmp_path) for a in args))
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("edgeface: error: cv2 is not installed: install the runtime")
    assert "edgeface[cpu]" in lines[0] and "Traceback" not in p.stderr
