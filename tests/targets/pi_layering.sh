#!/usr/bin/env bash
# Raspberry Pi layering check: on Raspberry Pi OS Bookworm's Python layering, the documented
# install `pip install '.[pi]'` in a `--system-site-packages` venv keeps apt's numpy 1.24.
#
# Raspberry Pi OS Bookworm is Debian Bookworm plus Raspberry Pi's archive: python3 3.11 and
# apt's python3-numpy 1.24.2, which python3-picamera2 and python3-simplejpeg are compiled
# against. Users make a venv with --system-site-packages (to import picamera2) and
# pip-install edgeface into it. If pip brings numpy 2.x it shadows apt's numpy, and the
# NumPy-1.x extensions stop importing.
#
# Simulated, on the Pi's architecture (aarch64 Debian Bookworm under qemu-user, emulating
# the Pi 4's Cortex-A72; the same cached root as the ARM check):
#   system   apt's python3-numpy 1.24 + np1ext, a C extension compiled here against its
#            headers (tests/targets/np1ext/np1ext.c) standing in for picamera2/simplejpeg;
#   naive    `pip install '.[cpu]'` in a --system-site-packages venv: must pull numpy 2 and
#            break np1ext -- shown first, so that the check is known to be able to fail;
#   pi       `pip install '.[pi]'` likewise: numpy must stay the system's 1.24 (not a copy),
#            np1ext must import and work, `edgeface detect` must run on the shared images.
# Needs root. See tests/targets/README.md.
set -euo pipefail
CHECK_NAME=test-pi
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/chroot.sh"
trap chroot_cleanup EXIT
trap 'exit 130' INT TERM

SYSTEM_SITE=/usr/lib/python3/dist-packages
NAIVE=/opt/naive     # venv of the naive install
PIVENV=/opt/edgeface # venv of the documented install
SYS_NUMPY=""

# pip_install VENV LOGNAME ARGS...: the user's command, as typed, in /src. Only edgeface's own
# wheel may be built: a Pi user whose install compiles numpy or OpenCV from source is in
# trouble too, so that fails here (and `timeout` stops an emulated build of hours).
pip_install() {
    local venv=$1 logname=$2 built
    shift 2
    in_root sh -c "cd /src && timeout 1200 $venv/bin/pip install --no-compile $*" \
        >"$OUT_DIR/$logname" 2>&1 \
        || { tail -30 "$OUT_DIR/$logname" >&2; return 1; }
    built=$(grep -oE '^ *Building wheel for [^ ]+' "$OUT_DIR/$logname" \
        | awk '{print $4}' | grep -vx edgeface || true)
    [[ -z $built ]] || die "pip built from source: $built (no wheel for this platform; $OUT_DIR/$logname)"
    log "pip: $(grep -h '^Successfully installed' "$OUT_DIR/$logname" || echo 'nothing installed')"
}

