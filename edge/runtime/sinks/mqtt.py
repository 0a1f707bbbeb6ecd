"""MQTT output: track events, the live face count and a snapshot of each face, published to a
broker (paho-mqtt 2.x, the ``mqtt`` extra), with Home Assistant discovery.

Topics, under ``<prefix>/<device>/`` (:mod:`.mqtt_topics`):

- ``events``: one JSON message per track event (start / update / end), QoS 1.
- ``faces``: the number of confirmed tracks alive, retained, published when it changes.
- ``snapshot``: a JPEG of the face (its best view, cropped) at each track end, retained.
- ``availability``: ``online`` once connected, ``offline`` at a clean stop or, as the last
  will, when the connection dies; retained.

``write`` runs in the processing loop and only copies what it needs into a bounded backlog
(:mod:`.event_backlog`); one worker thread encodes and hands messages to paho, whose own
thread does the network and reconnects with backoff. Nothing here ever waits for the broker
while a frame waits. After every connect, before any waiting event: ``online``, the
discovery configs and the current count (a count that changed while away is one value).
"""

from __future__ import annotations

import json
import logging
import random
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from edgeface.errors import ConfigError, MissingDependency, require
from edgeface.frames import FrameResult
from edgeface.runtime.options import Option, boolean, number, string
from edgeface.runtime.sinks.background import Worker
from edgeface.runtime.sinks.base import SinkContext, SinkKind
from edgeface.runtime.sinks.event_backlog import EventBacklog
from edgeface.runtime.sinks.face_events import LiveTracks, best_view, encode_jpeg, event_message
from edgeface.runtime.sinks.mqtt_topics import (
    OFFLINE,
    ONLINE,
    PASSWORD_ENV,
    Topics,
    check_broker_url,
    check_topic_prefix,
    default_device,
    discovery_messages,
    ha_status_topic,
    parse_broker_url,
    topic_name,
)
from edgeface.runtime.sinks.registry import register_sink

log = logging.getLogger(__name__)

#: The largest packet the broker may send us (MQTT 5 Maximum Packet Size, CONNECT): we only
#: read acknowledgements (tens of bytes) and Home Assistant's ``online`` / ``offline``. A
#: broker drops a larger message for this client instead of sending it; without the bound,
#: a 150 MB retained message on homeassistant/status was read whole at every start
#: (RSS 606 MB, or an OOM kill), since paho 2.x has no inbound limit of its own.
MAX_INBOUND_PACKET = 16 * 1024
#: A status payload worth comparing (``online``); a longer one is ignored uncopied.
MAX_STATUS_PAYLOAD = 32
#: Events handed to paho and not yet acknowledged: paho's own in-flight window (20). The
#: rest wait in our backlog, where the newest are kept and no track is left open; paho keeps
#: what it holds across a reconnect and resends it first.
IN_FLIGHT = 20


def _paho() -> Any:
    """paho.mqtt.client, 2.x (1.x, e.g. Debian's python3-paho-mqtt, has other callbacks)."""
    client = require("paho.mqtt.client", "mqtt", "needed by --mqtt")
    if not hasattr(client, "CallbackAPIVersion"):
        version = getattr(sys.modules.get("paho.mqtt"), "__version__", "?")
        raise MissingDependency(
            f"paho-mqtt {version} is too old: --mqtt needs 2.x "
            "(Debian's python3-paho-mqtt is 1.6); install it with: pip install 'edgeface[mqtt]'")
    return client


#: 132, Unsupported protocol version: a 3.1.1-only broker (Mosquitto < 1.6). No 3.1.1
#: fallback: it has neither the Maximum Packet Size nor the retain handling that keep a
#: 150 MB retained status from being read whole (issue 23, class 3).
_NEEDS_V5 = (" (edgeface needs MQTT 5, for its inbound packet limit: Mosquitto >= 1.6, "
             "EMQX, HiveMQ, VerneMQ; upgrade the broker)")


def _connect_properties() -> Any:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)
    props.MaximumPacketSize = MAX_INBOUND_PACKET
    return props


