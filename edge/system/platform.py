"""Platform fingerprint recorded with every benchmark result.

Everything that decides what a model does on a device: board (Jetson, Raspberry Pi), CPU and
its INT8-relevant ISA features, OS, Python, ONNX Runtime, TensorRT / JetPack versions and
the Jetson power mode. The file parsers take text so that tests run them on fixture copies
of ``/proc``, the device tree and ``/etc`` from boards we do not have; :func:`fingerprint`
reads them below ``root``.

ARM ISA features come from this process's auxiliary vector (:mod:`edgeface.system.hwcaps`),
which is what the inference libraries dispatch on, so the same CPU gives the same record
under an emulator or in a container; ``/proc/cpuinfo`` still gives the CPU's name, and the
flags on x86 (whose AT_HWCAP lacks AVX2/AVX-512/VNNI).
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import Any, Mapping, Optional

from edgeface.system import hwcaps as _hwcaps
from edgeface.system.nvpmodel import power_mode
from edgeface.system.sysfs import read_text

# (implementer, part) from /proc/cpuinfo -> core name; arm64 kernels print no "model name"
# (or a generic "ARMv8 Processor rev N"), so the part number is the only way to know.
ARM_CORES = {
    ("0x41", "0xd03"): "ARM Cortex-A53",
    ("0x41", "0xd04"): "ARM Cortex-A35",
    ("0x41", "0xd05"): "ARM Cortex-A55",
    ("0x41", "0xd07"): "ARM Cortex-A57",
    ("0x41", "0xd08"): "ARM Cortex-A72",
    ("0x41", "0xd09"): "ARM Cortex-A73",
    ("0x41", "0xd0a"): "ARM Cortex-A75",
    ("0x41", "0xd0b"): "ARM Cortex-A76",
    ("0x41", "0xd0c"): "ARM Neoverse-N1",
    ("0x41", "0xd41"): "ARM Cortex-A78",
    ("0x41", "0xd42"): "ARM Cortex-A78AE",
    ("0x41", "0xd4b"): "ARM Cortex-A78C",
    ("0x4e", "0x004"): "NVIDIA Carmel",
    ("0x41", "0xc07"): "ARM Cortex-A7",
}

# L4T release -> JetPack, from NVIDIA's JetPack archive. Unlisted releases stay unknown
# (we record the L4T string, which is exact, and never guess).
L4T_TO_JETPACK = {
    "32.7.1": "4.6.1", "32.7.2": "4.6.2", "32.7.3": "4.6.3", "32.7.4": "4.6.4",
    "32.7.5": "4.6.5", "32.7.6": "4.6.6",
    "35.1.0": "5.0.2", "35.2.1": "5.1", "35.3.1": "5.1.1", "35.4.1": "5.1.2",
    "35.5.0": "5.1.3", "35.6.0": "5.1.4", "35.6.1": "5.1.5",
    "36.2.0": "6.0 DP", "36.3.0": "6.0", "36.4.0": "6.1", "36.4.3": "6.2", "36.4.4": "6.2.1",
}

# ISA features that decide which INT8 / FP16 kernels ONNX Runtime and TensorRT can use.
ISA_FLAGS = {
    "neon": ("asimd", "neon"),  # arm64 calls it asimd, armv7 neon
    "neon_dotprod": ("asimddp",),  # SDOT/UDOT: fast INT8 GEMM on Cortex-A76/A78
    "neon_i8mm": ("i8mm",),
    "neon_fp16": ("asimdhp",),
    "avx2": ("avx2",),
    "avx512f": ("avx512f",),
    "avx512_vnni": ("avx512_vnni",),
    "avx_vnni": ("avx_vnni",),
    "amx_int8": ("amx_int8",),
}


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """``/proc/cpuinfo`` -> cpu model, logical processor count, flags, board hints.

    Handles x86 (``model name``, ``flags``) and ARM (``Features``, ``CPU implementer``/
    ``CPU part``, and the Raspberry Pi kernel's trailing ``Hardware``/``Revision``/``Model``).
    """
    processors = 0
    fields: dict[str, str] = {}
    flags: set[str] = set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        raw_key, value = key.strip(), value.strip()
        key = raw_key.lower()
        if raw_key == "Model":  # Raspberry Pi board line; x86's lower-case "model" is a number
            fields.setdefault("board model", value)
        elif key == "processor":
            processors += 1
        elif key in ("flags", "features"):
            flags.update(value.split())
        else:
            fields.setdefault(key, value)
    name = fields.get("model name", "")
    core = ARM_CORES.get((fields.get("cpu implementer", "").lower(),
                          fields.get("cpu part", "").lower()))
    if core and (not name or name.startswith("ARMv")):
        name = core
    return {
        "cpu_model": name or fields.get("hardware") or "unknown",
        "processors": processors,
        "flags": sorted(flags),
        "hardware": fields.get("hardware"),
        "board_revision": fields.get("revision"),
        "board_model": fields.get("board model"),
    }


def isa_features(flags: set[str] | list[str]) -> dict[str, bool]:
    """The ISA features that matter for INT8/FP16 inference, as booleans."""
    have = set(flags)
    return {name: any(f in have for f in alts) for name, alts in ISA_FLAGS.items()}


def parse_device_tree_model(raw: bytes | str) -> str:
    """``/proc/device-tree/model`` content: a NUL-terminated string."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    return raw.rstrip("\x00").strip()


_TEGRA_RE = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", re.IGNORECASE)


def parse_nv_tegra_release(text: str) -> dict[str, Any]:
    """``/etc/nv_tegra_release`` -> L4T release, board family and the matching JetPack.

    First line, e.g. ``# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, ...``.
    """
    m = _TEGRA_RE.search(text)
    if not m:
        return {}
    revision = m.group(2)
    if revision.count(".") == 0:
        revision += ".0"
    l4t = f"{m.group(1)}.{revision}"
    board = re.search(r"BOARD:\s*([\w.-]+)", text)
    return {"l4t": l4t, "jetpack": L4T_TO_JETPACK.get(l4t),
            "tegra_board": board.group(1) if board else None}


def parse_os_release(text: str) -> str:
    """``/etc/os-release`` -> its PRETTY_NAME (or NAME VERSION)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"').strip("'")
    return values.get("PRETTY_NAME") or " ".join(
        v for v in (values.get("NAME"), values.get("VERSION")) if v) or "unknown"


def parse_meminfo_total_mb(text: str) -> int | None:
    m = re.search(r"^MemTotal:\s*(\d+)\s*kB", text, re.MULTILINE)
    return int(m.group(1)) // 1024 if m else None


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def board_slug(board: str | None) -> str | None:
    """Stable short name for a board: ``raspberry-pi-5``, ``jetson-orin-nano``, ..."""
    if not board:
        return None
    s = board
    s = re.sub(r"\s+Rev\s+[\w.]+$", "", s)  # "Raspberry Pi 4 Model B Rev 1.4"
    s = re.sub(r"\s+Model\s+[A-Z]\b.*$", "", s)
    s = re.sub(r"\b(Developer Kit|Dev Kit|Engineering Reference.*)$", "", s, flags=re.I)
    s = re.sub(r"^NVIDIA\s+", "", s)
    slug = slugify(s)
    if slug.startswith(("orin", "xavier", "nano", "agx", "tx2")):  # "NVIDIA Orin Nano ..."
        slug = "jetson-" + slug
    return slug


def platform_slug(fp: Mapping[str, Any]) -> str:
    """The key results are grouped by: the board when there is one, else arch + CPU + cores."""
    slug = board_slug(fp.get("board"))
    if slug:
        return slug
    cpu = re.sub(r"\(r\)|\(tm\)|\bcpu\b|@.*$|\d+-core processor", "", fp.get("cpu_model", ""),
                 flags=re.I)
    return f"{slugify(fp.get('machine', 'unknown'))}-{slugify(cpu)}-{fp.get('cores', 0)}c"


def _read(root: Path, rel: str) -> Optional[str]:
    return read_text(root / rel)


def cpu_features(machine: str, hwcaps: Optional[tuple[int, int]]) -> Optional[list[str]]:
    """Feature names from (AT_HWCAP, AT_HWCAP2) on ARM; None where they are not decoded
    (x86, or an empty vector: then ``/proc/cpuinfo`` is the source)."""
    arch = _hwcaps.hwcap_arch(machine)
    if arch is None or not hwcaps or not hwcaps[0]:
        return None
    return _hwcaps.decode(hwcaps[0], hwcaps[1], arch)


def system_fingerprint(root: str | os.PathLike = "/", machine: str | None = None,
                       cores: int | None = None,
                       hwcaps: Optional[tuple[int, int]] = None) -> dict[str, Any]:
    """Board, CPU, ISA, OS and Jetson software from the files below ``root``.

    ``machine``, ``cores`` and ``hwcaps`` (AT_HWCAP, AT_HWCAP2) default to this process's
    (``platform.machine()``, the CPUs it may use, its auxiliary vector) when ``root`` is
    "/"; tests pass them with a fixture root.
    """
    root = Path(root)
    live = root.resolve() == Path("/")
    machine = machine or platform.machine()
    if hwcaps is None and live:
        hwcaps = _hwcaps.read_hwcaps()
    cpu = parse_cpuinfo(_read(root, "proc/cpuinfo") or "")
    features = cpu_features(machine, hwcaps)
    try:
        dt: Optional[bytes] = (root / "proc/device-tree/model").read_bytes()
    except OSError:
        dt = None
    board = parse_device_tree_model(dt) if dt else cpu["board_model"]
    tegra_text = _read(root, "etc/nv_tegra_release")
    tegra = parse_nv_tegra_release(tegra_text) if tegra_text else {}
    if cores is None:
        from edgeface.system.cpu import usable_cores

        cores = usable_cores()
    fp: dict[str, Any] = {
        "board": board or None,
        "machine": machine,
        "cpu_model": cpu["cpu_model"],
        "cores": cores,
        "cpu_processors": cpu["processors"],
        "isa": isa_features(features if features is not None else cpu["flags"]),
        "isa_source": "auxv" if features is not None else "cpuinfo",
        "cpu_features": features,
        "hwcaps": [hex(v) for v in hwcaps] if features is not None and hwcaps else None,
        "os": parse_os_release(_read(root, "etc/os-release") or ""),
        "memory_total_mb": parse_meminfo_total_mb(_read(root, "proc/meminfo") or ""),
        "cpu_governor": (_read(root, "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
                         or "").strip() or None,
        "l4t": tegra.get("l4t"),
        "jetpack": tegra.get("jetpack"),
        "nvpmodel": (_read(root, "var/lib/nvpmodel/status") or "").strip() or None,
        "power_mode": power_mode(root, query=live) if tegra else None,
        "tensorrt": tensorrt_from_libs(root),
    }
    fp["slug"] = platform_slug(fp)
    return fp


def tensorrt_from_libs(root: Path) -> str | None:
    """TensorRT version from the libnvinfer soname (JetPack installs it without Python)."""
    best = None
    for libdir in ("usr/lib/aarch64-linux-gnu", "usr/lib/x86_64-linux-gnu", "usr/lib"):
        d = root / libdir
        if not d.is_dir():
            continue
        for p in d.glob("libnvinfer.so.*"):
            version = p.name[len("libnvinfer.so."):]
            if re.fullmatch(r"\d+(\.\d+)+", version) and (
                    best is None or _vkey(version) > _vkey(best)):
                best = version
    return best


def _vkey(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def software_fingerprint() -> dict[str, Any]:
    """Python, ONNX Runtime (version, providers), and TensorRT's Python bindings if present."""
    import importlib.util

    import onnxruntime as ort

    out: dict[str, Any] = {
        "python": platform.python_version(),
        "kernel": platform.release(),
        "onnxruntime": ort.__version__,
        "onnxruntime_providers": list(ort.get_available_providers()),
    }
    from edgeface import __version__

    out["edgeface"] = __version__
    if importlib.util.find_spec("tensorrt") is not None:
        try:
            import tensorrt

            out["tensorrt_python"] = tensorrt.__version__
        except Exception:  # a broken install must not stop a benchmark
            out["tensorrt_python"] = None
    return out


def fingerprint(root: str | os.PathLike = "/") -> dict[str, Any]:
    """Everything recorded with a benchmark result (see benchmarks/README.md)."""
    fp = system_fingerprint(root)
    fp.update(software_fingerprint())
    if not fp.get("tensorrt") and fp.get("tensorrt_python"):
        fp["tensorrt"] = fp["tensorrt_python"]
    return fp


def describe(fp: Mapping[str, Any]) -> str:
    """One line for tables: board or CPU, cores, ISA highlights, OS."""
    isa = [k for k, v in (fp.get("isa") or {}).items() if v and k != "neon_fp16"]
    parts = [fp.get("board") or fp.get("cpu_model") or "unknown"]
    if fp.get("board"):
        parts.append(fp.get("cpu_model", ""))
    parts.append(f"{fp.get('cores')} cores")
    if isa:
        parts.append("+".join(isa))
    if fp.get("jetpack") or fp.get("l4t"):
        parts.append(f"JetPack {fp.get('jetpack') or '?'} (L4T {fp.get('l4t')})")
    mode = fp.get("power_mode") or {}
    if mode.get("name") or mode.get("id") is not None:
        parts.append(f"power mode {mode.get('name') or mode.get('id')}")
    if fp.get("tensorrt"):
        parts.append(f"TensorRT {fp['tensorrt']}")
    parts.append(f"onnxruntime {fp.get('onnxruntime', '?')}")
    return ", ".join(p for p in parts if p)
