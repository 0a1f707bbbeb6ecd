#!/usr/bin/env bash
# Raspberry Pi OS layering check: on a Raspberry Pi OS release's Python layering, the
# documented install in a `--system-site-packages` venv keeps apt's numpy, and the main job
# and the torch-free suite run there.
#
#   pi_layering.sh bookworm   (make test-pi)      Python 3.11, apt numpy 1.24.2, '.[pi]'
#   pi_layering.sh trixie     (make test-trixie)  Python 3.13, apt numpy 2.2,    '.[cpu]'
#
# Raspberry Pi OS is Debian plus Raspberry Pi's archive; its python3-picamera2 and
# python3-simplejpeg are compiled against apt's python3-numpy. Users make a venv with
# --system-site-packages (to import picamera2) and pip-install edgeface into it. On Bookworm
# a pip numpy 2.x shadows apt's 1.24 and the NumPy-1.x extensions stop importing; on Trixie
# apt's numpy is 2.x already and the pin file keeps it the one picamera2 was built with.
#
# Simulated, on the Pi's architecture (aarch64 Debian under qemu-user, emulating the Pi 4's
# Cortex-A72; Bookworm's root is the one test-arm uses):
#   system   apt's python3-numpy + np1ext, a C extension compiled here against its headers
#            (tests/targets/np1ext/np1ext.c) standing in for picamera2/simplejpeg;
#   naive    (Bookworm) `pip install '.[cpu]'` in a --system-site-packages venv: must pull
#            numpy 2 and break np1ext -- shown first, so the check is known to be able to fail;
#   route    docs/install.md's route (pin file + the release's extra): numpy must stay the
#            system's (not a copy), np1ext must import and work;
#   job      in that venv: `edgeface detect`, then `edgeface run` end to end (a folder ->
#            JSON lines; a video file -> JSON lines, and MJPEG over HTTP), then the torch-free
#            runtime suite (RUNTIME_SUITE in lib/common.sh; EDGEFACE_PI_PYTEST_ARGS=tests: all).
# Needs root. See tests/targets/README.md.
set -euo pipefail
RELEASE=${1:-bookworm}
case $RELEASE in
    bookworm) CHECK_NAME=test-pi NUMPY_WANT='1.24.*' EXTRA=pi NAIVE_BREAKS=1 ;;
    trixie) CHECK_NAME=test-trixie NUMPY_WANT='2.*' EXTRA=cpu NAIVE_BREAKS=0 ;;
    *) echo "usage: $0 bookworm|trixie" >&2; exit 2 ;;
esac
ROOTFS_SUITE=$RELEASE
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/chroot.sh"
source "$(dirname "$0")/lib/stack.sh"
# The torch-free runtime suite (lib/common.sh), not all of it: test-arm runs the whole.
export EDGEFACE_EMU_PYTEST_ARGS=${EDGEFACE_PI_PYTEST_ARGS:-${EDGEFACE_EMU_PYTEST_ARGS:-$RUNTIME_SUITE}}
trap chroot_cleanup EXIT
trap 'exit 130' INT TERM
OUT_DIR=$OUT_DIR/$CHECK_NAME

NAIVE=/opt/naive     # venv of the naive install
PIVENV=/opt/edgeface # venv of the documented install

# Bookworm's install that must fail: '.[cpu]' lets pip take opencv-python-headless>=4.12,
# which requires numpy>=2, installed into the venv in front of apt's numpy.
naive_install_breaks() {
    in_root python3 -m venv --system-site-packages "$NAIVE"
    pip_install "$NAIVE" pip-naive.log "'.[cpu]'" || die "the naive install did not even install"
    local v out
    v=$(in_root "$NAIVE/bin/python" -c "import numpy; print(numpy.__version__, numpy.__file__)")
    log "naive venv: numpy $v"
    if out=$(in_root "$NAIVE/bin/python" -c "import np1ext" 2>&1); then
        die "np1ext still imports after the naive install (numpy $v): this simulation would" \
            "not catch the break it exists for"
    fi
    printf '%s\n' "$out" >"$OUT_DIR/naive-import-error.txt"
    log "naive install breaks np1ext, as expected; the import says:"
    grep -m3 -E "compiled using NumPy 1.x|ImportError|numpy.core.multiarray failed" \
        "$OUT_DIR/naive-import-error.txt" | sed 's/^/      | /'
    grep -q "NumPy 1.x cannot be run in" "$OUT_DIR/naive-import-error.txt" \
        || die "np1ext failed to import, but not with NumPy's 1.x-vs-2.x message (see $OUT_DIR/naive-import-error.txt)"
}

# docs/install.md's commands: pin numpy to the system's (so that no dependency can replace it),
# then install the release's extra.
documented_install() {
    make_venv "$PIVENV"
    pip_install "$PIVENV" pip-route.log "'.[$EXTRA]'" -c "$PIN" \
        || die "pip install '.[$EXTRA]' -c numpy-pin.txt failed"
    grep -h "Requirement already satisfied: numpy" "$OUT_DIR/pip-route.log" | head -1 \
        | sed 's/^/      | /' || true
    check_layering "$PIVENV" pip
    log "the venv keeps apt's numpy $SYS_NUMPY; np1ext imports and exchanges frames with OpenCV"
}

main() {
    resolve_shared
    need_model
    prepare_root "$RELEASE"
    step "copy the source tree into the root" copy_source "$ROOT/src"
    step "system: apt numpy $NUMPY_WANT" system_numpy "$NUMPY_WANT"
    step "system: an extension compiled against apt's numpy" build_np1ext
    if ((NAIVE_BREAKS)); then
        step "naive: pip install '.[cpu]' must break it (proves the check can fail)" \
            naive_install_breaks
    fi
    step "documented: pip install '.[$EXTRA]' -c numpy-pin.txt keeps apt's numpy" \
        documented_install
    step "venv: edgeface detect on the shared images" venv_detect "$PIVENV"
    step "venv: edgeface run end to end (folder, video file, MJPEG over HTTP)" main_job "$PIVENV"
    step "venv: the torch-free runtime suite (+ pytest, onnx)" torchfree_suite "$PIVENV" "$PIN"
    log "PASS ($RELEASE): '.[$EXTRA]' keeps apt's numpy $SYS_NUMPY; the extension, the main" \
        "job and the torch-free suite work"
}

main "$@"
