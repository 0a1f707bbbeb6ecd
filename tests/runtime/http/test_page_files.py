"""The page ships as package data (edge/http/page.html, login.html), not as a Python string:
found through importlib.resources, and inside a real (non-editable) wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from importlib import resources

import pytest
from runtime_fakes import REPO

from edgeface.http import page

FILES = ("page.html", "login.html")


def test_the_pages_are_package_resources_and_what_the_server_sends():
    for name in FILES:
        res = resources.files("edgeface.http").joinpath(name)
        assert res.is_file(), name
        assert res.read_bytes().startswith(b"<!doctype html>")
    assert page.PAGE == resources.files("edgeface.http").joinpath("page.html").read_bytes()
    assert page.LOGIN == resources.files("edgeface.http").joinpath("login.html").read_bytes()
    # The JS escapes survive the move out of a Python string literal (one backslash).
    assert b"\\u00b7" in page.PAGE and b"\\\\u00b7" not in page.PAGE


@pytest.mark.slow
def test_a_non_editable_wheel_carries_the_pages(tmp_path):
    """``pip install .`` on a device installs a wheel: package data missing from setup.cfg
    is present in the editable checkout and absent there. Built from a copy of the sources,
    so that setuptools' build/ folder lands there, not in the checkout."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for name in ("edge", "models", "quantize", "calibration"):
        shutil.copytree(REPO / name, src / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.onnx"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                           "--no-build-isolation", "-w", str(tmp_path), str(src)],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "EDGEFACE_NO_DCN_EXT": "1"})
    # Without build isolation the venv's own setuptools builds the wheel: an old one needs
    # the `wheel` package for bdist_wheel (the JetPack-floor venv has neither it nor network).
    # A venv without setuptools at all (Trixie's: Python 3.13 venvs ship none) cannot either.
    signs = ("No module named", "invalid command 'bdist_wheel'",
             "Cannot import 'setuptools.build_meta'")
    if done.returncode != 0 and any(s in done.stderr for s in signs):
        why = next(ln.strip() for ln in done.stderr.splitlines() if any(s in ln for s in signs))
        pytest.skip(f"cannot build a wheel here: {why}")
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("edgeface-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in FILES:
        assert f"edgeface/http/{name}" in names
