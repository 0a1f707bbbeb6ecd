# Steps shared by the emulated stack checks (test-pi, test-trixie; test-arm uses the suite):
# apt's numpy and an extension compiled against it, the user's pip install into a
# --system-site-packages venv, the layering check, and in that venv `edgeface detect`, the
# main job (tests/targets/run_e2e.py) and the torch-free suite. Source after chroot.sh.
# shellcheck shell=bash

SYSTEM_SITE=/usr/lib/python3/dist-packages
PIN=/work/numpy-pin.txt  # numpy==<apt's>, written by write_numpy_pin
SYS_NUMPY=""
# Tests that assert wall-clock bounds or the process's RSS, which emulation cannot honour:
# qemu-user runs the code tens of times slower, and unevenly when the machine is loaded, and
# its translator's memory counts in the RSS the runtime checks. They run natively in
# `make test` and `make test-floor`. Seen failing under qemu (load average 7-11 on 2 cores,
# every one of them in both the Bookworm and the Trixie venv): the watchdog pings < 0.4 s
# apart (0.54 s); 5 frames within 20 s before SIGTERM (2); config files load within 20 s
# (22-25 s); >= 10 camera frames while the API is busy (3); a new MJPEG viewer within its
# wait (503); /healthz within 0.3 s (0.7 s); pings seen before the loop hangs (none);
# webhook write < 0.05 s (0.25 s); `python -c print` within run_quiet's timeout (None); a
# 200 MB --memory-limit (peak RSS 200.3 MB under qemu, exit 5).
EMU_DESELECT=(
    tests/runtime/test_notify.py::test_real_run_sends_ready_then_periodic_watchdog_pings
    tests/cli/test_run_cmd.py::test_sigterm_finishes_the_frame_flushes_and_exits_0
    tests/hostile/test_inputs.py::test_config_files_load_in_bounded_time_and_memory
    tests/runtime/http/test_api_cli.py::test_camera_loop_keeps_running_while_the_api_is_busy
    tests/runtime/http/test_http_limits.py::test_a_stalled_viewer_is_dropped_and_a_new_viewer_gets_the_stream
    tests/runtime/http/test_http_limits.py::test_request_budget_queues_then_refuses_and_never_delays_healthz
    tests/runtime/test_notify.py::test_pings_stop_when_the_loop_hangs
    tests/runtime/sinks/test_webhook.py::test_the_queue_is_bounded_and_write_never_waits
    tests/system/test_probes.py::test_run_quiet_never_raises_and_remembers_missing_tools
    tests/hostile/test_inputs.py::test_the_pixel_budget_follows_the_memory_limit_and_the_flag
)

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

