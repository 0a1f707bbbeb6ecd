"""SoC temperature and throttling: what makes the same model run at half speed.

:func:`read` returns a :class:`ThermalState` and is cheap enough to call every few seconds
(a few small sysfs reads; on a Raspberry Pi without the firmware sysfs file, one
``vcgencmd`` fork): the runtime can export it on /metrics, ``bench`` records it at the start
and end of a run, ``doctor`` reports it.

* Temperatures: every ``/sys/class/thermal/thermal_zone*/{type,temp}`` (millidegrees C).
  Zone names differ by board: ``cpu-thermal`` (Raspberry Pi), ``cpu-thermal``/``gpu-thermal``/
  ``tj-thermal``/``soc0-thermal`` (Jetson, JetPack 6), ``CPU-therm``/``GPU-therm``/``tj-therm``
  (JetPack 5), ``x86_pkg_temp``/``acpitz`` (PCs).
* Raspberry Pi throttling, in order of preference: the ``rpi_volt`` hwmon's
  ``in0_lcrit_alarm`` (under-voltage, non-deprecated, no fork), the firmware's
  ``get_throttled`` sysfs file (the full bitmask; deprecated, the kernel logs one warning per
  boot on first read), ``vcgencmd get_throttled`` (the full bitmask, needs the ``video``
  group; short timeout). The bitmask's "has occurred" bits are sticky; the hwmon driver
  asks the firmware to clear them on its 2-second poll, so on kernels with that driver they
  may mean "recently" rather than "since boot".
* Jetson: the INA3221 over-current event counters (``hwmon*/oc*_event_cnt``); an OC event
  throttles the SoC hard.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from edgeface.system.commands import Runner, run_quiet
from edgeface.system.sysfs import read_text

#: Pi firmware ``get_throttled`` bits -> names (raspberrypi/documentation, vcgencmd).
THROTTLED_BITS = {
    0: "under_voltage", 1: "freq_capped", 2: "throttled", 3: "soft_temp_limit",
    16: "under_voltage_occurred", 17: "freq_capped_occurred", 18: "throttled_occurred",
    19: "soft_temp_limit_occurred",
}
#: Human words for each flag (the "_occurred" variants add "since boot").
FLAG_WORDS = {"under_voltage": "under-voltage", "freq_capped": "ARM frequency capped",
              "throttled": "throttled", "soft_temp_limit": "soft temperature limit",
              "oc_events": "over-current throttling"}

# Zones that are the SoC (CPU, GPU, junction) on the boards we target, either spelling.
_SOC_ZONE = re.compile(r"(?i)^(cpu|gpu|soc\d?|tj|cv\d|x86_pkg_temp|cpu_thermal)"
                       r"([-_]?therm(al)?)?$")


@dataclass(frozen=True)
class ThermalState:
    """One reading: zone temperatures (°C) and throttling flags (None: nothing reports any)."""

    temps_c: dict[str, float]
    throttled: Optional[dict[str, Any]] = None

    @property
    def soc_c(self) -> Optional[float]:
        """The hottest SoC zone (CPU/GPU/junction), else the hottest zone; None if none."""
        soc = [t for name, t in self.temps_c.items() if _SOC_ZONE.match(name.split("#")[0])]
        pool = soc or list(self.temps_c.values())
        return max(pool) if pool else None

    def metrics(self) -> dict[str, Optional[float]]:
        """Gauges for /metrics; None where the board does not say."""
        t = self.throttled

        def flag(*names: str) -> Optional[int]:
            if t is None or not any(n in t for n in names):
                return None
            return int(any(bool(t.get(n)) for n in names))

        now = ("under_voltage", "freq_capped", "throttled", "soft_temp_limit")
        return {"temperature_celsius": self.soc_c, "throttled_now": flag(*now),
                "throttled_since_boot": flag(*(f"{n}_occurred" for n in now)),
                "under_voltage_now": flag("under_voltage")}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"soc_c", "temps_c", "throttled"}``."""
        return {"soc_c": self.soc_c, "temps_c": dict(self.temps_c),
                "throttled": dict(self.throttled) if self.throttled is not None else None}


def read(root: str | Path = "/", *, run: Runner = run_quiet,
         command: Optional[bool] = None) -> ThermalState:
    """Temperatures and throttling now. ``command``: whether ``vcgencmd`` may run when no
    sysfs file has the full bitmask (default: for the live root "/" only)."""
    root = Path(root)
    if command is None:
        command = root.resolve() == Path("/")
    return ThermalState(zone_temps(root), throttled(root, run=run, command=command))


def zone_temps(root: Path) -> dict[str, float]:
    """Zone type -> °C; a repeated type gets ``#2``, ``#3``; unreadable zones are left out
    (Orin Nano's CV zones read as errors: it has no DLA)."""
    out: dict[str, float] = {}
    zones = sorted((root / "sys/class/thermal").glob("thermal_zone*"),
                   key=lambda p: int(re.sub(r"\D", "", p.name) or 0))
    for zone in zones:
        name = (read_text(zone / "type") or zone.name).strip() or zone.name
        try:
            milli = int((read_text(zone / "temp") or "").strip())
        except ValueError:
            continue
        c = milli / 1000.0
        if not -40.0 <= c <= 150.0:  # disabled zones report -256 °C or similar
            continue
        key, n = name, 2
        while key in out:
            key, n = f"{name}#{n}", n + 1
        out[key] = round(c, 1)
    return out


