# An aarch64 Debian root run under qemu-user (binfmt_misc), cached as a tarball.
# Source after common.sh. Sets ROOT; chroot_cleanup (on EXIT) unmounts whatever was mounted.
# Set before sourcing: ROOTFS_SUITE (bookworm, the default, or trixie).
# shellcheck shell=bash

SUITE=${ROOTFS_SUITE:-bookworm}
DEB_ARCH=arm64
MIRROR=${EDGEFACE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What the target checks need: python3 and venv, apt's numpy (1.24 on bookworm, 2.2 on
# trixie), and a compiler and headers for the extension that stands in for
# picamera2/simplejpeg. The same list for every suite.
ROOTFS_PACKAGES=python3,python3-venv,ca-certificates,python3-numpy,python3-dev,gcc,libc6-dev
ROOTFS_FORMAT=1  # bump when the way the root is built changes
ROOTFS_MAX_AGE_DAYS=${EDGEFACE_ROOTFS_MAX_AGE_DAYS:-30}  # then rebuilt: security updates
QEMU=/usr/bin/qemu-aarch64-static
# The CPU qemu emulates (QEMU_CPU). cortex-a72 is the Raspberry Pi 4's core (MIDR 0x410fd083,
# no dot product), cortex-a76 the Pi 5's (r4p1, dot product and FP16). qemu's default, `max`,
# has SVE/SME/i8mm that no Pi has, and MIDR implementer 0, which ONNX Runtime answers with an
# "Unknown CPU vendor" line on stderr.
EMU_CPU=${EDGEFACE_EMU_CPU:-cortex-a72}
BINFMT=/proc/sys/fs/binfmt_misc

host_tools() {
    apt_need debootstrap debootstrap "$(basename "$QEMU")" qemu-user-static \
        update-binfmts binfmt-support zstd zstd
}

# Make the kernel run aarch64 ELF files through qemu. The F flag opens the interpreter
# now, so it need not exist inside the chroot.
register_binfmt() {
    mountpoint -q "$BINFMT" || mount -t binfmt_misc binfmt_misc "$BINFMT" \
        || die "cannot mount binfmt_misc (needs root, and a kernel that allows it)"
    if [[ ! -e $BINFMT/qemu-aarch64 ]]; then
        update-binfmts --enable qemu-aarch64 2>/dev/null || update-binfmts --import qemu-aarch64 \
            || die "update-binfmts could not register qemu-aarch64"
    fi
    grep -qx enabled "$BINFMT/qemu-aarch64" || echo 1 >"$BINFMT/qemu-aarch64"
    grep -q '^flags: .*F' "$BINFMT/qemu-aarch64" \
        || die "qemu-aarch64 is registered without the F flag; a chroot cannot find its interpreter"
}

rootfs_key() {
    printf '%s\n' "$SUITE" "$DEB_ARCH" "$MIRROR" "$ROOTFS_PACKAGES" "$ROOTFS_FORMAT" \
        | sha256sum | cut -c1-12
}

# A tarball is reused while it exists and is younger than the max age.
fresh_tarball() {
    [[ -s $1 ]] && [[ -z $(find "$1" -mtime +"$ROOTFS_MAX_AGE_DAYS") ]]
}

# Cached root tarball (ROOTFS_TAR): the suite's debootstrapped root.
ensure_rootfs_tarball() {
    local dir=$CACHE/rootfs base
    base=$dir/$SUITE-$DEB_ARCH-$(rootfs_key).tar.zst
    ROOTFS_TAR=$base
    mkdir -p "$dir" "$WORK"
    exec 9>"$dir/.lock"
    flock 9  # one builder at a time; a second check waits and then finds the cache
    # The emulated apt-OpenCV variant (a Bookworm root + python3-opencv, ~400 MB) is gone:
    # test-apt-opencv runs natively now.
    rm -f "$dir"/*+extra-*.tar.zst
    if fresh_tarball "$base"; then
        log "rootfs cache hit: $base"
    else
        build_base_tarball "$base"
    fi
    flock -u 9
}

build_base_tarball() {
    local tar=$1 tmp=$WORK/debootstrap.$$
    log "rootfs cache miss ($tar): debootstrap $SUITE $DEB_ARCH (several minutes)"
    find "$(dirname "$tar")" -name "$SUITE-$DEB_ARCH-*.tar.zst" -delete  # stale keys (and old variants)
    safe_remove_root "$tmp"
    if ! debootstrap --arch="$DEB_ARCH" --variant=minbase --include="$ROOTFS_PACKAGES" \
        "$SUITE" "$tmp" "$MIRROR" >"$WORK/debootstrap-$SUITE.log" 2>&1; then
        tail -20 "$WORK/debootstrap-$SUITE.log" >&2
        die "debootstrap failed (full log: $WORK/debootstrap-$SUITE.log)"
    fi
    chroot "$tmp" apt-get clean
    pack_root "$tmp" "$tar"
}

# Tar root $1 into $2 (zstd) without apt's lists, then remove it.
pack_root() {
    local root=$1 tar=$2
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
    tar --numeric-owner -C "$root" -cf - . | zstd -q -T0 -3 -o "$tar.part"
    mv "$tar.part" "$tar"
    safe_remove_root "$root"
    log "rootfs cached: $(du -h "$tar" | cut -f1) $tar"
}

# Mount points below $1, deepest first (so they unmount in order).
mounts_below() {
    awk -v r="$1" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo \
        | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2-
}

# Unmount everything below $1, ending any process still running inside it first.
unmount_root() {
    local root=$1 proc mnt
    [[ -d $root ]] || return 0
    for proc in /proc/[0-9]*; do
        [[ $(readlink "$proc/root" 2>/dev/null) == "$root" ]] && kill -KILL "${proc#/proc/}" 2>/dev/null
    done
    for mnt in $(mounts_below "$root"); do
        umount "$mnt" 2>/dev/null || umount -l "$mnt" || true
    done
}

# rm -rf a chroot root, but only once nothing is mounted below it (a bind-mounted /dev or
# the shared data must never be deleted through it).
safe_remove_root() {
    local root=$1
    [[ -e $root ]] || return 0
    unmount_root "$root"
    [[ -z $(mounts_below "$root") ]] || die "still mounted below $root: $(mounts_below "$root")"
    rm -rf --one-file-system "$root"
}

# A fresh root from the tarball at $WORK/$1/root: every run starts from the same state.
unpack_root() {
    mkdir -p "$WORK/$1"
    ROOT=$(cd "$WORK/$1" && pwd -P)/root  # canonical: compared with /proc/PID/root
    safe_remove_root "$ROOT"
    mkdir -p "$ROOT"
    zstd -q -d -c "$ROOTFS_TAR" | tar --numeric-owner -C "$ROOT" -xf -
    chroot "$ROOT" /bin/true || die "cannot execute aarch64 binaries in $ROOT (binfmt?)"
    # Network for pip and apt, and this host's CA bundle: the registries may be reached
    # through a TLS proxy that only the host's bundle trusts.
    cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
    cp -L /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/host-ca-bundle.crt"
}

chroot_cleanup() {
    [[ -n ${ROOT:-} ]] && unmount_root "$ROOT"
    return 0
}

# /proc and a minimal /dev (its own tmpfs: nothing of the host's /dev is exposed).
mount_proc_dev() {
    mount -t proc proc "$ROOT/proc"
    mount -t tmpfs -o mode=755,nosuid dev "$ROOT/dev"
    local n name maj min
    for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
        IFS=: read -r name maj min <<<"$n"
        mknod -m 666 "$ROOT/dev/$name" c "$maj" "$min"
    done
    ln -s /proc/self/fd "$ROOT/dev/fd"
    ln -s /proc/self/fd/0 "$ROOT/dev/stdin"
    ln -s /proc/self/fd/1 "$ROOT/dev/stdout"
    ln -s /proc/self/fd/2 "$ROOT/dev/stderr"
    mkdir -p "$ROOT/dev/shm" "$ROOT/dev/pts"
    mount -t tmpfs -o mode=1777,nosuid,nodev shm "$ROOT/dev/shm"
}

# mount_proc_dev, /sys read-only, the shared data read-only at /shared, the pip cache at
# /root/.cache/pip.
mount_root() {
    mount_proc_dev
    mount -t sysfs -o ro sysfs "$ROOT/sys" 2>/dev/null || mount --rbind -o ro /sys "$ROOT/sys"
    mkdir -p "$ROOT/shared" "$CACHE/pip-$DEB_ARCH" "$ROOT/root/.cache/pip"
    mount --bind "$SHARED" "$ROOT/shared"
    mount -o remount,bind,ro "$ROOT/shared"
    mount --bind "$CACHE/pip-$DEB_ARCH" "$ROOT/root/.cache/pip"
}

# qemu 7.2 shows the host's x86 /proc/cpuinfo to arm64 programs; ONNX Runtime's cpuinfo
# then finds no ARM core and `import onnxruntime` segfaults. Put an arm64 one over it,
# made from what the emulated CPU reports (tests/targets/gen_cpuinfo.py).
fake_cpuinfo() {
    cp "$TARGETS_DIR/gen_cpuinfo.py" "$ROOT/tmp/gen_cpuinfo.py"
    : >"$ROOT/etc/edgeface-cpuinfo"
    mount --bind "$ROOT/etc/edgeface-cpuinfo" "$ROOT/proc/cpuinfo"
    use_cpu "$EMU_CPU"
}

# use_cpu NAME: emulate this CPU from now on, and show its cpuinfo (rewritten in place, so
# the bind mount over /proc/cpuinfo follows).
use_cpu() {
    EMU_CPU=$1
    in_root python3 /tmp/gen_cpuinfo.py >"$ROOT/etc/edgeface-cpuinfo" \
        || die "could not read the features of the emulated $EMU_CPU"
    log "emulated CPU $EMU_CPU:" \
        "$(grep -m1 'CPU implementer' "$ROOT/proc/cpuinfo" | tr -d '\t')," \
        "$(grep -m1 'CPU part' "$ROOT/proc/cpuinfo" | tr -d '\t')," \
        "$(grep -c ^processor "$ROOT/proc/cpuinfo") processors," \
        "features: $(grep -m1 Features "$ROOT/proc/cpuinfo" | cut -d: -f2)"
}

# Run a command in the root with a clean environment (nothing of the host's leaks in).
# QEMU_CPU goes in twice: each exec starts a new qemu, which reads it from the environment.
# Run in the background and waited for: bash runs a TERM/INT trap only once a foreground
# command ends, but interrupts `wait` at once, so a cancelled check unmounts right away.
in_root() {
    QEMU_CPU=$EMU_CPU chroot "$ROOT" /usr/bin/env -i QEMU_CPU="$EMU_CPU" \
        HOME=/root LANG=C.UTF-8 TERM=dumb \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        PIP_CERT=/etc/ssl/certs/host-ca-bundle.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
        PIP_ROOT_USER_ACTION=ignore PYTHONUNBUFFERED=1 \
        EDGEFACE_SHARED=/shared "$@" <&0 &
    wait $!
}

# Everything up to a running, mounted root named $1 (arm, pi).
prepare_root() {
    step "host tools (debootstrap, qemu-user-static)" host_tools
    step "binfmt_misc: qemu-aarch64" register_binfmt
    step "aarch64 $SUITE root (cached tarball)" ensure_rootfs_tarball
    step "unpack a fresh root" unpack_root "$1"
    step "mount /proc /dev /sys, shared data, pip cache" mount_root
    step "arm64 /proc/cpuinfo from the emulated CPU" fake_cpuinfo
}
