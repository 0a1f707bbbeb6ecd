#!/usr/bin/env bash
# JetPack-floor check: the device runtime at the oldest library versions a route has, on x86.
#
# JetPack 6 is Ubuntu 22.04: Python 3.10, apt numpy 1.21.5 and python3-opencv 4.5.4, and on
# PyPI the newest onnxruntime for Python 3.10 is 1.23.2 (no DeformConv kernel). Ubuntu's
# archive is not reachable here, so a Python 3.10 venv stands in, at the pip floors:
# numpy 1.21.6 (onnxruntime's own floor), opencv-python-headless 4.5.5.64, onnxruntime 1.23.2,
# from `pip install '.[cpu]'` constrained to them.
#
#  1. The floor venv builds the DCN fast path's sampler (edge/inference/dcn/_sampler.c; pyenv's
#     Python has the headers), and `edgeface run` end to end (tests/targets/run_e2e.py) runs
#     the native-DeformConv export through it on ONNX Runtime 1.23.2, which has no DeformConv
#     kernel: folder -> JSON lines, video -> JSON lines, video -> JSON lines + MJPEG over HTTP;
#     the folder's faces must equal the host venv's (newest wheels) on the same export.
#  2. With EDGEFACE_NO_DCN_EXT=1 (no fast path) `edgeface run` on that export exits 3 with
#     one line naming ONNX Runtime >= 1.25 and the ways out.
#  3. The GridSample export still runs (`edgeface run` on the folder), faces equal the host's.
#  4. The torch-free test suite (tests/targets/no_torch_plugin.py), pytest and onnx added.
#
# No root, no emulation. Wheels are cached in $CACHE/wheels-floor (downloaded once per pin
# set: warm runs need no network). See tests/targets/README.md.
set -euo pipefail
CHECK_NAME=test-floor
source "$(dirname "$0")/lib/common.sh"

MODEL_GS=${MODEL_GS:-$REPO/out/featherface_v1_gridsample.onnx}
FLOOR_DIR=$WORK/floor
FLOOR_OUT=$OUT_DIR/floor
VENV_FLOOR=$FLOOR_DIR/venv
# The floor stack (setup.cfg: "Floors, per route"), and the test tools: onnx 1.17.0 is the
# newest onnx that accepts numpy 1.21 (1.18 asks numpy>=1.22); it only builds test models.
PINS=(numpy==1.21.6 opencv-python-headless==4.5.5.64 onnxruntime==1.23.2)
TOOLS=(pytest==9.2.0 onnx==1.17.0)
# What the base install and the build resolve (newest at download time, then cached).
OTHERS=(click PyYAML tqdm "setuptools>=64" wheel)

# A Python 3.10: $EDGEFACE_FLOOR_PYTHON, else pyenv's newest 3.10, else python3.10 on PATH
# (the first that runs as 3.10: pyenv's shim on PATH fails without a pyenv version set).
find_python() {
    local py candidates=()
    if [[ -n ${EDGEFACE_FLOOR_PYTHON:-} ]]; then
        candidates=("$EDGEFACE_FLOOR_PYTHON")
    else
        mapfile -t candidates < <(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10.*/bin/python3 \
            2>/dev/null | sort -rV)
        candidates+=(python3.10 /usr/bin/python3.10)
    fi
    for py in "${candidates[@]}"; do
        if "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
            FLOOR_PYTHON=$(command -v "$py")
            log "python: $FLOOR_PYTHON ($("$py" -c 'import platform; print(platform.python_version())'))"
            return
        fi
    done
    die "no Python 3.10 among: ${candidates[*]} (set EDGEFACE_FLOOR_PYTHON, or: pyenv install 3.10)"
}

need_models() {
    need_model
    [[ -s $MODEL_GS ]] || die "no GridSample export at $MODEL_GS (run: make export-gridsample)"
}

# host_run MODEL NAME: the host venv's `run` on the shared images: the reference.
host_run() {
    rm -f "$FLOOR_OUT/run-host-$2.jsonl"
    "$HOST_VENV/bin/edgeface" run -m "$1" --source "$SHARED/$IMAGES_REL" \
        --json "$FLOOR_OUT/run-host-$2.jsonl" --status-interval 0 >"$FLOOR_OUT/run-host-$2.log" 2>&1 \
        || { cat "$FLOOR_OUT/run-host-$2.log" >&2; die "edgeface run -m $1 failed in the host venv"; }
}