def decode_throttled(value: int) -> dict[str, Any]:
    """The Pi firmware bitmask -> {flag: bool, ..., "raw": "0x50005"}."""
    out: dict[str, Any] = {name: bool(value >> bit & 1) for bit, name in THROTTLED_BITS.items()}
    out["raw"] = hex(value)
    return out


def parse_throttled(text: str) -> Optional[int]:
    """``throttled=0x50005`` (vcgencmd) or ``50005`` (sysfs, hex without 0x) -> int."""
    text = text.strip()
    if "=" in text:
        text = text.split("=", 1)[1].strip()
    try:
        return int(text, 16)
    except ValueError:
        return None


def throttled(root: Path, *, run: Runner = run_quiet,
              command: bool = True) -> Optional[dict[str, Any]]:
    """Pi firmware flags and/or Jetson over-current events, with ``source``; None if neither."""
    hwmons = _hwmons(root)
    uv = None
    volt = next((d for name, d in hwmons if name == "rpi_volt"), None)
    if volt is not None:
        alarm = (read_text(volt / "in0_lcrit_alarm") or "").strip()
        uv = alarm == "1" if alarm in ("0", "1") else None
    bits, source = None, None
    for f in _firmware_files(root):
        bits = parse_throttled(read_text(f) or "")
        if bits is not None:
            source = "firmware sysfs"
            break
    if bits is None and command and (volt is not None or _is_pi(root)):
        out = run(["vcgencmd", "get_throttled"], 2.0)
        bits = parse_throttled(out) if out else None
        source = "vcgencmd" if bits is not None else None
    flags: Optional[dict[str, Any]] = None
    if bits is not None:
        flags = decode_throttled(bits)
        if uv:  # the hwmon saw it within the last poll even if the bitmask was read earlier
            flags["under_voltage"] = True
        flags["source"] = source + (" + hwmon" if uv is not None else "")
    elif uv is not None:
        flags = {"under_voltage": uv, "source": "hwmon rpi_volt"}
    oc = _oc_events(d for _, d in hwmons)
    if oc is not None:
        flags = {**(flags or {}), "oc_events": oc}
        flags["source"] = ((flags.get("source") + " + ") if flags.get("source") else "") \
            + "hwmon oc_event_cnt"
    return flags


def throttle_evidence(start: Optional[Mapping[str, Any]],
                      end: Optional[Mapping[str, Any]]) -> list[str]:
    """Why a run between two readings (``ThermalState.as_dict()``) may have been slowed:
    a flag active at either end, a sticky flag that appeared, more over-current events."""
    t0 = (start or {}).get("throttled") or {}
    t1 = (end or {}).get("throttled") or {}
    reasons = []
    for flag in ("under_voltage", "freq_capped", "throttled", "soft_temp_limit"):
        now = t0.get(flag) or t1.get(flag)
        appeared = t1.get(flag + "_occurred") and not t0.get(flag + "_occurred")
        if now or appeared:
            reasons.append(FLAG_WORDS[flag])
    if (t1.get("oc_events") or 0) > (t0.get("oc_events") or 0):
        reasons.append(FLAG_WORDS["oc_events"])
    return reasons


def describe_flags(flags: Optional[Mapping[str, Any]]) -> str:
    """``under-voltage now; throttled since boot`` / ``none`` / ``not reported``."""
    if not flags:
        return "not reported"
    now = [FLAG_WORDS[k] for k in ("under_voltage", "freq_capped", "throttled",
                                   "soft_temp_limit") if flags.get(k)]
    past = [FLAG_WORDS[k] for k in ("under_voltage", "freq_capped", "throttled",
                                    "soft_temp_limit") if flags.get(k + "_occurred")]
    parts = []
    if now:
        parts.append(", ".join(now) + " now")
    if past:
        parts.append(", ".join(past) + " since boot")
    if flags.get("oc_events"):
        parts.append(f"{flags['oc_events']} over-current events")
    return "; ".join(parts) or "none"


def _hwmons(root: Path) -> list[tuple[str, Path]]:
    """(name, directory) of every hwmon device; names repeat (two INA3221 on a Jetson)."""
    return [((read_text(d / "name") or "").strip(), d)
            for d in sorted((root / "sys/class/hwmon").glob("hwmon*"))]


def _firmware_files(root: Path) -> list[Path]:
    # The driver glob works on any SoC node name (Pi 5: soc@107c000000); the fixed path is Pi 4's.
    found = sorted((root / "sys/bus/platform/drivers/raspberrypi-firmware").glob(
        "*/get_throttled"))
    return found + [root / "sys/devices/platform/soc/soc:firmware/get_throttled"]


def _oc_events(dirs: Iterable[Path]) -> Optional[int]:
    total, seen = 0, False
    for d in dirs:
        for f in d.glob("oc*_event_cnt"):
            try:
                total += int((read_text(f) or "").strip())
                seen = True
            except ValueError:
                continue
    return total if seen else None


def _is_pi(root: Path) -> bool:
    model = read_text(root / "proc/device-tree/model") or ""
    return "Raspberry Pi" in model