def _live_only() -> Any:
    """QoS 1, and no retained message at subscribe: the connect announces anyway, and a
    retained status is what a hostile or stale publisher leaves behind."""
    from paho.mqtt.subscribeoptions import SubscribeOptions

    return SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)


@dataclass(frozen=True)
class MqttTiming:
    """The connection's clock: MQTT ``keepalive`` seconds, ``reconnect_delay`` (first, most)
    seconds between tries, ``announce_delay`` the most seconds a (re)connect waits at random
    before announcing (so that many devices restarting together do not answer at once),
    ``close_timeout`` seconds :meth:`MqttSink.close` spends sending what is queued."""

    keepalive: int = 30
    reconnect_delay: tuple[float, float] = (1.0, 60.0)
    announce_delay: float = 2.0
    close_timeout: float = 2.0


class MqttSink:
    """Publishes track events to an MQTT broker (see the module docstring for the topics).

    Bounded at every step: ``queue_size`` events wait in the backlog (past that the oldest
    go, whole tracks at a time), and at most ``IN_FLIGHT`` QoS 1 events wait in paho for
    the broker's acknowledgement (kept and resent across a reconnect). The count and the
    snapshot keep only their newest value, and neither is handed over while disconnected
    (the connect publishes the count; a snapshot is QoS 0, which paho drops), a snapshot
    only one at a time, so a slow link never queues images. Every drop is counted
    (:meth:`stats`).
    """

    def __init__(self, url: str, *, device: Optional[str] = None, prefix: str = "edgeface",
                 discovery: bool = True, discovery_prefix: str = "homeassistant",
                 ca_file: Optional[str] = None, password: Optional[str] = None,
                 snapshots: bool = True, queue_size: int = 100,
                 timing: MqttTiming = MqttTiming()):
        mqtt = _paho()
        self.broker = parse_broker_url(url)
        self.topics = Topics(check_topic_prefix("mqtt_prefix", prefix),
                             topic_name(device) if device else default_device())
        if device and not device.isascii():
            log.warning("mqtt: device name %r is published as %r (topics and Home Assistant "
                        "ids are a-z, 0-9, _ and -): two devices must differ there",
                        device, self.topics.device)
        self.discovery_prefix = (check_topic_prefix("mqtt_discovery_prefix", discovery_prefix)
                                 if discovery else None)
        self.snapshots = snapshots
        self.queue_size = queue_size
        self.announce_delay = timing.announce_delay
        self.close_timeout = timing.close_timeout
        self._live = LiveTracks()
        self._backlog = EventBacklog(queue_size)
        self._need_announce = False  # connected, but online/discovery/count not yet sent
        self._answered = False  # this connection got a CONNACK, accepting or refusing
        self._lock = threading.Lock()
        self._unacked: set[int] = set()  # QoS 1 mids handed to paho, not yet acknowledged
        self._early: set[int] = set()  # acknowledged before publish() returned their mid
        self._snapshot_mid: Optional[int] = None  # a snapshot paho has not written yet
        self._stopping = threading.Event()
        self.connected = False
        self.connects = self.disconnects = 0
        self.published = self.snapshots_sent = 0
        self.backlog_drops = 0  # paho refused a message (its queue full)
        self.offline_drops = 0  # snapshots not sent: disconnected, or the previous one pending
        self.last_error = ""

        # MQTT 5 (Mosquitto >= 1.6, EMQX, HiveMQ, ...) for its Maximum Packet Size; a clean
        # start with no session expiry is 3.1.1's clean session.
        c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                        client_id=f"edgeface-{self.topics.node}", protocol=mqtt.MQTTv5)
        c.will_set(self.topics.availability, OFFLINE, qos=1, retain=True)
        if self.broker.user:
            c.username_pw_set(self.broker.user, password or None)
        elif password:
            raise ConfigError(f"{PASSWORD_ENV} is set but the mqtt address names no user: "
                              "use mqtt://USER@HOST")
        if self.broker.tls:
            self._tls(c, ca_file)
        elif ca_file:
            raise ConfigError("mqtt_ca_file is set but the broker address is not mqtts://")
        c.reconnect_delay_set(*timing.reconnect_delay)
        # paho's own bound (default: none): it holds at most IN_FLIGHT events, the state of
        # a connect (availability, 3 configs, the count) and a snapshot, so this never bites.
        c.max_queued_messages_set(IN_FLIGHT + 32)
        c.on_connect, c.on_disconnect = self._on_connect, self._on_disconnect
        c.on_connect_fail, c.on_publish = self._on_connect_fail, self._on_publish
        c.on_message = self._on_message
        self._mqtt, self._client = mqtt, c
        self._worker = Worker(f"mqtt-{self.topics.device}", self._handle, queue_size)
        c.connect_async(self.broker.host, self.broker.port, keepalive=timing.keepalive,
                        clean_start=True, properties=_connect_properties())
        c.loop_start()  # paho's thread: connects, reconnects with backoff, does all I/O

    @staticmethod
    def _tls(client: Any, ca_file: Optional[str]) -> None:
        import ssl

        try:  # certificate and host name verified (None: the system's CAs)
            client.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"mqtt_ca_file: cannot load {ca_file or 'the system CAs'}: "
                              f"{exc}") from None
        client.tls_insecure_set(False)

    # ------------------------------------------------------------- processing loop side
    def write(self, result: FrameResult) -> None:
        events = result.events
        if not events:
            return
        image = result.frame.image
        for ev in events:
            self._backlog.add(ev.track.id, ev.type,
                              event_message(ev, self.topics.device, image))
            if ev.type == "end" and self.snapshots:
                crop = best_view(ev.track)
                if crop is not None:
                    self._worker.replace("snapshot", ("snapshot", crop))
        if self._live.update(events):
            self._worker.replace("count", ("count", self._live.count))
        self._worker.replace("pump", ("pump",))

    def flush(self) -> None:
        pass  # delivery is asynchronous by design; close() waits, boundedly

    # ------------------------------------------------------------------ worker side
    def _handle(self, job: tuple) -> None:
        kind = job[0]
        if kind == "pump":
            self._pump()
        elif kind == "count":
            if self.connected and not self._need_announce:  # else the connect sends it
                self._publish(self.topics.faces, str(self._live.count), 1, retain=True)
        elif kind == "snapshot":
            if not self.connected or self._snapshot_mid is not None:
                self.offline_drops += 1
                return
            info = self._client.publish(self.topics.snapshot, encode_jpeg(job[1]), qos=0,
                                        retain=True)
            if info.rc == self._mqtt.MQTT_ERR_SUCCESS:
                with self._lock:
                    if info.mid in self._early:
                        self._early.discard(info.mid)
                    else:
                        self._snapshot_mid = info.mid
                self.snapshots_sent += 1
            else:
                self.offline_drops += 1
        elif kind == "announce":
            if job[1] and self._stopping.wait(job[1]):
                return
            self._announce()
            self._pump()

    def _pump(self) -> None:
        """Hand waiting events to paho, oldest first, up to IN_FLIGHT unacknowledged; an
        acknowledgement calls again. Nothing while disconnected: paho would queue it all."""
        while self.connected and not self._need_announce and len(self._unacked) < IN_FLIGHT:
            payload = self._backlog.pop()
            if payload is None:
                return
            self._publish(self.topics.events, json.dumps(payload, separators=(",", ":")), 1)

    def _announce(self) -> None:
        """Discovery configs (retained) and the current count: after each connect, and when
        Home Assistant says it is back (its retained state may have been lost)."""
        self._need_announce = False
        if self.discovery_prefix:
            for topic, payload in discovery_messages(self.topics, self.discovery_prefix):
                self._publish(topic, payload, 1, retain=True)
        self._publish(self.topics.faces, str(self._live.count), 1, retain=True)

    def _publish(self, topic: str, payload: Any, qos: int, retain: bool = False) -> bool:
        if self._track(self._client.publish(topic, payload, qos=qos, retain=retain), qos):
            return True
        self.backlog_drops += 1
        return False

    def _track(self, info: Any, qos: int) -> bool:
        """Note a QoS 1 message paho accepted, until its acknowledgement (on_publish)."""
        err = self._mqtt.MQTTErrorCode
        # A QoS 1 message published while disconnected reports NO_CONN but is queued and
        # resent on reconnect (its on_publish comes then): it was handed over.
        if not (info.rc == err.MQTT_ERR_SUCCESS or (info.rc == err.MQTT_ERR_NO_CONN and qos)):
            return False
        if qos:
            with self._lock:
                if info.mid in self._early:  # acknowledged before publish() returned
                    self._early.discard(info.mid)
                else:
                    self._unacked.add(info.mid)
        return True

    # -------------------------------------------------------------- paho thread side
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any) -> None:
        self._answered = True
        if reason_code.is_failure:
            self._down(f"broker refused the connection: {reason_code}"
                       + (_NEEDS_V5 if getattr(reason_code, "value", None) == 132 else ""))
            return
        self.connected = True
        self.connects += 1
        if self.last_error:
            log.warning("mqtt: connected to %s again", self.broker.redacted())
            self.last_error = ""
        if self._stopping.is_set():
            return
        self._need_announce = True
        self._track(client.publish(self.topics.availability, ONLINE, qos=1, retain=True), 1)
        if self.discovery_prefix:  # subscriptions do not survive a clean session
            client.subscribe(ha_status_topic(self.discovery_prefix), options=_live_only())
        self._worker.replace("announce", ("announce", 0.0))

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        was = self.connected
        self.connected = False
        with self._lock:
            self._snapshot_mid = None  # paho discards unsent QoS 0 packets on reconnect
        if was:
            self.disconnects += 1
            if not self._stopping.is_set():
                self._down(f"connection lost: {reason_code}")
        elif not self._answered and not self._stopping.is_set():
            # TCP accepted, then no CONNACK within the keepalive: as loud as a refusal
            self._down(f"no answer to CONNECT ({reason_code})")
        self._answered = False

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        # paho calls this from its `except OSError` block and passes nothing: the reason
        # (refused, unreachable, a certificate that does not verify) is the one in hand.
        exc = sys.exc_info()[1]
        self._down(f"cannot connect: {exc}" if exc else "cannot connect")

    def _down(self, why: str) -> None:
        self.connected = False
        if why != self.last_error:  # once per cause, not once per retry
            log.warning("mqtt: %s: %s; retrying with backoff", self.broker.redacted(), why)
        self.last_error = why

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any,
                    properties: Any) -> None:
        with self._lock:
            if mid in self._unacked:
                self._unacked.discard(mid)
            elif mid == self._snapshot_mid:
                self._snapshot_mid = None
            elif len(self._early) < 10000:  # bounded whatever paho does
                self._early.add(mid)
        self.published += 1
        if len(self._backlog):
            self._worker.replace("pump", ("pump",))

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        payload = msg.payload
        if self.discovery_prefix and msg.topic == ha_status_topic(self.discovery_prefix) \
                and len(payload) <= MAX_STATUS_PAYLOAD and payload.strip().lower() == b"online":
            # Home Assistant restarted. Its docs ask for a random delay, so that many
            # devices do not all answer at once.
            self._worker.replace("announce", ("announce",
                                              random.uniform(0, self.announce_delay)))

    # -------------------------------------------------------------------- reporting
    @property
    def dropped(self) -> int:
        """Messages never sent: queue or backlog full, snapshots offline or superseded (a
        superseded count is not a loss: its newer value went out instead)."""
        return (self._worker.dropped + self._worker.superseded.get("snapshot", 0)
                + self._backlog.dropped + self.backlog_drops + self.offline_drops)

    #: The keys of :meth:`stats` that are gauges (the others are cumulative counters).
    STATS_GAUGES = ("connected", "queued", "unacked")

    def stats(self) -> dict[str, float]:
        """Counters for /metrics (cumulative, except connected, queued and unacked)."""
        return {"connected": int(self.connected), "connects": self.connects,
                "disconnects": self.disconnects, "published": self.published,
                "snapshots": self.snapshots_sent, "dropped": self.dropped,
                "queued": self._worker.pending + len(self._backlog),
                "unacked": len(self._unacked),
                "errors": self._worker.errors}

    def describe(self) -> str:
        ha = f", discovery under {self.discovery_prefix}/" if self.discovery_prefix else ""
        return f"mqtt {self.broker.redacted()} {self.topics.base}/{ha}"

    def close(self) -> None:
        """Send what is queued and ``offline`` (retained), for up to ``close_timeout``."""
        deadline = time.monotonic() + self.close_timeout
        self._stopping.set()
        self._worker.close(self.close_timeout / 2)
        left = self._backlog.clear()
        if left:
            log.warning("mqtt: %d event(s) not sent at close", left)
        if self.connected:
            self._track(self._client.publish(self.topics.availability, OFFLINE, qos=1,
                                             retain=True), 1)
            while self._unacked and self.connected and time.monotonic() < deadline:
                time.sleep(0.01)
        self._client.disconnect()  # a clean DISCONNECT: the broker discards the will
        # loop_stop joins paho's thread without a timeout; a connect in progress (DNS, TCP)
        # may take seconds, so wait for it in a helper thread, boundedly.
        stopper = threading.Thread(target=self._client.loop_stop, daemon=True)
        stopper.start()
        stopper.join(max(0.1, deadline - time.monotonic()))
        if self._unacked:
            log.warning("mqtt: %d message(s) not acknowledged at close", len(self._unacked))


