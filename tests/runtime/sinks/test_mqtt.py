"""MQTT output against a real Mosquitto broker on loopback: events, the retained count, the
snapshot, Home Assistant discovery, availability and the last will, a broker restart."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import uuid

import cv2
import numpy as np
import pytest
from event_fakes import event, lifecycle, make_track, wait_until, with_events
from mosquitto import Broker, Subscriber

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt (the mqtt extra) is not installed")

from edgeface.runtime.sinks.mqtt import MqttSink, MqttTiming  # noqa: E402


def unique() -> str:
    return "t" + uuid.uuid4().hex[:8]


def open_sink(url, **kw) -> MqttSink:
    kw.setdefault("device", unique())
    kw.setdefault("timing", MqttTiming(announce_delay=0.0, reconnect_delay=(0.05, 0.2)))
    sink = MqttSink(url, **kw)
    assert wait_until(lambda: sink.connected, 5), f"not connected: {sink.last_error}"
    return sink


def timed_write(sink, result) -> float:
    t = time.perf_counter()
    sink.write(result)
    return time.perf_counter() - t


def assert_fast(times: list[float]) -> None:
    """``write`` never waits for the network: typically tens of microseconds. The worst case
    allows for the GIL (another thread may hold it for a 5 ms switch interval) on a loaded
    CI machine, and is still far below any network wait (a connect, a timeout)."""
    times = sorted(times)
    assert times[len(times) // 2] < 0.001, f"median write {times[len(times) // 2] * 1e3:.2f} ms"
    assert times[-1] < 0.05, f"slowest write {times[-1] * 1e3:.2f} ms"


def test_events_count_and_snapshot(broker):
    device = unique()
    sub = Subscriber(broker.port, [f"edgeface/{device}/#"])
    sink = open_sink(broker.url, device=device)
    try:
        start, update, end = lifecycle(7)
        sub.wait_for(f"edgeface/{device}/faces", lambda p: p == b"0")  # announced at connect
        times = [timed_write(sink, start)]
        sub.wait_for(f"edgeface/{device}/faces", lambda p: p == b"1")
        times += [timed_write(sink, update), timed_write(sink, end)]
        events = [json.loads(p) for p, _ in sub.wait_for(f"edgeface/{device}/events", count=3)]
        assert [e["type"] for e in events] == ["start", "update", "end"]
        end = events[2]
        assert end["track_id"] == 7 and end["device"] == device
        assert end["box"] == [40.0, 30.0, 90.0, 100.0] and end["score"] == pytest.approx(0.93)
        assert np.array(end["landmarks"]).shape == (5, 2)
        assert (end["width"], end["height"]) == (160, 120) and end["duration_s"] == 2.5
        # The count went 1 then 0, and stays retained for whoever subscribes later.
        sub.wait_for(f"edgeface/{device}/faces", lambda p: p == b"0", count=2)
        assert [p for p, _ in sub.on(f"edgeface/{device}/faces")] == [b"0", b"1", b"0"]
        jpeg = sub.wait_for(f"edgeface/{device}/snapshot")[0][0]
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape == (111, 80, 3)  # grown 30% a side, cut at the bottom
        late = Subscriber(broker.port, [f"edgeface/{device}/faces",
                                        f"edgeface/{device}/availability"])
        assert late.wait_for(f"edgeface/{device}/faces") == [(b"0", True)]
        assert late.wait_for(f"edgeface/{device}/availability") == [(b"online", True)]
        late.close()
        assert_fast(times)
        assert sink.stats()["dropped"] == 0 and sink.snapshots_sent == 1
    finally:
        sink.close()
    # A clean stop says offline itself (the broker discards the will on DISCONNECT).
    sub.wait_for(f"edgeface/{device}/availability", lambda p: p == b"offline")
    sub.close()
    assert sink.stats()["unacked"] == 0


def test_describe_names_the_broker_and_topics(broker):
    sink = open_sink(broker.url.replace("mqtt://", "mqtt://alice@"), device="Front Door.lan")
    try:
        assert sink.describe() == (f"mqtt mqtt://alice@127.0.0.1:{broker.port} "
                                   "edgeface/front_door_lan/, discovery under homeassistant/")
    finally:
        sink.close()


def test_discovery_is_retained_and_repeated_when_home_assistant_restarts(broker):
    device = unique()
    sink = open_sink(broker.url, device=device, prefix="home/edgeface")
    ha = Subscriber(broker.port, ["homeassistant/+/+/config"])
    try:
        node = f"home_edgeface_{device}"
        topics = {f"homeassistant/{c}/{node}_{s}/config": c for c, s in
                  [("binary_sensor", "face_present"), ("sensor", "faces"),
                   ("camera", "snapshot")]}
        configs = {}
        for topic, component in topics.items():
            payload, retained = ha.wait_for(topic)[0]
            assert retained, f"{topic} is not retained"
            configs[component] = cfg = json.loads(payload)
            assert cfg["availability_topic"] == f"home/edgeface/{device}/availability"
            assert cfg["unique_id"] == topic.split("/")[2]
            assert cfg["device"]["identifiers"] == [node] and cfg["device"]["name"]
        assert configs["binary_sensor"]["device_class"] == "occupancy"
        assert configs["binary_sensor"]["state_topic"] == f"home/edgeface/{device}/faces"
        assert configs["sensor"]["state_topic"] == f"home/edgeface/{device}/faces"
        assert configs["camera"]["topic"] == f"home/edgeface/{device}/snapshot"
        assert len({json.dumps(c["device"]) for c in configs.values()}) == 1

        ha.client.publish("homeassistant/status", "online", qos=1)
        for topic in topics:
            assert len(ha.wait_for(topic, count=2)) == 2  # announced again
    finally:
        ha.close()
        sink.close()


def test_discovery_off(broker):
    device = unique()
    sink = open_sink(broker.url, device=device, discovery=False)
    ha = Subscriber(broker.port, [f"homeassistant/+/edgeface_{device}_faces/config",
                                  f"edgeface/{device}/faces"])
    try:
        ha.wait_for(f"edgeface/{device}/faces")  # the state is there; the config is not
        time.sleep(0.2)
        assert not [m for m in ha.messages if m[0].startswith("homeassistant/")]
        assert "discovery" not in sink.describe()
    finally:
        ha.close()
        sink.close()


def test_last_will_says_offline_when_the_process_dies(broker):
    device = unique()
    sub = Subscriber(broker.port, [f"edgeface/{device}/availability"])
    code = textwrap.dedent(f"""
        import time
        from edgeface.runtime.sinks.mqtt import MqttSink
        sink = MqttSink({broker.url!r}, device={device!r}, discovery=False)
        while not sink.connected:
            time.sleep(0.01)
        print("connected", flush=True)
        time.sleep(30)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "connected"
        sub.wait_for(f"edgeface/{device}/availability", lambda p: p == b"online")
        proc.kill()  # no DISCONNECT: the broker sees the socket close and sends the will
        proc.wait(5)
        sub.wait_for(f"edgeface/{device}/availability", lambda p: p == b"offline")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        sub.close()
    late = Subscriber(broker.port, [f"edgeface/{device}/availability"])
    assert late.wait_for(f"edgeface/{device}/availability") == [(b"offline", True)]
    late.close()


