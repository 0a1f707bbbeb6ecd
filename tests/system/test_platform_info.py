"""Platform fingerprint: parsers run on fixture copies of /proc, the device tree and /etc.

The fixtures under tests/system/fixtures/platforms/ were written from the documented formats
of a Jetson Orin Nano (JetPack 6.0), a Raspberry Pi 4 and a Raspberry Pi 5 (64-bit OS), plus
this x86 VM. Each board's AT_HWCAP is the integer its /proc/cpuinfo Features line prints.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeface.system.platform import (
    board_slug,
    describe,
    fingerprint,
    isa_features,
    parse_cpuinfo,
    parse_device_tree_model,
    parse_nv_tegra_release,
    parse_os_release,
    platform_slug,
    system_fingerprint,
)

FIXTURES = Path(__file__).parent / "fixtures" / "platforms"

EXPECTED = {
    "jetson-orin-nano": dict(
        board="NVIDIA Jetson Orin Nano Developer Kit", cpu_model="ARM Cortex-A78AE",
        processors=6, dotprod=True, os="Ubuntu 22.04.4 LTS", l4t="36.3.0", jetpack="6.0",
        tensorrt="8.6.2", governor="schedutil", hwcap=0xCE119FFF,
        power_mode={"id": 0, "name": "15W", "source": "status"}),
    "raspberry-pi-4": dict(
        board="Raspberry Pi 4 Model B Rev 1.4", cpu_model="ARM Cortex-A72", processors=4,
        dotprod=False, os="Debian GNU/Linux 12 (bookworm)", l4t=None, jetpack=None,
        tensorrt=None, governor=None, hwcap=0x887, power_mode=None),
    "raspberry-pi-5": dict(
        board="Raspberry Pi 5 Model B Rev 1.0", cpu_model="ARM Cortex-A76", processors=4,
        dotprod=True, os="Debian GNU/Linux 12 (bookworm)", l4t=None, jetpack=None,
        tensorrt=None, governor="ondemand", hwcap=0x119FFF, power_mode=None),
}


@pytest.mark.parametrize("auxv", [False, True], ids=["cpuinfo", "auxv"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_boards(name, auxv):
    exp = EXPECTED[name]
    fp = system_fingerprint(FIXTURES / name, machine="aarch64", cores=exp["processors"],
                            hwcaps=(exp["hwcap"], 0) if auxv else None)
    assert fp["isa_source"] == ("auxv" if auxv else "cpuinfo")
    if auxv:  # the vector decodes to exactly the names the board's kernel prints
        assert set(fp["cpu_features"]) == set(parse_cpuinfo(
            (FIXTURES / name / "proc" / "cpuinfo").read_text())["flags"])
        assert fp["hwcaps"] == [hex(exp["hwcap"]), "0x0"]
    assert fp["power_mode"] == exp["power_mode"]
    assert fp["slug"] == name
    assert fp["board"] == exp["board"]
    assert fp["cpu_model"] == exp["cpu_model"]
    assert fp["cpu_processors"] == exp["processors"]
    assert fp["isa"]["neon"] is True
    assert fp["isa"]["neon_dotprod"] is exp["dotprod"]
    assert not fp["isa"]["avx2"] and not fp["isa"]["avx512_vnni"]
    assert fp["os"] == exp["os"]
    assert fp["l4t"] == exp["l4t"]
    assert fp["jetpack"] == exp["jetpack"]
    assert fp["tensorrt"] == exp["tensorrt"]
    assert fp["cpu_governor"] == exp["governor"]


def test_device_tree_model_is_nul_terminated_and_stripped():
    raw = (FIXTURES / "raspberry-pi-5" / "proc" / "device-tree" / "model").read_bytes()
    assert raw.endswith(b"\x00")
    assert parse_device_tree_model(raw) == "Raspberry Pi 5 Model B Rev 1.0"
    assert parse_device_tree_model("NVIDIA Orin Nano Developer Kit\x00") == \
        "NVIDIA Orin Nano Developer Kit"


def test_board_from_cpuinfo_when_no_device_tree(tmp_path):
    """Raspberry Pi kernels also name the board in /proc/cpuinfo ("Model : ...")."""
    (tmp_path / "proc").mkdir()
    src = FIXTURES / "raspberry-pi-4" / "proc" / "cpuinfo"
    (tmp_path / "proc" / "cpuinfo").write_text(src.read_text())
    fp = system_fingerprint(tmp_path, machine="aarch64", cores=4)
    assert fp["board"] == "Raspberry Pi 4 Model B Rev 1.4"
    assert fp["slug"] == "raspberry-pi-4"


X86_CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 154
model name\t: 12th Gen Intel(R) Core(TM) i7-1260P
flags\t\t: fpu vme sse4_1 sse4_2 avx avx2 fma avx_vnni
processor\t: 1
model\t\t: 154
model name\t: 12th Gen Intel(R) Core(TM) i7-1260P
flags\t\t: fpu vme sse4_1 sse4_2 avx avx2 fma avx_vnni
"""


def test_x86_cpuinfo_numeric_model_is_not_a_board():
    cpu = parse_cpuinfo(X86_CPUINFO)
    assert cpu["cpu_model"] == "12th Gen Intel(R) Core(TM) i7-1260P"
    assert cpu["processors"] == 2
    assert cpu["board_model"] is None  # "model : 154" is the CPU model number
    isa = isa_features(cpu["flags"])
    assert isa["avx2"] and isa["avx_vnni"] and not isa["avx512_vnni"] and not isa["neon"]
    fp = {"board": None, "machine": "x86_64", "cpu_model": cpu["cpu_model"], "cores": 16}
    assert platform_slug(fp) == "x86-64-12th-gen-intel-core-i7-1260p-16c"


