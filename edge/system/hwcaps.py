"""ARM CPU features from the auxiliary vector (``getauxval(AT_HWCAP)`` / ``AT_HWCAP2``).

The kernel hands every process the features it may use in its auxiliary vector; that is
what ONNX Runtime and numpy dispatch on. ``/proc/cpuinfo`` is a text rendering of the same
bits for the *host* kernel, which an emulator (qemu-user shows the host's file) or a
container may not show truthfully. Bit numbers are the Linux uapi ones
(``arch/arm64/include/uapi/asm/hwcap.h``, ``arch/arm/include/uapi/asm/hwcap.h``); the names
are the ones ``/proc/cpuinfo`` prints, so both sources feed the same
:func:`edgeface.system.platform.isa_features`.

x86 is not decoded: its AT_HWCAP is only CPUID.1:EDX (no AVX2/AVX-512/VNNI), and glibc's
getauxval even replaces it with its own marker (HWCAP_X86_64), so the ``flags`` of
``/proc/cpuinfo`` stay the source there.
"""

from __future__ import annotations

import ctypes
import struct
from typing import Optional

AT_HWCAP, AT_HWCAP2 = 16, 26  # include/uapi/linux/auxvec.h

# arm64 AT_HWCAP, bit -> name (HWCAP_FP = 1 << 0, ...).
ARM64_HWCAP = (
    "fp", "asimd", "evtstrm", "aes", "pmull", "sha1", "sha2", "crc32", "atomics", "fphp",
    "asimdhp", "cpuid", "asimdrdm", "jscvt", "fcma", "lrcpc", "dcpop", "sha3", "sm3", "sm4",
    "asimddp", "sha512", "sve", "asimdfhm", "dit", "uscat", "ilrcpc", "flagm", "ssbs", "sb",
    "paca", "pacg",
)
# arm64 AT_HWCAP2 (HWCAP2_DCPODP = 1 << 0, ..., HWCAP2_I8MM = 1 << 13, HWCAP2_BF16 = 1 << 14).
ARM64_HWCAP2 = (
    "dcpodp", "sve2", "sveaes", "svepmull", "svebitperm", "svesha3", "svesm4", "flagm2",
    "frint", "svei8mm", "svef32mm", "svef64mm", "svebf16", "i8mm", "bf16", "dgh", "rng", "bti",
    "mte", "ecv", "afp", "rpres", "mte3", "sme",
)
# 32-bit ARM (armv7l userland, e.g. 32-bit Raspberry Pi OS on a 64-bit kernel).
ARM_HWCAP = (
    "swp", "half", "thumb", "26bit", "fastmult", "fpa", "vfp", "edsp", "java", "iwmmxt",
    "crunch", "thumbee", "neon", "vfpv3", "vfpv3d16", "tls", "vfpv4", "idiva", "idivt",
    "vfpd32", "lpae", "evtstrm", "fphp", "asimdhp", "asimddp", "asimdfhm", "asimdbf16", "i8mm",
)
ARM_HWCAP2 = ("aes", "pmull", "sha1", "sha2", "crc32", "sb", "ssbs")

_TABLES = {"arm64": (ARM64_HWCAP, ARM64_HWCAP2), "arm": (ARM_HWCAP, ARM_HWCAP2)}


def hwcap_arch(machine: str, pointer_bits: Optional[int] = None) -> Optional[str]:
    """``arm64``, ``arm`` or None (not decoded) for a kernel ``machine`` and this process.

    A 32-bit userland on a 64-bit kernel reports ``aarch64`` from uname but gets the 32-bit
    bit layout, so the process's own pointer size decides.
    """
    bits = pointer_bits or struct.calcsize("P") * 8
    m = machine.lower()
    if m in ("aarch64", "arm64", "armv8l") or m.startswith("armv"):
        return "arm64" if bits == 64 and m in ("aarch64", "arm64") else "arm"
    return None


def decode(hwcap: int, hwcap2: int = 0, arch: str = "arm64") -> list[str]:
    """Feature names for the set bits, in bit order (AT_HWCAP first, then AT_HWCAP2).

    Bits beyond the tables (features newer than this file) are named ``hwcap_bitN`` /
    ``hwcap2_bitN`` rather than dropped, so a result still shows that something was there.
    """
    names1, names2 = _TABLES[arch]
    out = []
    for value, names, prefix in ((hwcap, names1, "hwcap"), (hwcap2, names2, "hwcap2")):
        bit = 0
        while value >> bit:
            if (value >> bit) & 1:
                out.append(names[bit] if bit < len(names) else f"{prefix}_bit{bit}")
            bit += 1
    return out


def read_hwcaps() -> Optional[tuple[int, int]]:
    """(AT_HWCAP, AT_HWCAP2) of this process, or None where getauxval is unavailable."""
    try:
        libc = ctypes.CDLL(None)
        getauxval = libc.getauxval
    except (OSError, AttributeError):  # not glibc/musl, or not Linux
        return None
    # The default restype is c_int: it would truncate bit 31 (pacg) and everything above.
    getauxval.restype = ctypes.c_ulong
    getauxval.argtypes = [ctypes.c_ulong]
    return int(getauxval(AT_HWCAP)), int(getauxval(AT_HWCAP2))
