#!/usr/bin/env bash
# apt-OpenCV check: Debian's python3-opencv (4.6.0) and python3-numpy (1.24.2), and edgeface
# plus onnxruntime pip-installed into a --system-site-packages venv, as a Debian or Ubuntu
# user (and, with Ubuntu 22.04's python3-opencv 4.5.4, a JetPack user) does it. The base
# install `.` requires no OpenCV, so pip must leave apt's cv2 and numpy alone; then
# `edgeface run` runs end to end there (tests/targets/run_e2e.py), and the torch-free runtime
# suite.
#
# Native, on this x86-64 Debian 12 host's /usr/bin/python3 (3.11): the apt OpenCV build and
# its numpy are what this row is about, not the CPU (test-arm and the Pi rows cover aarch64).
# Installs python3-opencv, python3-numpy, python3-venv and python3-dev (so that the DCN fast
# path's sampler builds, as on a device with the docs' build deps) with apt: needs root
# the first time, and Debian 12. See tests/targets/README.md.
set -euo pipefail
CHECK_NAME=test-apt-opencv
source "$(dirname "$0")/lib/common.sh"

SYS_PYTHON=/usr/bin/python3
SYSTEM_SITE=/usr/lib/python3/dist-packages
APT_PKGS=(python3-opencv python3-numpy python3-venv python3-dev)
APT_DIR=$WORK/apt-opencv
VENV=$APT_DIR/venv
PIN=$APT_DIR/numpy-pin.txt
APT_OUT=$OUT_DIR/apt-opencv

apt_stack() {
    local missing=() p
    for p in "${APT_PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        ((EUID == 0)) || die "needs root to apt-get install ${missing[*]}"
        grep -q '^VERSION_CODENAME=bookworm' /etc/os-release \
            || die "this row stands for Debian 12's apt OpenCV; this host is not bookworm"
        log "apt-get install ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
    "$SYS_PYTHON" - "$SYSTEM_SITE" <<'PY' || die "apt's numpy 1.24 and OpenCV 4.x are not the system's"
import platform, sys
import cv2, numpy
site = sys.argv[1]
print(f"system: python3 {platform.python_version()}, apt numpy {numpy.__version__} "
      f"({numpy.__file__}), apt OpenCV {cv2.__version__} ({cv2.__file__})")
sys.exit(not (numpy.__version__.startswith("1.24.") and cv2.__version__.startswith("4.")
              and numpy.__file__.startswith(site + "/") and cv2.__file__.startswith(site + "/")))
PY
}

# The route: a --system-site-packages venv, the pin file (numpy==<apt's>), then the base
# install and onnxruntime at its DeformConv floor. pip may build only edgeface's own wheel.
install_route() {
    rm -rf "$APT_DIR" && mkdir -p "$APT_DIR" "$APT_OUT"
    copy_source "$APT_DIR/src"
    "$SYS_PYTHON" -m venv --system-site-packages "$VENV"
    "$VENV/bin/python" -c 'import numpy; print("numpy==" + numpy.__version__)' >"$PIN"
    log "pin file: $(cat "$PIN")"
    (cd "$APT_DIR/src" && "$VENV/bin/pip" install --no-compile . 'onnxruntime>=1.25' -c "$PIN") \
        >"$APT_OUT/pip-route.log" 2>&1 \
        || { tail -30 "$APT_OUT/pip-route.log" >&2; die "pip install . 'onnxruntime>=1.25' -c numpy-pin.txt failed"; }
    local built
    built=$(grep -oE '^ *Building wheel for [^ ]+' "$APT_OUT/pip-route.log" \
        | awk '{print $4}' | grep -vx edgeface || true)
    [[ -z $built ]] || die "pip built from source: $built ($APT_OUT/pip-route.log)"
    log "pip: $(grep -h '^Successfully installed' "$APT_OUT/pip-route.log")"
    "$VENV/bin/python" - "$SYSTEM_SITE" <<'PY' || die "pip replaced apt's numpy or OpenCV (above)"
import sys, sysconfig
from importlib import metadata
import cv2, numpy, onnxruntime
from edgeface.inference import dcn

site = sys.argv[1]
venv_site = sysconfig.get_paths()["purelib"]
in_venv = sorted((d.metadata["Name"] or "").lower() for d in metadata.distributions(path=[venv_site]))
print(f"venv: numpy {numpy.__version__} ({numpy.__file__}), opencv {cv2.__version__} "
      f"({cv2.__file__}), onnxruntime {onnxruntime.__version__}; DCN sampler: "
      + ("built" if dcn.available() else dcn.unavailable_reason()))
problems = [f"{m.__name__} is imported from {m.__file__}, not {site}"
            for m in (numpy, cv2) if not m.__file__.startswith(site + "/")]
problems += [f"pip installed {n} into the venv" for n in in_venv
             if n == "numpy" or n.startswith("opencv")]
for p in problems:
    print("  PROBLEM:", p)
sys.exit(1 if problems else 0)
PY
}

e2e() {
    rm -rf "$APT_OUT/e2e"
    "$VENV/bin/python" "$TARGETS_DIR/run_e2e.py" --model "$MODEL" --images "$SHARED/$IMAGES_REL" \
        --out "$APT_OUT/e2e" || die "edgeface run failed end to end on apt's OpenCV (above)"
}

# pytest and onnx (wheels only, within the pin file), then the torch-free runtime suite
# (RUNTIME_SUITE, lib/common.sh; EDGEFACE_APT_PYTEST_ARGS=tests runs all of it):
# no_torch_plugin reports tests that need workstation-only extras as skipped, naming the
# package. Native, so nothing is deselected.
suite() {
    "$VENV/bin/pip" install -q --no-compile --only-binary=:all: -c "$PIN" 'pytest>=7' onnx \
        || die "pip install pytest onnx failed"
    (cd "$APT_DIR/src" && EDGEFACE_SHARED=$SHARED PYTHONPATH=$APT_DIR/src/tests/targets \
        "$VENV/bin/python" -m pytest -q -p no_torch_plugin -p no:cacheprovider \
        ${EDGEFACE_APT_PYTEST_ARGS:-$RUNTIME_SUITE}) \
        || die "the torch-free suite failed on apt's OpenCV (output above)"
}

main() {
    resolve_shared
    need_model
    step "system: apt's python3-opencv and python3-numpy" apt_stack
    step "route: pip install . 'onnxruntime>=1.25' -c numpy-pin.txt keeps apt's numpy and OpenCV" \
        install_route
    step "venv: edgeface run end to end (folder, video file, MJPEG over HTTP)" e2e
    step "venv: the torch-free runtime suite (+ pytest, onnx)" suite
    log "PASS: apt's OpenCV and numpy under a pip-installed edgeface run the main job and the" \
        "torch-free runtime suite"
}

main "$@"
