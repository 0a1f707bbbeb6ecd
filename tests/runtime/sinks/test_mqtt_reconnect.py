"""MQTT state across reconnects (issue 23, class 7), against a real Mosquitto stopped and
started under the sink: after every connect the retained state (availability, discovery,
the count) is complete whatever the backlog, the count while away is one value, the
backlog keeps the newest events and never leaves a track open, and a broker that takes the
TCP connection but never answers is logged like one that refuses it."""

from __future__ import annotations

import json
import logging
import socket
import uuid

import pytest
from event_fakes import event, make_track, wait_until, with_events
from mosquitto import Broker, Subscriber, free_port

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt (the mqtt extra) is not installed")

from edgeface.runtime.sinks.mqtt import MqttSink, MqttTiming  # noqa: E402

# The sink retries every 2 s, so that the test's subscriber (reconnecting every 0.2 s at
# most) is subscribed again before the sink sends its backlog.
SLOW_RETRY = (2.0, 2.0)
QUEUE = 10


def write(sink: MqttSink, track: int, kind: str) -> None:
    sink.write(with_events([event(kind, make_track(track, with_image=False))]))


def outage_burst(sink: MqttSink, tracks: range) -> None:
    """Tracks that come and go while the broker is away: 4 events each, past the queue."""
    for t in tracks:
        for kind in ("start", "update", "update", "end"):
            write(sink, t, kind)


def received(sub: Subscriber, device: str) -> list[tuple[int, str]]:
    return [(e["track_id"], e["type"]) for e in
            (json.loads(p) for p, _ in sub.on(f"edgeface/{device}/events"))]


def assert_tracks_closed(events: list[tuple[int, str]], alive: set[int]) -> None:
    started: set[int] = set()
    for track, kind in events:
        if kind == "start":
            started.add(track)
        else:
            assert track in started, f"track {track} {kind} without its start: {events}"
            if kind == "end":
                started.discard(track)
    assert started == alive, f"open tracks {started}, alive {alive}: {events}"


def assert_retained_state(port: int, device: str, count: bytes) -> None:
    """What a subscriber arriving now finds: online, the three configs, the count."""
    node = f"edgeface_{device}"
    late = Subscriber(port, [f"edgeface/{device}/availability", f"edgeface/{device}/faces",
                             "homeassistant/+/+/config"])
    try:
        assert late.wait_for(f"edgeface/{device}/availability") == [(b"online", True)]
        assert late.wait_for(f"edgeface/{device}/faces") == [(count, True)]
        for component, name in [("binary_sensor", "face_present"), ("sensor", "faces"),
                                ("camera", "snapshot")]:
            late.wait_for(f"homeassistant/{component}/{node}_{name}/config")
    finally:
        late.close()


def test_an_outage_at_start(tmp_path):
    device = "r" + uuid.uuid4().hex[:8]
    broker = Broker(tmp_path, port=free_port())  # not started: the broker is down
    sink = MqttSink(broker.url, device=device, queue_size=QUEUE, snapshots=False,
                    timing=MqttTiming(reconnect_delay=SLOW_RETRY, announce_delay=0.0))
    sub = None
    try:
        write(sink, 100, "start")  # alive through the outage
        outage_burst(sink, range(1, 31))  # 120 events, the count going 2, 1, 2, 1 ...
        write(sink, 101, "start")
        assert not sink.connected and len(sink._backlog) <= QUEUE
        broker.start()
        sub = Subscriber(broker.port, [f"edgeface/{device}/#"])
        assert sink.connects == 0, "the sink connected before the test subscribed"
        assert wait_until(lambda: sink.connected, 10), sink.last_error
        assert wait_until(lambda: sink.stats()["queued"] == 0
                          and sink.stats()["unacked"] == 0, 5)
        # One count after the connect: the current one, not the 60 values seen offline.
        assert [p for p, _ in sub.wait_for(f"edgeface/{device}/faces")] == [b"2"]
        assert_retained_state(broker.port, device, b"2")
        events = received(sub, device)
        assert len(events) <= QUEUE and events[-1] == (101, "start")
        assert (30, "end") in events and (100, "start") in events  # the newest, the alive
        assert_tracks_closed(events, alive={100, 101})
        write(sink, 100, "end")
        write(sink, 101, "end")
        sub.wait_for(f"edgeface/{device}/faces", lambda p: p == b"0")
        for track in (100, 101):
            sub.wait_for(f"edgeface/{device}/events",
                         lambda p, t=track: json.loads(p)["track_id"] == t
                         and json.loads(p)["type"] == "end")
        assert_tracks_closed(received(sub, device), alive=set())
    finally:
        sink.close()
        if sub is not None:
            sub.close()
        broker.stop()


def test_an_outage_in_the_middle_and_every_reconnect(tmp_path):
    device = "r" + uuid.uuid4().hex[:8]
    broker = Broker(tmp_path).start()
    sub = Subscriber(broker.port, [f"edgeface/{device}/#"])
    sink = MqttSink(broker.url, device=device, queue_size=QUEUE, snapshots=False,
                    timing=MqttTiming(reconnect_delay=SLOW_RETRY, announce_delay=0.0))
    try:
        assert wait_until(lambda: sink.connected, 10), sink.last_error
        for t in range(5):  # five tracks start and reach the broker
            write(sink, t, "start")
        sub.wait_for(f"edgeface/{device}/events", count=5)
        faces = f"edgeface/{device}/faces"
        sub.wait_for(faces, lambda p: p == b"5")
        for outage in range(2):
            before = len(sub.on(faces))
            broker.stop()
            assert wait_until(lambda: not sink.connected, 5)
            if outage == 0:
                for t in range(5):  # they end while the broker is away, amid 30 others
                    write(sink, t, "update")
                    write(sink, t, "end")
                outage_burst(sink, range(10, 40))
            write(sink, 50 + outage, "start")
            broker.start()
            assert wait_until(lambda n=2 + outage: sink.connects == n, 10), sink.last_error
            assert wait_until(lambda: sink.stats()["queued"] == 0
                              and sink.stats()["unacked"] == 0, 5)
            count = str(1 + outage).encode()
            assert_retained_state(broker.port, device, count)
            sub.wait_for(faces, lambda p, c=count: p == c)
            # The connect published the count once, whatever it was while away.
            assert [p for p, _ in sub.on(faces)[before:]] == [count]
        events = received(sub, device)
        assert [e for e in events if e[1] == "end" and e[0] < 5] == [(t, "end") for t in range(5)]
        assert (39, "end") in events
        assert_tracks_closed(events, alive={50, 51})
    finally:
        sink.close()
        sub.close()
        broker.stop()


def test_a_broker_that_never_answers_is_logged(caplog):
    """The port accepts TCP (the kernel's backlog) and nothing ever answers CONNECT."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"mqtt://127.0.0.1:{silent.getsockname()[1]}"
        with caplog.at_level(logging.WARNING, logger="edgeface.runtime.sinks.mqtt"):
            sink = MqttSink(url, device="silent", timing=MqttTiming(
                                keepalive=1, reconnect_delay=(0.2, 0.2), close_timeout=1.0))
            try:
                assert wait_until(lambda: sink.last_error, 10)
                assert wait_until(lambda: sink.stats()["disconnects"] == 0 and len(
                    [r for r in caplog.records if "no answer" in r.getMessage()]) == 1, 3)
            finally:
                sink.close()
    lines = [r.getMessage() for r in caplog.records]
    assert any(f"{url}: no answer to CONNECT" in m and "retrying" in m for m in lines), lines
    assert sum("no answer" in m for m in lines) == 1, lines  # once, not once per retry