# system_numpy PATTERN: apt's numpy is installed, in the system site, its version matching
# PATTERN (e.g. '1.24.*'); sets SYS_NUMPY.
system_numpy() {
    mkdir -p "$OUT_DIR"
    SYS_NUMPY=$(in_root python3 -c "import numpy; print(numpy.__version__)")
    local where
    where=$(in_root python3 -c "import numpy; print(numpy.__file__)")
    # shellcheck disable=SC2053  # $1 is a glob on purpose
    [[ $SYS_NUMPY == $1 && $where == $SYSTEM_SITE/* ]] \
        || die "expected apt's numpy $1 in $SYSTEM_SITE, found $SYS_NUMPY at $where"
    log "system: python3 $(in_root python3 -c 'import platform; print(platform.python_version())')," \
        "apt numpy $SYS_NUMPY ($where)"
}

# np1ext (np1ext/np1ext.c), compiled with gcc against apt numpy's headers and installed in
# the system site: the stand-in for picamera2/simplejpeg. It must work with that numpy.
build_np1ext() {
    rm -rf "$ROOT/tmp/np1ext" && cp -r "$TARGETS_DIR/np1ext" "$ROOT/tmp/np1ext"
    in_root sh -ec 'cd /tmp/np1ext
        inc=$(python3 -c "import numpy; print(numpy.get_include())")
        gcc -O2 -Wall -shared -fPIC $(python3-config --includes) -I"$inc" np1ext.c \
            -o '"$SYSTEM_SITE"'/np1ext$(python3-config --extension-suffix)' \
        || die "could not build the extension against apt's numpy headers"
    in_root python3 -c "import np1ext, numpy; a = np1ext.frame(4, 5); \
        assert a.shape == (4, 5, 3) and np1ext.checksum(a) == int(a.sum()); \
        print('np1ext built against NumPy ABI 0x%x, C-API 0x%x; imports under numpy' \
              % np1ext.built_against(), numpy.__version__)" \
        || die "np1ext does not work even with the system numpy"
}

# make_venv VENV: `python3 -m venv --system-site-packages VENV` and docs/install.md's pin file
# ($PIN, numpy==<the numpy that venv sees>), so that no dependency can replace apt's numpy.
make_venv() {
    in_root python3 -m venv --system-site-packages "$1"
    mkdir -p "$ROOT/work"
    in_root sh -c "$1/bin/python -c 'import numpy; print(\"numpy==\" + numpy.__version__)' \
        > $PIN"
    log "pin file: $(cat "$ROOT$PIN")"
}

# check_layering VENV OPENCV_FROM: numpy is still apt's $SYS_NUMPY, imported from the system
# site, with no numpy distribution in the venv; np1ext exchanges frames with OpenCV, which
# must come from OPENCV_FROM: "pip" (a wheel in the venv) or "apt" (no OpenCV wheel at all).
check_layering() {
    in_root "$1/bin/python" - "$SYS_NUMPY" "$SYSTEM_SITE" "$2" <<'PY' || die "layering broken (above)"
import sys, sysconfig
from importlib import metadata

want, system_site, cv_from = sys.argv[1:4]
import numpy, cv2, onnxruntime, np1ext

venv_site = sysconfig.get_paths()["purelib"]
in_venv = {(d.metadata["Name"] or "").lower() for d in metadata.distributions(path=[venv_site])}
print(f"venv: numpy {numpy.__version__} ({numpy.__file__}), opencv {cv2.__version__} "
      f"({cv2.__file__}), onnxruntime {onnxruntime.__version__}")
problems = []
if numpy.__version__ != want:
    problems.append(f"numpy is {numpy.__version__}, not the system's {want}")
if not numpy.__file__.startswith(system_site + "/"):
    problems.append(f"numpy is imported from {numpy.__file__}, not {system_site}")
if "numpy" in in_venv:
    problems.append(f"a numpy distribution was installed into the venv ({venv_site})")
cv_wheels = sorted(n for n in in_venv if n.startswith("opencv"))
if cv_from == "apt" and (cv_wheels or not cv2.__file__.startswith(system_site + "/")):
    problems.append(f"OpenCV is not apt's: {cv2.__file__}, wheels in the venv: {cv_wheels}")
if cv_from == "pip" and not cv2.__file__.startswith(venv_site + "/"):
    problems.append(f"OpenCV is not the venv's wheel: {cv2.__file__}")
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
}

# venv_detect VENV: `edgeface detect` on the shared images; its agreement with the x86-64
# reference is printed, not checked (OpenCV/numpy versions differ from the host's; x86 vs
# ARM at equal versions is test-arm's job).
venv_detect() {
    mkdir -p "$ROOT/work" && cp "$MODEL" "$ROOT/work/model.onnx"
    in_root sh -c "cd /shared/$IMAGES_REL && $1/bin/edgeface detect . \
        -m /work/model.onnx --json /work/detect.json >/work/detect.log 2>&1" \
        || { cat "$ROOT/work/detect.log" >&2; die "edgeface detect failed in $1"; }
    cp "$ROOT/work/detect.json" "$ROOT/work/detect.log" "$OUT_DIR/"
    local n want
    n=$(grep -c '"faces"' "$OUT_DIR/detect.json" || true)
    want=$(find "$SHARED/$IMAGES_REL" -name '*.jpg' | wc -l)
    ((n == want)) || die "detect wrote $n results for $want images (see $OUT_DIR/detect.log)"
    log "edgeface detect ran on $n images in $1"
    (cd "$SHARED/$IMAGES_REL" && "$HOST_VENV/bin/edgeface" detect . -m "$MODEL" \
        --json "$OUT_DIR/detect-x86_64-ref.json" >/dev/null 2>&1) \
        && python3 "$TARGETS_DIR/compare_detections.py" --names "x86_64,$CHECK_NAME" \
            "$OUT_DIR/detect-x86_64-ref.json" "$OUT_DIR/detect.json" \
        || log "(differences above are informational)"
}

# main_job VENV: `edgeface run` end to end (tests/targets/run_e2e.py, the script every row
# runs): a folder -> JSON lines and a video; a video file -> JSON lines; the same with
# --http, MJPEG read back, SIGTERM exit 0.
main_job() {
    mkdir -p "$ROOT/work" && cp "$MODEL" "$ROOT/work/model.onnx"
    rm -rf "$ROOT/work/main-job"
    local rc=0
    in_root "$1/bin/python" /src/tests/targets/run_e2e.py --model /work/model.onnx \
        --images "/shared/$IMAGES_REL" --out /work/main-job \
        2>&1 | tee "$OUT_DIR/main-job.log" | sed -u 's/^/      | /' || rc=$?
    mkdir -p "$OUT_DIR/main-job"
    cp "$ROOT"/work/main-job/*.log "$ROOT"/work/main-job/*.jsonl "$OUT_DIR/main-job/" 2>/dev/null \
        || true
    ((rc == 0)) || die "edgeface run failed end to end in $1 (logs: $OUT_DIR/main-job/)"
}

# torchfree_suite VENV CONSTRAINTS: pytest and onnx (the run/service tests build their tiny
# models with it; the runtime never imports it), wheels only and within CONSTRAINTS (the pin
# file keeps apt's numpy), then the suite without torch: -p no_torch_plugin reports tests
# that need workstation-only extras as skipped, naming the package; anything else fails.
torchfree_suite() {
    local venv=$1 constraints=$2 deselect="" t
    in_root "$venv/bin/pip" install -q --only-binary=:all: --no-compile -c "$constraints" \
        'pytest>=7' onnx || die "pip install pytest onnx failed in $venv"
    for t in "${EMU_DESELECT[@]}"; do
        deselect+=" --deselect $t"
    done
    in_root sh -c "cd /src && PYTHONPATH=/src/tests/targets $venv/bin/python -m pytest \
        -q -p no_torch_plugin -p no:cacheprovider$deselect ${EDGEFACE_EMU_PYTEST_ARGS:-tests}" \
        || die "the torch-free suite failed in $venv (output above)"
}
