#!/usr/bin/env bash
# First run on a real Jetson (JetPack 6): one command, a few minutes (mostly the engine
# builds), one output file to send back. The Jetson row of the docs' bench table comes
# from it.
#
# NOT RUN ON A JETSON YET: edgeface is developed on machines without a GPU or TensorRT.
# What has run: shellcheck and --dry-run (tests/bench/test_jetson_first_run.py). Every step
# below records its exit status and the script goes on, so one file shows everything.
#
# On the Jetson, after docs/install.md "On a Jetson" (the venv, numpy 1.x, onnxruntime-gpu, the
# jetson60/jetson61 extra), from a copy of the repository, with two exports made on a host
# that has torch:
#   edgeface export --arch v1 --weights featherface_v1_mobilenet0.25_Final.pth -o v1.onnx
#   edgeface export --arch v1 --weights featherface_v1_mobilenet0.25_Final.pth --dynamic \
#       -o v1.dynamic.onnx
#   PYTHON=~/edgeface/bin/python benchmarks/jetson_first_run.sh --onnx v1.onnx \
#       --dynamic-onnx v1.dynamic.onnx [--images DIR] [--foreign-cache FILE] [--out FILE]
#
# Steps: the device (L4T, JetPack), numpy and cv2 after the install, the CUDA driver and
# cuda-python runtime versions and the device count, `edgeface doctor`, a static and a
# dynamic FP16 engine, a rebuild over a foreign timing cache (--foreign-cache: one from
# another device or TensorRT; default: a truncated copy of this build's), the dynamic engine
# running `detect`, benchmarks/trt_compare.py on both engines, `edgeface bench`.
set -uo pipefail

PY=${PYTHON:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
ONNX="" DYNAMIC="" IMAGES="" FOREIGN="" OUT="" DRY=0

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --onnx) ONNX=$2; shift 2 ;;
        --dynamic-onnx) DYNAMIC=$2; shift 2 ;;
        --images) IMAGES=$2; shift 2 ;;
        --foreign-cache) FOREIGN=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -n|--dry-run) DRY=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "jetson_first_run: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ -z "$ONNX" ] || [ -z "$DYNAMIC" ]; then
    echo "jetson_first_run: give --onnx V1.onnx and --dynamic-onnx V1.dynamic.onnx" >&2
    exit 2
fi
if [ "$DRY" = 0 ]; then
    for f in "$ONNX" "$DYNAMIC" ${FOREIGN:+"$FOREIGN"}; do
        [ -f "$f" ] || { echo "jetson_first_run: $f not found" >&2; exit 2; }
    done
fi
OUT=${OUT:-$HERE/results/jetson_first_run_$(hostname -s 2>/dev/null || echo jetson).txt}
WORK=$(dirname "$OUT")/jetson_first_run.work
mkdir -p "$WORK"
: > "$OUT"
STATUS=()

log() { printf '%s\n' "$*" | tee -a "$OUT"; }

# step NAME COMMAND...: run it (or print it with --dry-run), output and exit status to $OUT.
step() {
    local name=$1 rc
    shift
    log "== $name"
    log "+ $*"
    if [ "$DRY" = 1 ]; then
        STATUS+=("dry-run $name")
        return 0
    fi
    "$@" 2>&1 | tee -a "$OUT"
    rc=${PIPESTATUS[0]}
    log "-> exit $rc"
    STATUS+=("$([ "$rc" = 0 ] && echo ok || echo "FAIL($rc)") $name")
    return "$rc"
}

ENGINE=$WORK/v1.fp16.engine
DYN_ENGINE=$WORK/v1.dynamic.fp16.engine
IMAGE_ARGS=()
[ -n "$IMAGES" ] && IMAGE_ARGS=(--images "$IMAGES")

device_facts() {
    uname -srm
    tr -d '\0' < /proc/device-tree/model 2>/dev/null
    echo
    head -n 1 /etc/nv_tegra_release  # last: its status is the step's (no L4T, no Jetson)
}