def test_broker_restart_is_survived_without_blocking_writes(tmp_path):
    broker = Broker(tmp_path).start()
    device = unique()
    sink = open_sink(broker.url, device=device, queue_size=10, discovery=False)
    sub = None
    try:
        broker.stop()
        assert wait_until(lambda: not sink.connected, 5)
        track = make_track(1)
        times = [timed_write(sink, with_events([event("update", track)], i)) for i in range(60)]
        assert_fast(times)
        # Bounded: at most queue_size QoS 1 events wait in paho; the rest are counted.
        assert wait_until(lambda: sink._worker.pending == 0, 5)
        stats = sink.stats()
        assert stats["unacked"] <= 10 and stats["dropped"] >= 50
        assert stats["connected"] == 0

        broker.start()  # same port
        sub = Subscriber(broker.port, [f"edgeface/{device}/#"])
        assert wait_until(lambda: sink.connected, 5), sink.last_error
        assert wait_until(lambda: sink.stats()["unacked"] == 0, 5)  # the backlog went out
        sink.write(with_events([event("end", track)], 99))
        ended = sub.wait_for(f"edgeface/{device}/events", lambda p: b'"end"' in p)
        assert json.loads(ended[0][0])["track_id"] == 1
        # The retained state came back with the reconnect (the broker kept nothing).
        sub.wait_for(f"edgeface/{device}/availability", lambda p: p == b"online")
        assert sink.stats()["connects"] == 2 and sink.stats()["disconnects"] == 1
    finally:
        sink.close()
        if sub is not None:
            sub.close()
        broker.stop()


