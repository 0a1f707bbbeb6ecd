"""AT_HWCAP/AT_HWCAP2 decoding with fixed integers: the boards' real vectors and qemu's."""

from __future__ import annotations

import platform
import struct

import pytest

from edgeface.system.hwcaps import (
    ARM64_HWCAP,
    ARM64_HWCAP2,
    decode,
    hwcap_arch,
    read_hwcaps,
)
from edgeface.system.platform import cpu_features, isa_features

# The boards' /proc/cpuinfo Features lines (devices.md §4), and the vectors that print them.
PI4 = "fp asimd evtstrm crc32 cpuid"
PI5 = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc "
       "dcpop asimddp")
ORIN = PI5 + " uscat ilrcpc flagm paca pacg"
VECTORS = {PI4: 0x887, PI5: 0x119FFF, ORIN: 0xCE119FFF}


@pytest.mark.parametrize("features", list(VECTORS))
def test_board_vectors_decode_to_their_cpuinfo_features(features):
    assert decode(VECTORS[features], 0) == features.split()


def test_bit_31_survives():
    """PACG is bit 31: a c_int restype would have made the vector negative (or cut it)."""
    assert decode(1 << 31, 0)[-1] == "pacg"
    assert decode(0xCE119FFF)[-2:] == ["paca", "pacg"]


def test_qemu_cpu_max_reports_features_no_board_has():
    """qemu-user -cpu max (measured in devices.md): SVE, i8mm, bf16, no evtstrm."""
    names = decode(0xECFFFFFB, 0x7F877FFF)
    assert {"sve", "asimddp", "asimdfhm", "sve2", "i8mm", "bf16", "sme"} <= set(names)
    assert "evtstrm" not in names
    isa = isa_features(names)
    assert isa["neon_i8mm"] and isa["neon_dotprod"]


def test_qemu_cortex_a76_is_a_pi5_without_evtstrm():
    assert set(decode(0x119FFB)) == set(PI5.split()) - {"evtstrm"}


def test_hwcap2_bit_numbers():
    assert ARM64_HWCAP2[13] == "i8mm" and ARM64_HWCAP2[14] == "bf16"
    assert ARM64_HWCAP[20] == "asimddp" and ARM64_HWCAP[22] == "sve"
    assert decode(0, 1 << 13) == ["i8mm"]


def test_unknown_bits_are_named_not_dropped():
    assert decode(1 << 40, 1 << 50) == ["hwcap_bit40", "hwcap2_bit50"]


def test_32_bit_arm_layout():
    """32-bit Raspberry Pi OS on a Pi 4: NEON is bit 12, CRC32 is in HWCAP2."""
    hw = sum(1 << b for b in (1, 2, 4, 6, 7, 12, 13, 15, 16, 17, 18, 19, 20, 21))
    names = decode(hw, 1 << 4, "arm")
    assert names == ("half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 "
                     "lpae evtstrm crc32").split()
    assert isa_features(names)["neon"] and not isa_features(names)["neon_dotprod"]


@pytest.mark.parametrize("machine, bits, arch", [
    ("aarch64", 64, "arm64"),
    ("aarch64", 32, "arm"),  # 32-bit userland on a 64-bit kernel
    ("armv7l", 32, "arm"),
    ("armv8l", 32, "arm"),
    ("x86_64", 64, None),
    ("riscv64", 64, None),
])
def test_arch_follows_the_process(machine, bits, arch):
    assert hwcap_arch(machine, bits) == arch


def test_cpu_features_only_for_arm_with_a_vector():
    assert cpu_features("aarch64", (0x887, 0)) == PI4.split()
    assert cpu_features("aarch64", (0, 0)) is None  # no vector: /proc/cpuinfo decides
    assert cpu_features("aarch64", None) is None
    assert cpu_features("x86_64", (0x178BFBFF, 0)) is None  # x86's AT_HWCAP is CPUID.1:EDX


def test_read_hwcaps_matches_proc_self_auxv():
    """getauxval through ctypes gives what the kernel wrote into this process's vector.

    On x86-64, glibc answers AT_HWCAP with its own HWCAP_X86_64 marker instead of the
    kernel's CPUID.1:EDX, which is one more reason x86 features come from /proc/cpuinfo."""
    pairs = dict(struct.iter_unpack("@LL", open("/proc/self/auxv", "rb").read()))
    hw, hw2 = read_hwcaps()
    assert hw2 == pairs.get(26, 0)
    if hwcap_arch(platform.machine()) is not None:
        assert hw == pairs.get(16, 0)
