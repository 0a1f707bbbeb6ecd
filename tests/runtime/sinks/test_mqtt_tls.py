"""MQTT over TLS with a password, against Mosquitto with a test CA made here (openssl) and a
password file (mosquitto_passwd): verified certificates, refused passwords."""

from __future__ import annotations

import json
import time

import pytest
from event_fakes import lifecycle, wait_until
from mosquitto import Broker, Subscriber, make_passwd, make_tls

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt (the mqtt extra) is not installed")

from edgeface.runtime.sinks.mqtt import MqttSink, MqttTiming  # noqa: E402

USER, PASSWORD = "edgeface", "s3cret pass"


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mosquitto-tls")
    tls = make_tls(folder)
    passwd = make_passwd(folder, USER, PASSWORD)
    broker = Broker(folder, extra=(f"allow_anonymous false\npassword_file {passwd}\n"
                                   f"cafile {tls.ca}\ncertfile {tls.cert}\nkeyfile {tls.key}\n"
                                   "require_certificate false\n")).start()
    yield broker, tls
    broker.stop()


def open_sink(broker, ca, password=PASSWORD, host="127.0.0.1", **kw):
    return MqttSink(f"mqtts://{USER}@{host}:{broker.port}", device="tlsdev", ca_file=str(ca),
                    password=password, discovery=False,
                    timing=MqttTiming(reconnect_delay=(0.05, 0.2), close_timeout=1.0), **kw)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_tls_with_a_password_delivers_events(tls_broker, host):
    broker, tls = tls_broker
    sub = Subscriber(broker.port, ["edgeface/tlsdev/events"], ca=tls.ca, user=USER,
                     password=PASSWORD)
    sink = open_sink(broker, tls.ca, host=host)
    try:
        assert wait_until(lambda: sink.connected, 5), sink.last_error
        for r in lifecycle(4):
            sink.write(r)
        events = sub.wait_for("edgeface/tlsdev/events", count=3)
        assert json.loads(events[-1][0])["type"] == "end"
        assert PASSWORD not in sink.describe()
        assert sink.describe().startswith(f"mqtt mqtts://{USER}@{host}:{broker.port} ")
    finally:
        sink.close()
        sub.close()


def test_a_certificate_from_another_ca_is_refused(tls_broker):
    broker, tls = tls_broker
    sink = open_sink(broker, tls.other_ca)
    try:
        assert wait_until(lambda: sink.last_error != "", 5)
        time.sleep(0.3)  # retried with backoff, never accepted
        assert not sink.connected and sink.connects == 0
        assert "cannot connect" in sink.last_error
        assert "CERTIFICATE_VERIFY_FAILED" in sink.last_error
    finally:
        sink.close()


def test_a_wrong_password_is_refused_and_retried(tls_broker):
    broker, tls = tls_broker
    sink = open_sink(broker, tls.ca, password="wrong")
    try:
        assert wait_until(lambda: "refused" in sink.last_error, 5), sink.last_error
        assert "Not authorized" in sink.last_error and not sink.connected
    finally:
        sink.close()


def test_a_missing_ca_file_is_a_config_error(tmp_path):
    from edgeface.errors import ConfigError

    with pytest.raises(ConfigError, match="mqtt_ca_file: cannot load .*nope.pem"):
        MqttSink("mqtts://broker.invalid", ca_file=str(tmp_path / "nope.pem"))
    with pytest.raises(ConfigError, match="not mqtts://"):
        MqttSink("mqtt://broker.invalid", ca_file=str(tmp_path / "nope.pem"))
