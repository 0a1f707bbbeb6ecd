"""Doctor checks of the machine: CPU features, cameras, the memory cgroup, CPU clocks and the
Jetson power mode, SoC temperature and throttling, free memory and disk."""

from __future__ import annotations

import os
from typing import Any

from edgeface.common.registry import Registry
from edgeface.system import cameras as _cameras
from edgeface.system import thermal as _thermal
from edgeface.system.cgroups import memory_controller
from edgeface.system.doctor import Check, Finding, Probe
from edgeface.system.hwcaps import read_hwcaps
from edgeface.system.nvpmodel import power_mode
from edgeface.system.platform import cpu_features, isa_features, parse_cpuinfo

VIDEO_GROUP_FIX = "sudo usermod -aG video $USER, then log out and in again"
COOLING_FIX = ("cool the SoC: a heatsink and fan (Raspberry Pi 5: the Active Cooler), free "
               "airflow, no closed case")
POWER_FIX = ("use a supply that holds 5.1 V under load (Pi 4: 3 A, Pi 5: 5 A, the official "
             "one) and a short, thick cable")
HOT_C = 80.0  # Raspberry Pi 4/5 firmware starts capping the ARM clock here
LOW_MEMORY = 256 << 20
LOW_DISK = 1 << 30


def check_cpu(p: Probe) -> Finding:
    machine = p.machine or os.uname().machine
    hwcaps = p.hwcaps if p.hwcaps is not None or not p.live else read_hwcaps()
    cpu = parse_cpuinfo(p.read("proc/cpuinfo") or "")
    features = cpu_features(machine, hwcaps)
    isa = isa_features(features if features is not None else cpu["flags"])
    have = [k for k, v in isa.items() if v]
    source = "the auxiliary vector" if features is not None else "/proc/cpuinfo"
    summary = (f"{cpu['cpu_model']} ({machine}), {cpu['processors']} processors, "
               f"{' '.join(have) or 'no SIMD features known'} (from {source})")
    details: dict[str, Any] = {"machine": machine, "isa": isa, "isa_source": source,
                               "cpu_features": features}
    listed = set(cpu["flags"])
    if features is not None and listed and listed != set(features):
        only_proc = sorted(listed - set(features))
        only_aux = sorted(set(features) - listed)
        details.update(cpuinfo_only=only_proc, auxv_only=only_aux)
        summary += ("; /proc/cpuinfo disagrees (emulator or container?): "
                    + ", ".join(x for x in (f"+{' +'.join(only_proc)}" if only_proc else "",
                                            f"-{' -'.join(only_aux)}" if only_aux else "")
                                if x))
        return Finding("cpu", "info", summary, None, details)
    return Finding("cpu", "ok", summary, None, details)


def check_cameras(p: Probe) -> Finding:
    nodes = _cameras.video_nodes(p.root, p.query)
    cams = [n for n in nodes if n.kind == "camera"]
    csi = [n for n in nodes if n.kind == "csi"]
    denied = [n for n in nodes if n.error and "ermission" in n.error]
    parts = [("V4L2 " + ", ".join(f"{n.node} '{n.card or n.name}' ({n.driver})" for n in cams))
             if cams else "no V4L2 camera"]
    details: dict[str, Any] = {"nodes": [vars(n) for n in nodes]}
    lib: list[dict[str, Any]] = []
    if p.board() == "raspberry-pi":
        mod, err = p.load("picamera2")
        if mod is not None:
            try:
                lib = _cameras.libcamera_cameras(lambda _name: mod)
            except Exception as exc:
                err = f"{type(exc).__name__}: {exc}"
        if lib:
            parts.append("libcamera " + ", ".join(
                f"{c['model']} (picamera {i})" for i, c in enumerate(lib)))
        else:
            parts.append("libcamera: " + ("no camera" if err is None else "not asked (picamera2 "
                                          "not importable)"))
        details["libcamera"] = lib
    if csi:
        parts.append(f"CSI receivers {' '.join(n.node for n in csi)} (use "
                     f"{'picamera' if p.board() == 'raspberry-pi' else 'csi'})")
    ignored = len(nodes) - len(cams) - len(csi)
    if ignored:
        parts.append(f"{ignored} ISP/codec/metadata node{'s' * (ignored != 1)} ignored")
    summary = "; ".join(parts)
    if denied:
        return Finding("cameras", "warn", summary + f"; cannot open {denied[0].node}: "
                       "permission denied", VIDEO_GROUP_FIX, details)
    found = cams or lib or (csi and p.board() == "jetson")  # a Jetson's VI node is its camera
    return Finding("cameras", "ok" if found else "info", summary, None, details)


def check_memory_cgroup(p: Probe) -> Finding:
    mc = memory_controller(p.root)
    details = {"enabled": mc.enabled, "evidence": mc.evidence}
    if mc.enabled:
        return Finding("memory-cgroup", "ok", f"enabled ({mc.evidence}): systemd's "
                       "MemoryMax= is enforced", None, details)
    if mc.enabled is False:
        return Finding("memory-cgroup", "warn", f"disabled ({mc.evidence}): MemoryMax= is not "
                       "enforced (the runtime's own memory_limit still is)", mc.fix, details)
    return Finding("memory-cgroup", "info", f"unknown: {mc.evidence}", None, details)