system_side() {
    mkdir -p "$OUT_DIR"
    SYS_NUMPY=$(in_root python3 -c "import numpy; print(numpy.__version__)")
    local where
    where=$(in_root python3 -c "import numpy; print(numpy.__file__)")
    [[ $SYS_NUMPY == 1.24.* && $where == $SYSTEM_SITE/* ]] \
        || die "expected apt's numpy 1.24 in $SYSTEM_SITE, found $SYS_NUMPY at $where"
    log "system: python3 $(in_root python3 -c 'import platform; print(platform.python_version())')," \
        "apt numpy $SYS_NUMPY ($where)"
    rm -rf "$ROOT/tmp/np1ext" && cp -r "$TARGETS_DIR/np1ext" "$ROOT/tmp/np1ext"
    in_root sh -ec 'cd /tmp/np1ext
        inc=$(python3 -c "import numpy; print(numpy.get_include())")
        gcc -O2 -Wall -shared -fPIC $(python3-config --includes) -I"$inc" np1ext.c \
            -o '"$SYSTEM_SITE"'/np1ext$(python3-config --extension-suffix)' \
        || die "could not build the NumPy-1.x extension against apt's numpy headers"
    in_root python3 -c "import np1ext, numpy; a = np1ext.frame(4, 5); \
        assert a.shape == (4, 5, 3) and np1ext.checksum(a) == int(a.sum()); \
        print('np1ext built against NumPy ABI 0x%x, C-API 0x%x; imports under numpy' \
              % np1ext.built_against(), numpy.__version__)" \
        || die "np1ext does not work even with the system numpy"
}

# The install that must fail: '.[cpu]' lets pip take opencv-python-headless>=4.12, which
# requires numpy>=2, installed into the venv in front of apt's numpy.
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

documented_install() {
    # The README's commands: pin numpy to the system's (so that no future dependency can
    # pull numpy 2 into the venv), then install the pi extra.
    in_root python3 -m venv --system-site-packages "$PIVENV"
    in_root sh -c "$PIVENV/bin/python -c 'import numpy; print(\"numpy==\" + numpy.__version__)' \
        > /tmp/numpy-pin.txt"
    pip_install "$PIVENV" pip-pi.log "'.[pi]'" -c /tmp/numpy-pin.txt \
        || die "pip install '.[pi]' -c numpy-pin.txt failed"
    in_root "$PIVENV/bin/python" - "$SYS_NUMPY" "$SYSTEM_SITE" <<'PY' || die "layering broken (above)"
import sys, sysconfig
from importlib import metadata

want, system_site = sys.argv[1], sys.argv[2]
import numpy, cv2, onnxruntime, np1ext

venv_site = sysconfig.get_paths()["purelib"]
copies = [d.metadata["Name"] for d in metadata.distributions(path=[venv_site])
          if (d.metadata["Name"] or "").lower() == "numpy"]
print(f"pi venv: numpy {numpy.__version__} ({numpy.__file__}), opencv {cv2.__version__}, "
      f"onnxruntime {onnxruntime.__version__}")
problems = []
if numpy.__version__ != want:
    problems.append(f"numpy is {numpy.__version__}, not the system's {want}")
if not numpy.__file__.startswith(system_site + "/"):
    problems.append(f"numpy is imported from {numpy.__file__}, not {system_site}")
if copies:
    problems.append(f"a numpy distribution was installed into the venv ({venv_site})")
# The stand-in for picamera2/simplejpeg: make a frame, hand it to OpenCV, read one back.
frame = np1ext.frame(48, 64)
grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
if frame.shape != (48, 64, 3) or int(frame[47, 63, 2]) != (47 + 2 * 63 + 6) % 256:
    problems.append("np1ext.frame returned wrong data")
if np1ext.checksum(grey) != int(grey.sum()):
    problems.append("np1ext.checksum disagrees with numpy on an OpenCV result")
for p in problems:
    print("  PROBLEM:", p)
sys.exit(1 if problems else 0)
PY
    log "pi venv keeps apt's numpy $SYS_NUMPY; np1ext imports and exchanges frames with OpenCV"
}

pi_detect() {
    mkdir -p "$ROOT/work" && cp "$MODEL" "$ROOT/work/model.onnx"
    in_root sh -c "cd /shared/$IMAGES_REL && $PIVENV/bin/edgeface detect . \
        -m /work/model.onnx --json /work/detect-pi.json >/work/detect-pi.log 2>&1" \
        || { cat "$ROOT/work/detect-pi.log" >&2; die "edgeface detect failed in the pi venv"; }
    cp "$ROOT/work/detect-pi.json" "$ROOT/work/detect-pi.log" "$OUT_DIR/"
    local n want
    n=$(grep -c '"faces"' "$OUT_DIR/detect-pi.json" || true)
    want=$(find "$SHARED/$IMAGES_REL" -name '*.jpg' | wc -l)
    ((n == want)) || die "detect wrote $n results for $want images (see $OUT_DIR/detect-pi.log)"
    log "edgeface detect ran on $n images in the pi venv"
    # For information (not a pass/fail here: OpenCV 4.11 vs the host's, x86 vs ARM is
    # test-arm's job): how close the Pi install comes to the host.
    (cd "$SHARED/$IMAGES_REL" && "$HOST_VENV/bin/edgeface" detect . -m "$MODEL" \
        --json "$OUT_DIR/detect-x86_64-ref.json" >/dev/null 2>&1) \
        && python3 "$TARGETS_DIR/compare_detections.py" --names x86_64,pi-venv \
            "$OUT_DIR/detect-x86_64-ref.json" "$OUT_DIR/detect-pi.json" \
        || log "(differences above are informational)"
}

main() {
    resolve_shared
    need_model
    prepare_root pi
    step "copy the source tree into the root" copy_source "$ROOT/src"
    step "system: apt numpy 1.24 and a NumPy-1.x C extension" system_side
    step "naive: pip install '.[cpu]' must break it (proves the check can fail)" naive_install_breaks
    step "documented: pip install '.[pi]' keeps apt's numpy" documented_install
    step "pi venv: edgeface detect on the shared images" pi_detect
    log "PASS: '.[pi]' keeps apt's numpy $SYS_NUMPY; the NumPy-1.x extension and edgeface both work"
}

main "$@"