def test_armv7_neon_flag():
    cpu = parse_cpuinfo("processor\t: 0\nmodel name\t: ARMv7 Processor rev 3 (v7l)\n"
                        "Features\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4\n"
                        "CPU implementer\t: 0x41\nCPU part\t: 0xd08\n")
    assert cpu["cpu_model"] == "ARM Cortex-A72"
    assert isa_features(cpu["flags"])["neon"]


@pytest.mark.parametrize("text, l4t, jetpack", [
    ("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, "
     "DATE: Tue Aug  1 19:57:35 UTC 2023", "35.4.1", "5.1.2"),
    ("# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64", "32.7.1",
     "4.6.1"),
    ("# R99 (release), REVISION: 1.0, GCID: 1, BOARD: generic", "99.1.0", None),  # never guess
])
def test_nv_tegra_release(text, l4t, jetpack):
    out = parse_nv_tegra_release(text)
    assert out["l4t"] == l4t
    assert out["jetpack"] == jetpack


def test_nv_tegra_release_garbage():
    assert parse_nv_tegra_release("not a release file") == {}


@pytest.mark.parametrize("model, slug", [
    ("NVIDIA Orin Nano Developer Kit", "jetson-orin-nano"),  # JetPack 5 wording
    ("NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super", "jetson-orin-nano"),
    ("NVIDIA Jetson AGX Orin Developer Kit", "jetson-agx-orin"),
    ("Raspberry Pi Compute Module 4 Rev 1.0", "raspberry-pi-compute-module-4"),
    ("Raspberry Pi 5 Model B Rev 1.0", "raspberry-pi-5"),
    (None, None),
])
def test_board_slug(model, slug):
    assert board_slug(model) == slug


def test_os_release_fallback():
    assert parse_os_release('NAME="Alpine"\nVERSION="3.19"\n') == "Alpine 3.19"
    assert parse_os_release("") == "unknown"


def test_missing_files_give_unknowns(tmp_path):
    fp = system_fingerprint(tmp_path, machine="riscv64", cores=1)
    assert fp["board"] is None and fp["cpu_model"] == "unknown"
    assert fp["slug"] == "riscv64-unknown-1c"
    assert not any(fp["isa"].values())


def test_fingerprint_of_this_host():
    import onnxruntime

    fp = fingerprint()
    assert fp["onnxruntime"] == onnxruntime.__version__
    assert "CPUExecutionProvider" in fp["onnxruntime_providers"]
    assert fp["cores"] >= 1 and fp["slug"]
    line = describe(fp)
    assert f"onnxruntime {onnxruntime.__version__}" in line


def test_describe_jetson():
    fp = system_fingerprint(FIXTURES / "jetson-orin-nano", machine="aarch64", cores=6)
    fp["onnxruntime"] = "1.18.0"
    line = describe(fp)
    assert "NVIDIA Jetson Orin Nano Developer Kit" in line
    assert "JetPack 6.0 (L4T 36.3.0)" in line and "TensorRT 8.6.2" in line
    assert "neon_dotprod" in line


def test_an_emulator_cpuinfo_does_not_decide_the_isa(tmp_path):
    """qemu-user on an x86 host shows the host's /proc/cpuinfo (AVX flags, no Features) to an
    aarch64 process; its auxiliary vector says what it may really execute."""
    (tmp_path / "proc").mkdir()
    x86 = (FIXTURES / "x86-64-vm" / "proc" / "cpuinfo").read_text()
    (tmp_path / "proc" / "cpuinfo").write_text(x86)
    fp = system_fingerprint(tmp_path, machine="aarch64", cores=4, hwcaps=(0x119FFB, 0))
    assert fp["isa_source"] == "auxv"
    assert fp["isa"]["neon"] and fp["isa"]["neon_dotprod"] and not fp["isa"]["neon_i8mm"]
    assert not fp["isa"]["avx2"] and not fp["isa"]["avx512f"]
    # without the vector the x86 flags would have been believed
    assert system_fingerprint(tmp_path, machine="aarch64", cores=4)["isa"]["avx2"]


def test_this_x86_vm_fixture():
    fp = system_fingerprint(FIXTURES / "x86-64-vm", machine="x86_64", cores=2,
                            hwcaps=(2, 2))  # glibc's x86 AT_HWCAP marker: ignored on x86
    assert fp["slug"] == "x86-64-amd-epyc-2c"
    assert fp["isa_source"] == "cpuinfo" and fp["cpu_features"] is None
    assert fp["isa"]["avx2"] and fp["isa"]["avx512_vnni"] and not fp["isa"]["neon"]
    assert fp["cpu_governor"] is None and fp["power_mode"] is None


def test_power_mode_name_from_nvpmodel_conf():
    fp = system_fingerprint(FIXTURES / "jetson-orin-nano", machine="aarch64", cores=6)
    assert fp["nvpmodel"] == "pmode:0000 fmode:quiet"  # the raw status line, as before
    assert fp["power_mode"]["name"] == "15W"
    assert "power mode 15W" in describe({**fp, "onnxruntime": "1.18.0"})


def test_the_live_fingerprint_reads_this_process_vector():
    fp = system_fingerprint()
    if fp["machine"] in ("aarch64", "armv7l", "armv8l"):
        assert fp["isa_source"] == "auxv" and fp["cpu_features"]
    else:
        assert fp["isa_source"] == "cpuinfo"