def _build(values: Mapping[str, Any], context: SinkContext) -> MqttSink:
    import os

    return MqttSink(values["mqtt"], device=values.get("mqtt_device"),
                    prefix=values.get("mqtt_prefix") or "edgeface",
                    discovery=values.get("mqtt_discovery", True) is not False,
                    discovery_prefix=values.get("mqtt_discovery_prefix") or "homeassistant",
                    ca_file=values.get("mqtt_ca_file"),
                    password=os.environ.get(PASSWORD_ENV) or None,
                    snapshots=values.get("mqtt_snapshot", True) is not False,
                    queue_size=values.get("mqtt_queue") or 100)


register_sink(SinkKind("mqtt", (
    Option("mqtt", "--mqtt", check_broker_url, metavar="[mqtt://|mqtts://][USER@]HOST[:PORT]",
           help="Publish face events to this MQTT broker (mqtts: TLS, verified). The "
                f"password comes from ${PASSWORD_ENV}, never from the address."),
    Option("mqtt_device", "--mqtt-device", string, metavar="NAME",
           help="Device name in topics and in Home Assistant [default: the host name]."),
    Option("mqtt_prefix", "--mqtt-prefix", check_topic_prefix, "edgeface", metavar="TOPIC",
           help="Topics are PREFIX/DEVICE/events, /faces, /snapshot, /availability."),
    Option("mqtt_ca_file", "--mqtt-ca-file", string, metavar="PATH", path=True,
           help="CA certificate(s) for mqtts:// [default: the system's]."),
    Option("mqtt_discovery", "--mqtt-discovery", boolean, True, cli="bool",
           help="Announce the device to Home Assistant (MQTT discovery)."),
    Option("mqtt_discovery_prefix", "--mqtt-discovery-prefix", check_topic_prefix,
           "homeassistant", metavar="TOPIC", help="Home Assistant's discovery prefix."),
    Option("mqtt_snapshot", "--mqtt-snapshot", boolean, True, cli="bool",
           help="Publish a JPEG crop of each face when its track ends."),
    Option("mqtt_queue", "--mqtt-queue", number(1, 100000, integer=True), 100, metavar="N",
           help="Events kept while the broker is slow or away (the newest); more are dropped "
                "(counted)."),
), _build))
