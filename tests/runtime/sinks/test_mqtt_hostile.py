"""MQTT under hostile names and payloads (issue 23), against a real Mosquitto on loopback:
names that are not UTF-8 or not ASCII, a huge message on the status topic we subscribe to."""

from __future__ import annotations

import logging
import uuid

import pytest
from event_fakes import wait_until
from mosquitto import Broker, Subscriber
from runtime_fakes import edgeface_cmd, synthetic_frames, tiny_onnx, write_video

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt (the mqtt extra) is not installed")

from edgeface.errors import ConfigError  # noqa: E402
from edgeface.runtime.sinks.mqtt import MqttSink, MqttTiming  # noqa: E402
from edgeface.runtime.sinks.mqtt_topics import check_topic_prefix, topic_name  # noqa: E402


def open_sink(url, **kw) -> MqttSink:
    kw.setdefault("timing", MqttTiming(announce_delay=0.0, reconnect_delay=(0.05, 0.2)))
    sink = MqttSink(url, **kw)
    assert wait_until(lambda: sink.connected, 5), f"not connected: {sink.last_error}"
    return sink


# ------------------------------------------------------------------------------ names

@pytest.mark.parametrize("value", ["edge\udcffface", "a\x01b", "a\x7fb", "a\u0085b", "a/+/b"])
def test_a_prefix_that_is_not_utf8_text_is_a_config_error(value):
    with pytest.raises(ConfigError, match="mqtt_prefix"):
        check_topic_prefix("mqtt_prefix", value)


def test_unicode_prefixes_are_kept():
    assert check_topic_prefix("mqtt_prefix", "maison/caméras") == "maison/caméras"


def test_non_ascii_device_names_do_not_collapse():
    assert topic_name("été") == "ete" and topic_name("Caméra Entrée") == "camera_entree"
    names = ["камера1", "камера2", "門口", "門後", "🙂", "🙃", "\udcff\udcfe", "\udcfe\udcff"]
    ids = [topic_name(n) for n in names]
    assert len(set(ids)) == len(names), ids
    assert all(i.replace("_", "").replace("-", "").isalnum() and i.isascii() for i in ids)
    assert topic_name("камера1").startswith("1_") and len(topic_name("x" * 80 + "é")) <= 64


@pytest.mark.parametrize("flag", ["--mqtt-prefix", "--mqtt-discovery-prefix"])
def test_a_non_utf8_prefix_argument_is_exit_2_and_one_line(broker, tmp_path, flag):
    import subprocess

    from runtime_fakes import REPO

    model = tiny_onnx(tmp_path / "tiny.onnx")
    clip = write_video(tmp_path / "c.avi", synthetic_frames(2))
    argv = [*edgeface_cmd("run", "-m", str(model), "--source", str(clip), "--mqtt",
                          broker.url), flag, b"edge\xffface"]  # as a shell passes raw bytes
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "not valid UTF-8" in lines[0], p.stderr


def test_non_ascii_devices_publish_apart_with_a_warning(broker, caplog):
    tag = uuid.uuid4().hex[:6]
    names = [f"été{tag}", f"ete{tag}", f"камера{tag}", f"камора{tag}"]
    sub = Subscriber(broker.port, ["homeassistant/sensor/+/config"])
    sinks = []
    with caplog.at_level(logging.WARNING, logger="edgeface.runtime.sinks.mqtt"):
        try:
            for n in names:
                sinks.append(open_sink(broker.url, device=n, snapshots=False))
            devices = [s.topics.device for s in sinks]
            assert devices[0] == devices[1] == f"ete{tag}"  # the transliteration, warned
            assert len(set(devices[1:])) == 3, devices
            for s in sinks[1:]:
                sub.wait_for(f"homeassistant/sensor/edgeface_{s.topics.device}_faces/config")
        finally:
            for s in sinks:
                s.close()
            sub.close()
    warned = [r.getMessage() for r in caplog.records if "is published as" in r.getMessage()]
    assert len(warned) == 3 and f"'ete{tag}'" in warned[0], warned


# --------------------------------------------------------------------- inbound packets

BIG = 20 * 1024 * 1024  # a retained or live message on homeassistant/status

