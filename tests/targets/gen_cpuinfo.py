"""Print an arm64 /proc/cpuinfo for the CPU that this (emulated) process runs on.

Run it inside the aarch64 chroot, under qemu-user. qemu 7.2 (Debian bookworm) passes the
host's /proc/cpuinfo through, so an arm64 program sees an x86 one; ONNX Runtime's cpuinfo
library then finds no ARM processor and `import onnxruntime` segfaults. The check
bind-mounts this script's output over the chroot's /proc/cpuinfo instead.

Nothing is invented: the Features line is the auxiliary vector's HWCAP/HWCAP2 bits, which
is what the emulated CPU reports and what ONNX Runtime's own feature detection reads; MIDR
(implementer, variant, part, revision) and the timer frequency (BogoMIPS) are read with
`mrs`, which the kernel -- and qemu-user -- emulate at EL0 when HWCAP_CPUID is set.
Format as arch/arm64/kernel/cpuinfo.c prints it.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import sys

AT_HWCAP, AT_HWCAP2 = 16, 26
# Bit order of arch/arm64/include/uapi/asm/hwcap.h; names as /proc/cpuinfo prints them.
HWCAP = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm "
         "jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc "
         "flagm ssbs sb paca pacg").split()
HWCAP2 = ("dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm "
          "svef32mm svef64mm svebf16 i8mm bf16 dgh rng bti mte ecv afp rpres mte3 sme "
          "smei16i64 smef64f64 smei8i32 smef16f32 smeb16f32 smef32f32 smefa64 wfxt ebf16 "
          "sveebf16 cssc rprfm sve2p1 sme2 sme2p1 smei16i32 smebi32i32 smeb16b16 smef16f16 "
          "mops hbc").split()
HWCAP_CPUID = 1 << 11
RET = 0xD65F03C0
MRS_X0 = {"midr_el1": 0xD5380000, "cntfrq_el0": 0xD53BE000}


def bits(value: int, names: list[str]) -> list[str]:
    return [name for i, name in enumerate(names) if value >> i & 1]


def read_sysreg(name: str) -> int:
    """Run `mrs x0, <name>; ret` from an executable page and return x0."""
    page = mmap.mmap(-1, mmap.PAGESIZE,
                     prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(MRS_X0[name].to_bytes(4, "little") + RET.to_bytes(4, "little"))
    addr = ctypes.addressof(ctypes.c_char.from_buffer(page))
    return ctypes.CFUNCTYPE(ctypes.c_uint64)(addr)()  # the page lives until exit


def main() -> int:
    if platform.machine() != "aarch64":
        print(f"gen_cpuinfo: this is {platform.machine()}, not aarch64", file=sys.stderr)
        return 2
    libc = ctypes.CDLL(None)
    libc.getauxval.restype = ctypes.c_ulong
    libc.getauxval.argtypes = [ctypes.c_ulong]
    hwcap, hwcap2 = libc.getauxval(AT_HWCAP), libc.getauxval(AT_HWCAP2)
    features = bits(hwcap, HWCAP) + bits(hwcap2, HWCAP2)
    if hwcap & HWCAP_CPUID:
        midr, cntfrq = read_sysreg("midr_el1"), read_sysreg("cntfrq_el0")
    else:  # no ID-register emulation: say so in the file rather than make numbers up
        print("gen_cpuinfo: HWCAP_CPUID not set, MIDR reads as 0", file=sys.stderr)
        midr, cntfrq = 0, 0
    implementer, variant = midr >> 24 & 0xFF, midr >> 20 & 0xF
    part, revision = midr >> 4 & 0xFFF, midr & 0xF
    bogomips = 2 * cntfrq / 1e6  # arm64: the architected timer's rate, as the kernel prints
    ncpu = len(os.sched_getaffinity(0))
    for n in range(ncpu):
        print(f"processor\t: {n}\n"
              f"BogoMIPS\t: {bogomips:.2f}\n"
              f"Features\t: {' '.join(features)}\n"
              f"CPU implementer\t: 0x{implementer:02x}\n"
              f"CPU architecture: 8\n"
              f"CPU variant\t: 0x{variant:x}\n"
              f"CPU part\t: 0x{part:03x}\n"
              f"CPU revision\t: {revision}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
