#!/usr/bin/env bash
# apt-OpenCV layering check: Debian's python3-opencv (4.6.0) and python3-numpy (1.24.2), and
# edgeface plus onnxruntime pip-installed into a --system-site-packages venv, as a Debian or
# Ubuntu user (and, with Ubuntu 22.04's python3-opencv 4.5.4, a JetPack user) does it. The
# base install `.` requires no OpenCV, so pip must leave apt's cv2 and numpy alone; then
# `edgeface run` runs end to end there, and the torch-free suite.
#
# aarch64 Debian Bookworm under qemu-user (Cortex-A72), test-pi's root plus
# `apt-get install python3-opencv`, cached as its own tarball. Needs root.
# See tests/targets/README.md.
set -euo pipefail
CHECK_NAME=test-apt-opencv
ROOTFS_SUITE=bookworm
ROOTFS_EXTRA=python3-opencv
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/chroot.sh"
source "$(dirname "$0")/lib/stack.sh"
trap chroot_cleanup EXIT
trap 'exit 130' INT TERM
OUT_DIR=$OUT_DIR/$CHECK_NAME

VENV=/opt/edgeface

system_opencv() {
    local v
    v=$(in_root python3 -c "import cv2; print(cv2.__version__, cv2.__file__)") \
        || die "apt's python3-opencv does not import"
    [[ $v == 4.* && ${v#* } == $SYSTEM_SITE/* ]] || die "expected apt's OpenCV 4.x, got $v"
    log "system: apt OpenCV $v"
}

# The route: the pin file, then the base install and onnxruntime at its floor (no OpenCV
# wheel: the base install requires none).
install_route() {
    make_venv "$VENV"
    pip_install "$VENV" pip-route.log . "'onnxruntime>=1.25'" -c "$PIN" \
        || die "pip install . 'onnxruntime>=1.25' -c numpy-pin.txt failed"
    check_layering "$VENV" apt
    log "the venv uses apt's numpy $SYS_NUMPY and apt's OpenCV"
}

main() {
    resolve_shared
    need_model
    prepare_root apt-opencv
    step "copy the source tree into the root" copy_source "$ROOT/src"
    step "system: apt numpy 1.24" system_numpy '1.24.*'
    step "system: apt OpenCV" system_opencv
    step "system: an extension compiled against apt's numpy" build_np1ext
    step "route: pip install . 'onnxruntime>=1.25' -c numpy-pin.txt keeps apt's numpy and OpenCV" \
        install_route
    step "venv: edgeface run end to end (folder, video file, MJPEG over HTTP)" main_job "$VENV"
    step "venv: the torch-free suite (+ pytest, onnx)" torchfree_suite "$VENV" "$PIN"
    log "PASS: apt's OpenCV and numpy $SYS_NUMPY under a pip-installed edgeface run the main" \
        "job and the torch-free suite"
}

main "$@"