def test_snapshots_are_not_queued_while_disconnected(tmp_path):
    broker = Broker(tmp_path).start()
    sink = open_sink(broker.url, discovery=False)
    try:
        broker.stop()
        assert wait_until(lambda: not sink.connected, 5)
        for i in range(5):
            sink.write(with_events([event("start", make_track(i)), event("end", make_track(i))]))
        assert wait_until(lambda: sink._worker.pending == 0, 5)
        assert sink.snapshots_sent == 0 and sink.offline_drops >= 1
    finally:
        sink.close()
        broker.stop()


def test_a_broker_that_never_answers_costs_nothing_at_close(tmp_path):
    from mosquitto import free_port

    sink = MqttSink(f"mqtt://127.0.0.1:{free_port()}", device=unique(),
                    timing=MqttTiming(close_timeout=1.0))
    for r in lifecycle(3):
        sink.write(r)
    assert not sink.connected
    t = time.monotonic()
    sink.close()
    assert time.monotonic() - t < 2.0


def test_edgeface_run_builds_the_event_outputs_from_its_config(broker, tmp_path, capsys):
    from runtime_fakes import synthetic_frames, tiny_onnx, write_video

    from edgeface.cli import main

    device = unique()
    sub = Subscriber(broker.port, [f"edgeface/{device}/#"])
    cfg = tmp_path / "device.yaml"
    cfg.write_text(f"model: {tiny_onnx(tmp_path / 'tiny.onnx')}\n"
                   f"source: {write_video(tmp_path / 'clip.mp4', synthetic_frames(4))}\n"
                   "status_interval: 0\nmemory_limit: 0\n"
                   f"outputs:\n  json: det.jsonl\n  mqtt: {broker.url}\n"
                   f"  mqtt_device: {device}\n  crops: faces\n  crops_keep: 10\n")
    saved = cv2.getNumThreads()
    try:
        rc = main(["run", "--config", str(cfg)])
    finally:
        cv2.setNumThreads(saved)
    err = capsys.readouterr().err
    assert rc == 0, err
    assert (f"mqtt mqtt://127.0.0.1:{broker.port} edgeface/{device}/, discovery under "
            "homeassistant/" in err)
    assert f"crops {tmp_path / 'faces'}/ (newest 10, 100.0 MB kept)" in err
    sub.wait_for(f"edgeface/{device}/availability", lambda p: p == b"offline")
    assert [p for p, _ in sub.on(f"edgeface/{device}/availability")] == [b"online", b"offline"]
    sub.close()


def test_the_trackers_events_reach_the_broker(broker):
    """The real tracker's events (not hand-made ones): one start, one end with a snapshot."""
    from runtime_fakes import synthetic_frames

    from edgeface.frames import Detections, Frame, FrameResult, Timing
    from edgeface.runtime.tracking import Tracker

    device = unique()
    sub = Subscriber(broker.port, [f"edgeface/{device}/events", f"edgeface/{device}/snapshot"])
    sink = open_sink(broker.url, device=device, discovery=False)
    tracker = Tracker()
    none = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                      np.zeros((0, 5, 2), np.float32))
    try:
        for i, image in enumerate(synthetic_frames(16, (320, 240))):
            dets = none if i >= 8 else Detections(
                np.array([[100 + i, 50, 160 + i, 130]], np.float32), np.array([0.9], np.float32),
                np.zeros((1, 5, 2), np.float32))
            frame = Frame(i, 1700000000.0 + i * 0.5, image, 0.0)
            ids, events = tracker.update(dets, frame)
            sink.write(FrameResult(frame, dets, Timing(0, 0, 0), ids, events))
        types = [json.loads(p)["type"] for p, _ in
                 sub.wait_for(f"edgeface/{device}/events", count=2)]
        assert types[0] == "start" and types[-1] == "end"
        jpeg = sub.wait_for(f"edgeface/{device}/snapshot")[0][0]
        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (128, 96, 3)
    finally:
        sink.close()
        sub.close()