# Half of this build's timing cache: TensorRT cannot read it (create_timing_cache -> None).
truncate_cache() {
    local n
    n=$(wc -c < "$1") && head -c $((n / 2)) "$1" > "$1.half" && mv "$1.half" "$1" &&
        echo "timing cache cut to $((n / 2)) of $n bytes"
}

# The rebuild must warn once, start an empty cache, and write the engine, its sidecar and a
# timing cache that TensorRT reads again.
rebuild_checked() {
    local before
    before=$(wc -c < "$ENGINE.timing")
    "$PY" -m edgeface.cli -v quantize --tensorrt --fp16 --force -m "$ONNX" -o "$ENGINE" &&
        test -s "$ENGINE.json" && test "$(wc -c < "$ENGINE.timing")" -gt "$before" &&
        echo "sidecar written; timing cache $before -> $(wc -c < "$ENGINE.timing") bytes"
}

log "edgeface Jetson first run, $(date -u +%Y-%m-%dT%H:%M:%SZ), dry-run $DRY"
step device device_facts
step python-stack "$PY" -c 'import sys, numpy, cv2
print("python", sys.version.split()[0], "numpy", numpy.__version__, numpy.__file__)
print("cv2", cv2.__version__, cv2.__file__)
print([l.strip() for l in cv2.getBuildInformation().splitlines() if "GStreamer" in l])
assert numpy.__version__.split(".")[0] == "1", "numpy 2 shadows apt numpy: docs/install.md#on-a-jetson"'
step cuda "$PY" -c 'from edgeface.inference.backends.tensorrt.cuda import load_cudart
from edgeface.system.jetpack import driver_runtime
cudart = load_cudart()
driver, runtime = driver_runtime(cudart)
err, count = cudart.cudaGetDeviceCount()
print("driver CUDA", driver, "cuda-python runtime", runtime, "devices", count, "error", err)
assert int(err) == 0 and count > 0'
step tensorrt "$PY" -c 'import tensorrt, onnxruntime as o
print("tensorrt", tensorrt.__version__, "onnxruntime", o.__version__, o.get_available_providers())'
step doctor "$PY" -m edgeface.cli doctor
step build-static "$PY" -m edgeface.cli quantize --tensorrt --fp16 --force -m "$ONNX" \
    -o "$ENGINE"
step build-dynamic "$PY" -m edgeface.cli quantize --tensorrt --fp16 --force -m "$DYNAMIC" \
    -o "$DYN_ENGINE"
if [ -n "$FOREIGN" ]; then
    step foreign-cache cp "$FOREIGN" "$ENGINE.timing"
else
    step foreign-cache truncate_cache "$ENGINE.timing"
fi
step rebuild-over-foreign-cache rebuild_checked
IMG_DIR=${IMAGES:-${EDGEFACE_SHARED:-$HERE/../../shared}/datasets/widerface-val-native/images}
IMG=$(find "$IMG_DIR" -name '*.jpg' 2>/dev/null | sort | head -n 1)
step detect-dynamic "$PY" -m edgeface.cli detect -m "$DYN_ENGINE" "${IMG:-$IMG_DIR/missing.jpg}"
step trt-compare-static "$PY" "$HERE/trt_compare.py" --engine "$ENGINE" --onnx "$ONNX" \
    "${IMAGE_ARGS[@]}" -o "$WORK"
step trt-compare-dynamic "$PY" "$HERE/trt_compare.py" --engine "$DYN_ENGINE" \
    --onnx "$DYNAMIC" "${IMAGE_ARGS[@]}" -o "$WORK/dynamic"
step bench "$PY" -m edgeface.cli bench --model "$ENGINE" --model "$ONNX" --runs 200 \
    --output-dir "$WORK"
for f in "$WORK"/trt_compare_*.md "$WORK"/dynamic/trt_compare_*.md "$ENGINE.json"; do
    [ -f "$f" ] && { log "== file $f"; cat "$f" >> "$OUT"; }
done
log "== summary"
for s in "${STATUS[@]}"; do log "$s"; done
log "send back: $OUT"