SINK_CHILD = """
import sys, time
from edgeface.runtime.sinks.mqtt import MqttSink, MqttTiming
def hwm():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
sink = MqttSink(sys.argv[1], device=sys.argv[2], snapshots=False,
                timing=MqttTiming(announce_delay=0.0))
while not sink.connected:
    time.sleep(0.01)
print(hwm(), flush=True)
sys.stdin.readline()
print(hwm(), sink.connects, flush=True)
sink.close()
"""


def publish(port: int, topic: str, payload: bytes, retain: bool) -> None:
    import paho.mqtt.client as mqtt

    c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        assert c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(30) is None
    finally:
        c.disconnect()
        c.loop_stop()


def test_a_huge_status_message_is_never_read(tmp_path):
    """20 MB retained, then 20 MB live, on homeassistant/status: the broker sends neither
    (retained: not asked for; live: over our Maximum Packet Size), so the sink's peak RSS
    stays put (before: +65 MB for the retained one), and a short ``online`` still works."""
    import subprocess
    import sys

    from runtime_fakes import REPO

    broker = Broker(tmp_path).start()
    device = f"big{uuid.uuid4().hex[:6]}"
    config = f"homeassistant/sensor/edgeface_{device}_faces/config"
    proc = None
    try:
        publish(broker.port, "homeassistant/status", b"o" * BIG, retain=True)
        ha = Subscriber(broker.port, [config])
        proc = subprocess.Popen([sys.executable, "-c", SINK_CHILD, broker.url, device],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                cwd=REPO)
        before = int(proc.stdout.readline())
        ha.wait_for(config)  # announced: the subscription was made before it
        publish(broker.port, "homeassistant/status", b"online" + b" " * BIG, retain=False)
        publish(broker.port, "homeassistant/status", b"online", retain=False)
        ha.wait_for(config, count=2)  # the short one came through, after the huge one
        proc.stdin.write("\n")
        proc.stdin.flush()
        after, connects = map(int, proc.stdout.readline().split())
        assert proc.wait(10) == 0
        ha.close()
        # VmHWM in kB: a read of either message would add 20 MB at least, usually 3x that.
        assert after - before < 8 * 1024, f"peak RSS grew {(after - before) // 1024} MB"
        assert connects == 1  # not disconnected for a packet over the limit
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        broker.stop()


def test_only_a_short_status_payload_is_compared(broker):
    sink = open_sink(broker.url, device=f"s{uuid.uuid4().hex[:6]}", snapshots=False)

    class Msg:
        topic = "homeassistant/status"

    def announces_after(payload: bytes) -> int:
        assert wait_until(lambda: sink._worker.pending == 0 and not sink._worker._busy, 5)
        before = sink._worker.done
        Msg.payload = payload
        sink._on_message(None, None, Msg())
        wait_until(lambda: sink._worker.done > before, 0.5)
        return sink._worker.done - before

    try:
        assert announces_after(b"online" + b" " * 100) == 0  # not even stripped
        assert announces_after(b"offline") == 0
        assert announces_after(b" Online\n") == 1
    finally:
        sink.close()


def test_a_broker_without_mqtt5_is_one_line_that_says_to_upgrade(caplog):
    """Mosquitto < 1.6 answers an MQTT 5 CONNECT with the 3.1.1 CONNACK 'unacceptable
    protocol version' (return code 1) and closes; a fake of that answer stands in for it
    (no such broker here). No 3.1.1 fallback: it lacks the Maximum Packet Size and the
    retain handling that bound class 3's retained status."""
    import socket
    import threading

    srv = socket.create_server(("127.0.0.1", 0))

    def mqtt311_only_broker_fake() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                conn.sendall(b"\x20\x02\x00\x01")  # CONNACK, 3.1.1 return code 1

    threading.Thread(target=mqtt311_only_broker_fake, daemon=True).start()
    caplog.set_level(logging.WARNING)
    sink = MqttSink(f"127.0.0.1:{srv.getsockname()[1]}", device="old", snapshots=False,
                    timing=MqttTiming(announce_delay=0.0))
    try:
        assert wait_until(lambda: "needs MQTT 5" in sink.last_error, 10), sink.last_error
        lines = [r.getMessage() for r in caplog.records if "needs MQTT 5" in r.getMessage()]
        assert len(lines) == 1 and "\n" not in lines[0] and not sink.connected
    finally:
        sink.close()
        srv.close()
