#!/usr/bin/env bash
# ARM check: the device runtime on aarch64 (Debian Bookworm under qemu-user), against x86-64.
#
#  1. `edgeface detect` on the shared native images, with the model exported on this host,
#     gives the same faces on aarch64 as on x86-64 (count, boxes within 1 px, scores within
#     1e-3) -- tests/targets/compare_detections.py prints the table.
#  2. The test suite passes there without torch (tests that need torch or onnx skip).
#
# Emulated run times say nothing about ARM speed; nothing here reports them as such.
# Needs root (chroot, mounts, binfmt_misc). See tests/targets/README.md.
set -euo pipefail
CHECK_NAME=test-arm
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/chroot.sh"
source "$(dirname "$0")/lib/stack.sh"
trap chroot_cleanup EXIT
trap 'exit 130' INT TERM

VENV_IN=/opt/edgeface  # the device venv, inside the root
MISMATCHES=()
# Pin the chroot's inference libraries to the host venv's versions (so the comparison is
# x86 vs ARM, not version vs version); EDGEFACE_ARM_PIN_HOST=0 takes the newest instead.
PIN_HOST=${EDGEFACE_ARM_PIN_HOST:-1}
# The runtime suite plus the machine probes (tests/system: ARM hwcaps, cpuinfo) under
# emulation; EDGEFACE_ARM_PYTEST_ARGS=tests runs all of it. The whole torch-free suite took
# ~42 min emulated on a loaded 2-core machine, over CI's budget beside the other rows; it
# runs natively in `make test` and at the JetPack floor in `make test-floor`.
export EDGEFACE_EMU_PYTEST_ARGS=${EDGEFACE_ARM_PYTEST_ARGS:-${EDGEFACE_EMU_PYTEST_ARGS:-$RUNTIME_SUITE tests/system}}
# Detections are compared on each of these emulated CPUs (Pi 4, Pi 5); the suite runs on the
# first. ONNX Runtime picks its kernels by CPU feature, so each is a different code path.
ARM_CPUS=${EDGEFACE_ARM_CPUS:-cortex-a72 cortex-a76}

host_reference() {
    mkdir -p "$OUT_DIR"
    (cd "$SHARED/$IMAGES_REL" && "$HOST_VENV/bin/edgeface" detect . -m "$MODEL" \
        --json "$OUT_DIR/detect-x86_64.json" >"$OUT_DIR/detect-x86_64.log" 2>&1) \
        || { cat "$OUT_DIR/detect-x86_64.log" >&2; die "edgeface detect failed on the host"; }
    log "x86-64: $(wc -l <"$OUT_DIR/detect-x86_64.json") images -> $OUT_DIR/detect-x86_64.json;" \
        "$("$HOST_VENV/bin/python" -c "import numpy, cv2, onnxruntime as o; \
            print('numpy', numpy.__version__, 'opencv', cv2.__version__, 'onnxruntime', o.__version__)")"
}

host_versions() {
    "$HOST_VENV/bin/python" - <<'PY'
from importlib.metadata import version, PackageNotFoundError
for name in ("numpy", "opencv-python-headless", "onnxruntime", "onnx", "pytest"):
    try:
        print(f"{name}=={version(name)}")
    except PackageNotFoundError:
        pass
PY
}

install_runtime() {
    rm -rf "$ROOT/src" && copy_source "$ROOT/src"
    mkdir -p "$ROOT/work"
    cp "$MODEL" "$ROOT/work/model.onnx"
    : >"$ROOT/work/constraints.txt"
    if [[ $PIN_HOST == 1 ]]; then
        host_versions >"$ROOT/work/constraints.txt"
        log "pinned to the host's versions: $(tr '\n' ' ' <"$ROOT/work/constraints.txt")"
    fi
    in_root python3 -m venv "$VENV_IN"
    # Wheels only: a missing aarch64 wheel must fail here, not compile OpenCV for hours.
    # (--no-compile: byte-compiling every file under emulation costs ~20 s; imports compile
    # what they use.)
    in_root sh -c "cd /src && $VENV_IN/bin/pip install -q --only-binary=:all: --no-compile \
        -c /work/constraints.txt '.[cpu]'" \
        || die "pip install '.[cpu]' failed inside the aarch64 root"
    in_root "$VENV_IN/bin/python" -c "import importlib.util as u, sys; \
        sys.exit(u.find_spec('torch') is not None or u.find_spec('onnx') is not None)" \
        || die "torch or onnx is installed in the device venv; the check must run without"
    in_root "$VENV_IN/bin/python" -c "import platform, numpy, cv2, onnxruntime as ort; \
        print('aarch64 venv:', platform.machine(), 'python', platform.python_version(), \
        'numpy', numpy.__version__, 'opencv', cv2.__version__, 'onnxruntime', ort.__version__, \
        ort.get_available_providers())" \
        || die "the runtime libraries do not import on aarch64"
}

# arm_detect CPU: detect on the emulated CPU, then compare with the x86-64 reference.
arm_detect() {
    local cpu=$1 name=detect-aarch64-$1
    use_cpu "$cpu"
    in_root sh -c "cd /shared/$IMAGES_REL && $VENV_IN/bin/edgeface detect . \
        -m /work/model.onnx --json /work/$name.json >/work/$name.log 2>&1" \
        || { cat "$ROOT/work/$name.log" >&2; die "edgeface detect failed on aarch64 ($cpu)"; }
    cp "$ROOT/work/$name.json" "$ROOT/work/$name.log" "$OUT_DIR/"
    # (its per-image latencies are emulated, so they stay in the log and are not printed)
    if ! python3 "$TARGETS_DIR/compare_detections.py" --names "x86_64,$cpu" \
        "$OUT_DIR/detect-x86_64.json" "$OUT_DIR/$name.json"; then
        # carry on (the other CPU and the suite still tell something); fail at the end
        MISMATCHES+=("$cpu")
        log "MISMATCH: aarch64 ($cpu) detections differ from x86-64 (table above)"
    fi
}

# The torch-free suite (lib/stack.sh) on the first CPU. pytest and onnx are installed only
# now, so the detections above came from the plain device install.
arm_tests() {
    use_cpu "${ARM_CPUS%% *}"
    torchfree_suite "$VENV_IN" /work/constraints.txt
}

main() {
    resolve_shared
    need_model
    prepare_root arm
    step "x86-64 reference: edgeface detect" host_reference
    step "aarch64: pip install '.[cpu]' (wheels from PyPI)" install_runtime
    local cpu
    for cpu in $ARM_CPUS; do
        step "aarch64 ($cpu): edgeface detect, compare with x86-64" arm_detect "$cpu"
    done
    step "aarch64: test suite without torch (+ pytest, onnx)" arm_tests
    CURRENT_STEP="compare detections"
    ((${#MISMATCHES[@]} == 0)) \
        || die "aarch64 detections differ from x86-64 on: ${MISMATCHES[*]} (tables above)"
    log "PASS: aarch64 detections match x86-64 and the torch-free suite passes"
}

main "$@"