def check_cpufreq(p: Probe) -> Finding:
    gov = (p.read("sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
           or p.read("sys/devices/system/cpu/cpufreq/policy0/scaling_governor") or "").strip()
    cur, top = (_khz(p, f"sys/devices/system/cpu/cpufreq/policy0/{f}")
                for f in ("scaling_cur_freq", "cpuinfo_max_freq"))
    mode = power_mode(p.root, p.run, query=bool(p.commands)) if p.board() == "jetson" else None
    details = {"governor": gov or None, "cur_mhz": cur, "max_mhz": top, "power_mode": mode}
    parts = [f"governor {gov}"] if gov else []
    if cur and top:
        parts.append(f"{cur}/{top} MHz")
    if mode:
        parts.append(f"power mode {mode.get('name') or '?'} (id {mode.get('id')})")
    summary = ", ".join(parts) or "no cpufreq (a VM, or clocks set by firmware)"
    if gov == "powersave":
        return Finding("cpufreq", "warn", summary + ": the CPU stays at its lowest clock",
                       "echo schedutil | sudo tee /sys/devices/system/cpu/cpufreq/policy*/"
                       "scaling_governor (performance for benchmarks)", details)
    return Finding("cpufreq", "ok" if parts else "info", summary, None, details)


def check_thermal(p: Probe) -> Finding:
    st = _thermal.read(p.root, run=p.run, command=bool(p.commands))
    flags, soc = st.throttled, st.soc_c
    details = st.as_dict()
    zones = ", ".join(f"{k} {v:.1f}" for k, v in list(st.temps_c.items())[:4])
    temp = f"SoC {soc:.1f} °C ({zones})" if soc is not None else "no thermal zones"
    source = f" ({flags['source']})" if flags and flags.get("source") else ""
    summary = f"{temp}; throttling: {_thermal.describe_flags(flags)}{source}"
    bad = [k for k in ("under_voltage", "freq_capped", "throttled", "soft_temp_limit")
           if flags and (flags.get(k) or flags.get(k + "_occurred"))]
    if flags and flags.get("oc_events"):
        bad.append("oc_events")
    if bad:
        fix = POWER_FIX if bad == ["under_voltage"] else (
            COOLING_FIX if "under_voltage" not in bad else f"{POWER_FIX}; {COOLING_FIX}")
        return Finding("thermal", "warn", summary + ": a throttled board runs the model up to "
                       "2x slower", fix, details)
    if soc is not None and soc >= HOT_C:
        return Finding("thermal", "warn", summary + ": hot enough to be capped soon",
                       COOLING_FIX, details)
    if p.board() == "raspberry-pi" and flags is None:
        return Finding("thermal", "info", summary, "for the firmware's throttling flags: "
                       + VIDEO_GROUP_FIX + " (vcgencmd needs /dev/vcio)", details)
    return Finding("thermal", "ok" if soc is not None else "info", summary, None, details)


def check_memory(p: Probe) -> Finding:
    info = {}
    for line in (p.read("proc/meminfo") or "").splitlines():
        key, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            info[key] = int(value.split()[0]) * 1024
    avail, total = info.get("MemAvailable", info.get("MemFree")), info.get("MemTotal")
    details = {"available_bytes": avail, "total_bytes": total}
    if avail is None or total is None:
        return Finding("memory", "info", "/proc/meminfo not readable", None, details)
    summary = f"{_size(avail)} available of {_size(total)}"
    if avail < LOW_MEMORY:
        return Finding("memory", "warn", summary + ": edgeface needs about 200 MB",
                       "stop other programs, or add swap", details)
    return Finding("memory", "ok", summary, None, details)


def check_disk(p: Probe) -> Finding:
    usage = p.disk_usage(str(p.root))
    summary = f"{_size(usage.free)} free of {_size(usage.total)} on /"
    details = {"free_bytes": usage.free, "total_bytes": usage.total}
    if usage.free < LOW_DISK:
        return Finding("disk", "warn", summary + ": detections and logs need room",
                       "sudo apt clean; sudo journalctl --vacuum-size=100M; move videos "
                       "off the device", details)
    return Finding("disk", "ok", summary, None, details)


def _size(n: int) -> str:
    return f"{n / (1 << 30):.1f} GB" if n >= 1 << 30 else f"{n / (1 << 20):.0f} MB"


def _khz(p: Probe, rel: str) -> int | None:
    try:
        return int((p.read(rel) or "").strip()) // 1000
    except ValueError:
        return None


#: The host's checks, in report order.
CHECKS: Registry[Check] = Registry("doctor check")
for _name, _check in (("cpu", check_cpu), ("cameras", check_cameras),
                      ("memory-cgroup", check_memory_cgroup), ("cpufreq", check_cpufreq),
                      ("thermal", check_thermal), ("memory", check_memory),
                      ("disk", check_disk)):
    CHECKS.register(_check, _name)
