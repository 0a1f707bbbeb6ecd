"""SoC temperature and throttling on the fixture boards; what bench records and flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeface.bench.tables import markdown_table, thermal_note, throttled
from edgeface.system import thermal
from edgeface.system.thermal import (
    ThermalState,
    decode_throttled,
    describe_flags,
    parse_throttled,
    throttle_evidence,
)

BOARDS = Path(__file__).parent / "fixtures" / "platforms"


def no_command(argv, timeout):
    raise AssertionError(f"no command may run here: {argv}")


def test_pi4_reads_the_firmware_bitmask_without_forking():
    st = thermal.read(BOARDS / "raspberry-pi-4", run=no_command, command=True)
    assert st.temps_c == {"cpu-thermal": 61.8}
    assert st.soc_c == 61.8
    t = st.throttled
    assert t["raw"] == "0x50005" and t["source"] == "firmware sysfs + hwmon"
    assert t["under_voltage"] and t["throttled"] and not t["freq_capped"]
    assert t["under_voltage_occurred"] and t["throttled_occurred"]
    assert not t["soft_temp_limit_occurred"]
    assert describe_flags(t) == "under-voltage, throttled now; under-voltage, throttled since boot"


def test_pi5_asks_vcgencmd_when_no_sysfs_file_has_the_bitmask():
    calls = []

    def run(argv, timeout):
        calls.append((list(argv), timeout))
        return "throttled=0x80000\n"

    st = thermal.read(BOARDS / "raspberry-pi-5", run=run, command=True)
    assert calls == [(["vcgencmd", "get_throttled"], 2.0)]
    assert st.throttled["soft_temp_limit_occurred"] and not st.throttled["under_voltage"]
    assert st.throttled["source"] == "vcgencmd + hwmon"
    assert describe_flags(st.throttled) == "soft temperature limit since boot"


def test_pi5_without_commands_has_the_hwmon_alarm_only():
    st = thermal.read(BOARDS / "raspberry-pi-5", run=no_command, command=False)
    assert st.throttled == {"under_voltage": False, "source": "hwmon rpi_volt"}
    assert st.soc_c == 58.6


def test_vcgencmd_failing_leaves_the_hwmon_answer():
    st = thermal.read(BOARDS / "raspberry-pi-5", run=lambda a, t: None, command=True)
    assert st.throttled == {"under_voltage": False, "source": "hwmon rpi_volt"}


def test_orin_nano_zones_and_over_current_counters():
    st = thermal.read(BOARDS / "jetson-orin-nano", run=no_command)  # fixture root: no commands
    assert "cv0-thermal" not in st.temps_c  # reads -256 °C: a zone without hardware
    assert st.temps_c["tj-thermal"] == 49.1
    assert st.soc_c == 49.1
    assert st.throttled == {"oc_events": 0, "source": "hwmon oc_event_cnt"}


def test_x86_vm_has_nothing_to_report():
    st = thermal.read(BOARDS / "x86-64-vm", run=no_command)
    assert st == ThermalState({}, None)
    assert st.soc_c is None
    assert st.as_dict() == {"soc_c": None, "temps_c": {}, "throttled": None}


def zone(root, i, kind, milli):
    d = root / "sys" / "class" / "thermal" / f"thermal_zone{i}"
    d.mkdir(parents=True)
    (d / "type").write_text(kind + "\n")
    (d / "temp").write_text(f"{milli}\n")


def test_jetpack5_names_and_repeated_zone_types(tmp_path):
    for i, (kind, milli) in enumerate([("CPU-therm", 51000), ("GPU-therm", 49500),
                                       ("Tboard_tegra", 72000), ("acpitz", 30000),
                                       ("acpitz", 31000), ("junk", "n/a")]):
        zone(tmp_path, i, kind, milli)
    st = thermal.read(tmp_path, command=False)
    assert st.temps_c == {"CPU-therm": 51.0, "GPU-therm": 49.5, "Tboard_tegra": 72.0,
                          "acpitz": 30.0, "acpitz#2": 31.0}
    assert st.soc_c == 51.0  # the board sensor is not the SoC
    zone(tmp_path, 10, "x86_pkg_temp", 64000)
    assert thermal.read(tmp_path, command=False).soc_c == 64.0


def test_zone_order_is_numeric(tmp_path):
    zone(tmp_path, 10, "b", 2000)
    zone(tmp_path, 2, "a", 1000)
    assert list(thermal.read(tmp_path, command=False).temps_c) == ["a", "b"]


@pytest.mark.parametrize("text, value", [
    ("throttled=0x50005\n", 0x50005), ("50005\n", 0x50005), ("0\n", 0),
    ("throttled=0x0", 0), ("VCHI initialization failed", None), ("", None)])
def test_parse_throttled(text, value):
    assert parse_throttled(text) == value


def test_decode_throttled_bits():
    d = decode_throttled(0xF000F)
    assert all(d[k] for k in thermal.THROTTLED_BITS.values()) and d["raw"] == "0xf000f"
    assert not any(v for k, v in decode_throttled(0).items() if k != "raw")


def flags(**kw):
    return {"throttled": {"source": "vcgencmd", **kw}, "soc_c": 70.0, "temps_c": {}}


@pytest.mark.parametrize("start, end, reasons", [
    (flags(), flags(), []),
    (flags(), flags(throttled_occurred=True), ["throttled"]),
    (flags(throttled_occurred=True), flags(throttled_occurred=True), []),  # before the run
    (flags(soft_temp_limit=True), flags(), ["soft temperature limit"]),
    (flags(), flags(under_voltage=True, freq_capped=True), ["under-voltage",
                                                            "ARM frequency capped"]),
    ({"throttled": {"oc_events": 3}}, {"throttled": {"oc_events": 5}},
     ["over-current throttling"]),
    (None, None, []),
    ({"throttled": None}, {"throttled": None}, []),
])
def test_throttle_evidence(start, end, reasons):
    assert throttle_evidence(start, end) == reasons


def bench_doc(conditions):
    return {
        "schema_version": 1, "kind": "edgeface-bench", "created": "2026-05-01T10:00:00Z",
        "mode": "model", "interrupted": False,
        "platform": {"slug": "raspberry-pi-4", "cpu_model": "ARM Cortex-A72", "cores": 4,
                     "machine": "aarch64", "isa": {}, "os": "Debian", "python": "3.11.2",
                     "onnxruntime": "1.20.1", "board": "Raspberry Pi 4 Model B Rev 1.4"},
        "settings": {"runs": 10, "warmup": 2, "threads": [4], "frames": None},
        "conditions": conditions,
        "results": [{"model": {"label": "featherface", "kind": "edgeface", "size_bytes": 1,
                               "sha256": None, "precision": "fp32"},
                     "threads": 4, "runs": 10, "throughput_fps": 10.0, "peak_rss_mb": 90.0,
                     "latency_ms": {"p50": 100.0, "p90": 110.0, "p99": 120.0, "mean": 101.0}}],
        "ratios": []}


def test_bench_tables_flag_a_throttled_run():
    start = thermal.read(BOARDS / "raspberry-pi-5", command=False).as_dict()
    end = json.loads(json.dumps(start))
    end["soc_c"] = 81.3
    end["throttled"].update(throttled=True)
    doc = bench_doc({"loadavg_start": [0.1, 0, 0], "thermal_start": start, "thermal_end": end,
                     "throttling": throttle_evidence(start, end)})
    assert throttled(doc)
    assert thermal_note(doc) == "SoC 58.6 -> 81.3 °C, THROTTLED (throttled)"
    assert "THROTTLED (throttled)" in markdown_table(doc).splitlines()[0]


def test_bench_tables_without_thermals_are_unchanged():
    doc = bench_doc({"loadavg_start": [0.1, 0, 0], "loadavg_end": [0.2, 0, 0]})
    assert thermal_note(doc) == "" and not throttled(doc)
    assert "SoC" not in markdown_table(doc) and "THROTTLED" not in markdown_table(doc)


def test_bench_records_thermals_at_start_and_end(tmp_path):
    from runtime_fakes import tiny_onnx

    from edgeface.bench.results import validate_result
    from edgeface.bench.runs import BenchSettings, parse_model_arg, run_benchmark

    model = tiny_onnx(tmp_path / "tiny.onnx")
    doc = run_benchmark(BenchSettings(models=[parse_model_arg(str(model))], threads=[1],
                                      runs=2, warmup=1, chunk=1), show_progress=False)
    cond = doc["conditions"]
    here = thermal.read().as_dict()
    for key in ("thermal_start", "thermal_end"):
        assert set(cond[key]) == {"soc_c", "temps_c", "throttled"}
        assert set(cond[key]["temps_c"]) == set(here["temps_c"])
    assert cond["throttling"] == throttle_evidence(cond["thermal_start"], cond["thermal_end"])
    assert list(cond)[:2] == ["loadavg_start", "thermal_start"]
    validate_result(json.loads(json.dumps(doc)))  # optional fields: schema version unchanged
    assert doc["schema_version"] == 1