host_reference() {
    mkdir -p "$FLOOR_OUT"
    host_run "$MODEL" deformconv
    host_run "$MODEL_GS" gridsample
    log "host: $("$HOST_VENV/bin/python" -c "import numpy, cv2, onnxruntime as o; \
        print('numpy', numpy.__version__, 'opencv', cv2.__version__, 'onnxruntime', o.__version__)")"
}

# Download the pinned wheels once per pin set (keyed by pins and Python), then offline.
wheelhouse() {
    local key
    key=$(printf '%s\n' "${PINS[@]}" "${TOOLS[@]}" "${OTHERS[@]}" "$FLOOR_PYTHON" \
        "$("$FLOOR_PYTHON" -c 'import platform; print(platform.python_version())')" \
        | sha256sum | cut -c1-12)
    WHEELS=$CACHE/wheels-floor/py310-$key
    if [[ -f $WHEELS/.complete ]]; then
        log "wheels: cached in $WHEELS ($(ls "$WHEELS" | wc -l) files)"
        return
    fi
    mkdir -p "$WHEELS"
    PIP_CACHE_DIR=$CACHE/pip-floor "$FLOOR_PYTHON" -m pip download -q --only-binary=:all: \
        -d "$WHEELS" "${PINS[@]}" "${TOOLS[@]}" "${OTHERS[@]}" \
        || die "pip download of the floor wheels failed"
    touch "$WHEELS/.complete"
    log "wheels: downloaded $(ls "$WHEELS" | wc -l) files to $WHEELS"
}

floor_venv() {
    rm -rf "$FLOOR_DIR/src" "$VENV_FLOOR"
    copy_source "$FLOOR_DIR/src"
    printf '%s\n' "${PINS[@]}" >"$FLOOR_DIR/constraints.txt"
    "$FLOOR_PYTHON" -m venv "$VENV_FLOOR"
    # --no-compile: byte-compiling every file (sympy, onnxruntime's dependency, has ~1500)
    # took 48 s of a 58 s install here; imports compile what they use.
    local pip=("$VENV_FLOOR/bin/pip" install -q --no-compile --no-index --find-links "$WHEELS")
    # `.[cpu]` on Python 3.10 (its onnxruntime marker), held at the floor by constraints.
    (cd "$FLOOR_DIR/src" && "${pip[@]}" -c "$FLOOR_DIR/constraints.txt" '.[cpu]') \
        || die "pip install '.[cpu]' at the floor versions failed"
    "$VENV_FLOOR/bin/python" -c "import importlib.util as u, sys; \
        sys.exit(u.find_spec('torch') is not None or u.find_spec('onnx') is not None)" \
        || die "torch or onnx is in the floor venv; the runtime must run without"
    "$VENV_FLOOR/bin/python" - "${PINS[@]}" <<'PY' || die "the floor venv is not at the floor"
import sys
from importlib.metadata import version
got = {n: version(n) for n in ("numpy", "opencv-python-headless", "onnxruntime")}
want = dict(p.split("==") for p in sys.argv[1:])
print("floor venv:", ", ".join(f"{n} {v}" for n, v in got.items()))
sys.exit(got != want)
PY
    # The fast path is how ONNX Runtime 1.23.2 runs the default export: its sampler must have
    # been built by `pip install` (setup.py; optional, so a failed build only warns there).
    "$VENV_FLOOR/bin/python" -c "from edgeface.inference import dcn; import sys; \
        print('DCN sampler:', 'built' if dcn.available() else dcn.unavailable_reason()); \
        sys.exit(not dcn.available())" \
        || die "the DCN fast path's sampler was not built in the floor venv (gcc, Python headers?)"
}

# The default (native DeformConv) export on ONNX Runtime 1.23.2, through the fast path.
floor_e2e() {
    rm -rf "$FLOOR_OUT/e2e"
    "$VENV_FLOOR/bin/python" -c "import sys; \
        from edgeface.inference.backends.onnxruntime.runtime import OnnxRuntimeBackend as B; \
        b = B(sys.argv[1]); print('DeformConv runs in:', b.dcn_path); \
        sys.exit(b.dcn_path != 'sampler')" "$MODEL" \
        || die "the floor venv does not run the DeformConv export through the fast path"
    "$VENV_FLOOR/bin/python" "$TARGETS_DIR/run_e2e.py" --model "$MODEL" \
        --images "$SHARED/$IMAGES_REL" --out "$FLOOR_OUT/e2e" \
        || die "edgeface run end to end failed at the floor versions (output above)"
    python3 "$TARGETS_DIR/compare_detections.py" --names "host,floor" \
        "$FLOOR_OUT/run-host-deformconv.jsonl" "$FLOOR_OUT/e2e/folder.jsonl" \
        || die "the floor venv's faces differ from the host venv's (table above)"
}

