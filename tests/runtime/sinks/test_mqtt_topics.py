"""MQTT names without a broker: the address, topic names, Home Assistant discovery payloads,
the settings, and the message when paho-mqtt is missing or too old."""

from __future__ import annotations

import json
import sys
import types

import pytest

from edgeface.errors import ConfigError, MissingDependency
from edgeface.runtime.config import defaults, validate
from edgeface.runtime.sinks.mqtt_topics import (
    BrokerUrl,
    Topics,
    discovery_messages,
    parse_broker_url,
    topic_name,
)


@pytest.mark.parametrize("text, expected", [
    ("broker", BrokerUrl("broker", 1883, False)),
    ("broker:1884", BrokerUrl("broker", 1884, False)),
    ("mqtt://ha@10.0.0.2", BrokerUrl("10.0.0.2", 1883, False, "ha")),
    ("mqtts://broker.lan", BrokerUrl("broker.lan", 8883, True)),
    ("mqtts://me@broker.lan:9999/", BrokerUrl("broker.lan", 9999, True, "me")),
    ("mqtt://[::1]:1883", BrokerUrl("::1", 1883, False)),
])
def test_broker_addresses(text, expected):
    assert parse_broker_url(text) == expected


@pytest.mark.parametrize("text, match", [
    ("mqtt://me:pw@broker", "EDGEFACE_MQTT_PASSWORD"),
    ("http://broker", "mqtt:// or mqtts://"),
    ("mqtt://broker:99999", "invalid broker address"),
    ("mqtt://broker/topic", "expected"),
    ("mqtt://", "expected"),
])
def test_bad_broker_addresses(text, match):
    with pytest.raises(ConfigError, match=match):
        parse_broker_url(text)


def test_redacted_address_never_has_a_password():
    assert BrokerUrl("::1", 8883, True, "me").redacted() == "mqtts://me@[::1]:8883"


@pytest.mark.parametrize("name, expected", [
    ("raspberrypi", "raspberrypi"), ("Front Door", "front_door"), ("pi.lan", "pi_lan"),
    ("a/b+#c", "a_b_c"), ("---", "---"), ("", "edgeface"), ("ÄÖ", "ao"), ("été", "ete"),
    ("x" * 100, "x" * 64)])
def test_topic_names(name, expected):
    assert topic_name(name) == expected


def test_discovery_payloads():
    msgs = dict(discovery_messages(Topics("edgeface", "door"), "homeassistant"))
    assert sorted(msgs) == ["homeassistant/binary_sensor/edgeface_door_face_present/config",
                            "homeassistant/camera/edgeface_door_snapshot/config",
                            "homeassistant/sensor/edgeface_door_faces/config"]
    for topic, payload in msgs.items():
        cfg = json.loads(payload)
        assert cfg["unique_id"] == topic.split("/")[2]
        assert {"name", "availability_topic", "payload_available", "payload_not_available",
                "device", "origin"} <= set(cfg)
        assert cfg["availability_topic"] == "edgeface/door/availability"
        assert {"identifiers", "name", "manufacturer", "model", "sw_version"} <= set(cfg["device"])
    binary = json.loads(msgs["homeassistant/binary_sensor/edgeface_door_face_present/config"])
    assert binary["device_class"] == "occupancy" and binary["state_topic"] == "edgeface/door/faces"
    assert "value_template" in binary


def test_settings_are_config_keys_and_checked():
    outs = defaults()["outputs"]
    assert outs["mqtt"] is None and outs["mqtt_prefix"] == "edgeface"
    assert outs["mqtt_discovery"] is True and outs["mqtt_discovery_prefix"] == "homeassistant"
    cfg = validate({"outputs": {"mqtt": "mqtts://me@broker", "mqtt_ca_file": "ca.pem",
                                "mqtt_prefix": "/home/edgeface/"}}, base=None)
    assert cfg["outputs"]["mqtt_prefix"] == "home/edgeface"
    with pytest.raises(ConfigError, match="outputs.mqtt'.*password"):
        validate({"outputs": {"mqtt": "mqtt://me:secret@broker"}})
    with pytest.raises(ConfigError, match=r"may not contain \+, #"):
        validate({"outputs": {"mqtt_prefix": "edgeface/#"}})


def test_missing_paho_names_the_extra(monkeypatch):
    from edgeface.runtime.sinks import mqtt

    monkeypatch.setitem(sys.modules, "paho.mqtt.client", None)
    with pytest.raises(MissingDependency, match=r"pip install 'edgeface\[mqtt\]'"):
        mqtt.MqttSink("broker")


def test_paho_1x_is_refused_with_the_reason(monkeypatch):
    from edgeface.runtime.sinks import mqtt

    old = types.ModuleType("paho.mqtt.client")  # 1.x has no CallbackAPIVersion
    pkg = types.ModuleType("paho.mqtt")
    pkg.__version__ = "1.6.1"
    pkg.client = old
    monkeypatch.setitem(sys.modules, "paho.mqtt", pkg)
    monkeypatch.setitem(sys.modules, "paho.mqtt.client", old)
    with pytest.raises(MissingDependency, match=r"paho-mqtt 1.6.1 is too old.*2\.x"):
        mqtt.MqttSink("broker")


def test_password_without_a_user_is_refused():
    pytest.importorskip("paho.mqtt.client")
    from edgeface.runtime.sinks.mqtt import MqttSink

    with pytest.raises(ConfigError, match="names no user"):
        MqttSink("mqtt://broker.invalid", password="pw")
