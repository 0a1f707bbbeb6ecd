# Shared by the target checks: paths, logging, one-step-at-a-time runner. Source it.
# shellcheck shell=bash disable=SC2034  # its variables are for the scripts that source it

TARGETS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO=$(cd "$TARGETS_DIR/../.." && pwd)
CACHE=${EDGEFACE_CI_CACHE:-$HOME/.cache/edgeface-ci}
# Chroot roots live outside the repository (git must not see them) and off /tmp (tmpfs on
# some machines; a root with python, gcc and the wheels is ~1 GB).
WORK=${EDGEFACE_CI_WORK:-/var/tmp/edgeface-ci}
OUT_DIR=${EDGEFACE_CI_OUT:-$REPO/out/targets}
HOST_VENV=${HOST_VENV:-$REPO/.venv}
MODEL=${MODEL:-$REPO/out/featherface_v1.onnx}

# The torch-free RUNTIME suite (pytest arguments): the device side (runtime, inference, media,
# common) plus the tests that decode images and run `edgeface run` with a stack's OpenCV and
# numpy. Natively (apt OpenCV venv, --durations=0, load ~6 on 2 cores) these took 82 s of the
# torch-free suite's 278 s (30%); hostile/ alone took 60% (memory cgroups, decompression
# bombs, config loads: not about library versions). test-pi, test-trixie and test-apt-opencv
# run it; test-arm and test-floor run the whole torch-free suite.
RUNTIME_SUITE="tests/runtime tests/inference tests/media tests/common"
RUNTIME_SUITE+=" tests/cli/test_run_cmd.py tests/hostile/test_image_headers.py"

CHECK_NAME=${CHECK_NAME:-check}
CURRENT_STEP=""
_T0=$SECONDS

log() { printf '[%s %4ds] %s\n' "$CHECK_NAME" $((SECONDS - _T0)) "$*"; }
die() { printf '[%s] FAILED in step "%s": %s\n' "$CHECK_NAME" "$CURRENT_STEP" "$*" >&2; exit 1; }

# step NAME FUNCTION [ARGS...]: run one named step, log its start and wall time.
step() {
    local name=$1 t=$SECONDS
    shift
    CURRENT_STEP=$name
    log "== $name"
    "$@"
    log "   $name: done in $((SECONDS - t)) s"
}

_on_err() {
    local rc=$?
    printf '[%s] FAILED in step "%s" (exit %d, line %d of %s)\n' \
        "$CHECK_NAME" "$CURRENT_STEP" "$rc" "${BASH_LINENO[0]}" "${BASH_SOURCE[1]:-?}" >&2
}
trap _on_err ERR
set -o errtrace

# The shared data (read-only): $EDGEFACE_SHARED, else ../shared beside the repository.
resolve_shared() {
    SHARED=${EDGEFACE_SHARED:-$REPO/../shared}
    [[ -d $SHARED ]] || die "shared data not found at $SHARED (set EDGEFACE_SHARED)"
    SHARED=$(cd "$SHARED" && pwd -P)
    IMAGES_REL=datasets/widerface-val-native/images
    [[ -d $SHARED/$IMAGES_REL ]] || die "no $SHARED/$IMAGES_REL"
}

# The host's ONNX export that both platforms run (made by `make export`).
need_model() {
    [[ -s $MODEL ]] || die "no exported model at $MODEL (run: make export)"
    [[ -x $HOST_VENV/bin/edgeface ]] || die "no host venv at $HOST_VENV (run: make setup)"
}

# apt_need CMD PKG [CMD PKG ...]: install the packages whose command is missing.
apt_need() {
    local missing=()
    while (($#)); do
        command -v "$1" >/dev/null 2>&1 || missing+=("$2")
        shift 2
    done
    ((${#missing[@]})) || return 0
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

# The source tree as git would ship it (tracked + untracked-not-ignored files, with the
# working tree's uncommitted edits), copied to $1: never a build inside the worktree.
copy_source() {
    local dest=$1
    mkdir -p "$dest"
    # Files deleted in the working tree are left out; symlinks are kept even when they
    # dangle (the doctor's sysfs fixtures are links into a fake /sys).
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
        | xargs -0 sh -c 'for f; do { [ -e "$f" ] || [ -L "$f" ]; } && printf "%s\0" "$f"; done; exit 0' sh \
        | tar --null -T - -cf -) | tar -xf - -C "$dest"
}