# Without the fast path (EDGEFACE_NO_DCN_EXT=1), ONNX Runtime 1.23.2 cannot run the
# DeformConv export: exit 3, one line, naming the floor and the ways out.
floor_deformconv() {
    local rc=0 err=$FLOOR_OUT/run-deformconv.err
    EDGEFACE_NO_DCN_EXT=1 "$VENV_FLOOR/bin/edgeface" run -m "$MODEL" \
        --source "$SHARED/$IMAGES_REL" --json /dev/null --status-interval 0 2>"$err" >/dev/null \
        || rc=$?
    cat "$err"
    [[ $rc == 3 ]] || die "run on the DeformConv export without the fast path exited $rc, expected 3"
    [[ $(wc -l <"$err") == 1 ]] || die "run on the DeformConv export printed more than one line"
    local want
    for want in "ONNX Runtime >= 1.25" "pip install 'onnxruntime>=1.25'" \
        "--provider tensorrt" "DCN fast path" "EDGEFACE_NO_DCN_EXT" \
        "edgeface export --dcn gridsample"; do
        grep -qF -- "$want" "$err" || die "the line does not say: $want"
    done
}

# The GridSample export (no DeformConv) on the folder: the faces the host venv finds.
floor_gridsample() {
    local jsonl=$FLOOR_OUT/run-gridsample.jsonl
    rm -f "$jsonl"
    "$VENV_FLOOR/bin/edgeface" run -m "$MODEL_GS" --source "$SHARED/$IMAGES_REL" \
        --json "$jsonl" --status-interval 0 >"$FLOOR_OUT/run-gridsample.log" 2>&1 \
        || { cat "$FLOOR_OUT/run-gridsample.log" >&2; die "run on the GridSample export failed"; }
    python3 "$TARGETS_DIR/compare_detections.py" --names "host,floor" \
        "$FLOOR_OUT/run-host-gridsample.jsonl" "$jsonl" \
        || die "the floor venv's faces (GridSample export) differ from the host venv's"
}

# Runs in `make test` on this machine already, and checks sd_notify timing, which no library
# version changes; a second run only doubles the chance of a miss under load (seen here:
# a 0.1499 s gap against its 0.15 s bound, load average 8 on 2 cores).
FLOOR_DESELECT=(
    tests/runtime/test_notify.py::test_real_run_sends_ready_then_periodic_watchdog_pings
)

floor_suite() {
    local deselect=() t
    for t in "${FLOOR_DESELECT[@]}"; do
        deselect+=(--deselect "$t")
    done
    "$VENV_FLOOR/bin/pip" install -q --no-compile --no-index --find-links "$WHEELS" \
        -c "$FLOOR_DIR/constraints.txt" "${TOOLS[@]}" || die "pip install pytest onnx failed"
    (cd "$FLOOR_DIR/src" && EDGEFACE_SHARED=$SHARED PYTHONPATH=$FLOOR_DIR/src/tests/targets \
        "$VENV_FLOOR/bin/python" -m pytest -q -p no_torch_plugin -p no:cacheprovider \
        "${deselect[@]}" ${EDGEFACE_FLOOR_PYTEST_ARGS:-tests}) \
        || die "the test suite failed at the floor versions (output above)"
}

main() {
    resolve_shared
    need_models
    find_python
    step "host reference: edgeface run (DeformConv and GridSample exports)" host_reference
    step "wheels for the floor venv" wheelhouse
    step "floor venv: pip install '.[cpu]' at numpy 1.21.6, OpenCV 4.5.5.64, ORT 1.23.2" \
        floor_venv
    step "floor: edgeface run end to end (DeformConv export, DCN fast path)" floor_e2e
    step "floor: without the fast path the DeformConv export exits 3 with one line" \
        floor_deformconv
    step "floor: the GridSample export runs" floor_gridsample
    step "floor: test suite without torch" floor_suite
    log "PASS: the main job and the torch-free suite run at the JetPack-6 floor versions"
}

main "$@"
