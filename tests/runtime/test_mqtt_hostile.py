"""MQTT under hostile names and payloads (issue 23), against a real Mosquitto on loopback:
names that are not UTF-8 or not ASCII."""

from __future__ import annotations

import logging
import uuid

import pytest
from event_fakes import wait_until
from mosquitto import Broker, Subscriber
from runtime_fakes import edgeface_cmd, synthetic_frames, tiny_onnx, write_video

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt (the mqtt extra) is not installed")

from edgeface.errors import ConfigError  # noqa: E402
from edgeface.runtime.sinks.mqtt import MqttSink  # noqa: E402
from edgeface.runtime.sinks.mqtt_topics import check_topic_prefix, topic_name  # noqa: E402


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Broker(tmp_path_factory.mktemp("mosquitto")).start()
    yield b
    b.stop()


def open_sink(url, **kw) -> MqttSink:
    kw.setdefault("announce_delay", 0.0)
    kw.setdefault("reconnect_delay", (0.05, 0.2))
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
