"""`edgeface doctor` names the install route of the Raspberry Pi OS release it runs on:
Bookworm (apt numpy 1.24: the `pi` extra, numpy below 2) or Trixie (apt numpy 2.2: the `cpu`
extra; "numpy<2" would break picamera2 there). The Trixie board is the Pi 5 fixture with
Trixie's /etc/os-release and apt numpy 2.2.4."""

from __future__ import annotations

import shutil

import pytest
from system_boards import (
    APT,
    BOARDS,
    SITE,
    board_probe,
    fake_cv2,
    fake_numpy,
    fake_ort,
    fake_picamera2,
    venv,
)
from test_doctor import doctor

from edgeface.system.pi_os import pi_route

TRIXIE_OS_RELEASE = """PRETTY_NAME="Debian GNU/Linux 13 (trixie)"
NAME="Debian GNU/Linux"
VERSION_ID="13"
VERSION="13 (trixie)"
VERSION_CODENAME=trixie
DEBIAN_VERSION_FULL=13.1
ID=debian
HOME_URL="https://www.debian.org/"
"""
BOOKWORM_OS_RELEASE = (BOARDS / "raspberry-pi-5" / "etc" / "os-release").read_text()
# What simplejpeg, built against numpy 2.x, says when a pip numpy 1.x is imported instead.
ABI2_UNDER_NUMPY1 = ImportError("numpy.core.multiarray failed to import")


@pytest.mark.parametrize("os_release, system_numpy, release, extra", [
    (BOOKWORM_OS_RELEASE, "1.24.2", "Bookworm", "pi"),
    (TRIXIE_OS_RELEASE, "2.2.4", "Trixie", "cpu"),
    (TRIXIE_OS_RELEASE, None, "Trixie", "cpu"),  # no apt numpy yet: the release decides
    (BOOKWORM_OS_RELEASE, None, "Bookworm", "pi"),
    ("ID=debian\nVERSION_ID=\"14\"\nVERSION_CODENAME=forky\n", None, "Forky", "cpu"),
    (BOOKWORM_OS_RELEASE, "2.2.4", "Bookworm", "cpu"),  # apt's numpy decides over the name
    (None, None, "unknown release", "pi"),  # the pi extra's OpenCV 4.11 takes numpy 1 and 2
])
def test_route_per_release(os_release, system_numpy, release, extra):
    r = pi_route(os_release, system_numpy)
    assert (r.release, r.extra) == (release, extra)
    assert r.install == f"pip install 'edgeface[{extra}]' -c numpy-pin.txt"


@pytest.fixture
def trixie_pi5(tmp_path):
    """The Pi 5 fixture tree, on Raspberry Pi OS Trixie: its os-release and apt's numpy 2.2.4."""
    root = tmp_path / "root"
    shutil.copytree(BOARDS / "raspberry-pi-5", root, symlinks=True)
    (root / "etc" / "os-release").write_text(TRIXIE_OS_RELEASE)
    site = root / "usr/lib/python3/dist-packages"
    shutil.rmtree(site / "numpy-1.24.2.egg-info")
    (site / "numpy-2.2.4.egg-info").mkdir()
    (site / "numpy-2.2.4.egg-info" / "PKG-INFO").write_text("Name: numpy\nVersion: 2.2.4\n")
    return root


def probe_on(root, modules, tmp_path, **kw):
    p = board_probe("raspberry-pi-5", modules, venv(tmp_path, True, "3.13.5"), **kw)
    p.root = root
    return p


def test_trixie_in_order_names_its_route(trixie_pi5, tmp_path):
    p = probe_on(trixie_pi5, {"numpy": fake_numpy("2.2.4"), "cv2": fake_cv2("4.12.0"),
                              "onnxruntime": fake_ort("1.25.0"), "picamera2": fake_picamera2(),
                              "libcamera": object()}, tmp_path,
                 dists={"opencv-python-headless": "4.12.0.88", "picamera2": "0.3.30"})
    f = doctor(p)
    assert f["numpy"].status == "ok"
    assert f["numpy"].summary == ("2.2.4 (apt), system numpy 2.2.4 "
                                  "(Raspberry Pi OS Trixie: edgeface[cpu])")
    assert f["numpy"].details["route"]["install"] == "pip install 'edgeface[cpu]' -c numpy-pin.txt"
    assert f["opencv"].status == "ok" and f["picamera2"].status == "ok"


def test_trixie_pip_numpy1_is_fixed_by_removing_it_not_by_numpy_below_2(trixie_pi5, tmp_path):
    p = probe_on(trixie_pi5, {"numpy": fake_numpy("1.26.4", SITE), "cv2": fake_cv2("4.11.0"),
                              "onnxruntime": fake_ort("1.25.0"),
                              "picamera2": ABI2_UNDER_NUMPY1}, tmp_path,
                 dists={"opencv-python-headless": "4.11.0.86"})
    f = doctor(p)
    assert f["numpy"].status == "warn"
    assert "shadows the system's numpy 2.2.4" in f["numpy"].summary
    assert "compiled against ABI version 0x2000000" in f["numpy"].summary
    assert f["numpy"].fix.startswith("pip uninstall -y numpy, to use apt's numpy 2.2.4 "
                                     "(Raspberry Pi OS Trixie")
    assert f["picamera2"].status == "warn"
    assert f["picamera2"].fix.startswith("in the venv: pip uninstall -y numpy")
    assert "numpy 2.x on Raspberry Pi OS Trixie" in f["picamera2"].fix
    for fix in (f["numpy"].fix, f["picamera2"].fix):
        assert "pip install 'numpy<" not in fix and "<4.12" not in fix
        assert "edgeface[cpu]" in fix


def test_trixie_missing_runtime_names_the_cpu_extra(trixie_pi5, tmp_path):
    f = doctor(probe_on(trixie_pi5, {"numpy": fake_numpy("2.2.4")}, tmp_path))
    for check in ("opencv", "onnxruntime"):
        assert f[check].status == "fail"
        assert f[check].fix.startswith("pip install 'edgeface[cpu]' -c numpy-pin.txt "
                                       "(Raspberry Pi OS Trixie")
    assert "apt's numpy 2.2.4 works with current OpenCV wheels" in f["opencv"].fix


def test_bookworm_missing_runtime_names_the_pi_extra(tmp_path):
    p = board_probe("raspberry-pi-5", {"numpy": fake_numpy("1.24.2", APT)},
                    venv(tmp_path, True))
    f = doctor(p)
    assert f["opencv"].fix == ("pip install 'edgeface[pi]' -c numpy-pin.txt (Raspberry Pi OS "
                               "Bookworm: its OpenCV is below 4.12: 4.12+ needs numpy 2, which "
                               "breaks apt's picamera2)")
    assert f["onnxruntime"].fix == ("pip install 'edgeface[pi]' -c numpy-pin.txt "
                                    "(Raspberry Pi OS Bookworm)")
