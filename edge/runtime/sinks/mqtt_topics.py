"""MQTT names and messages: the broker URL, the device's topics, and the Home Assistant
discovery configs that announce them (one device with a "face present" binary sensor, a
"faces" sensor and a "last face" camera).

Home Assistant: https://www.home-assistant.io/integrations/mqtt/ ("Discovery messages"),
binary_sensor.mqtt, sensor.mqtt and camera.mqtt.
"""

from __future__ import annotations

import json
import re
import socket
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import urlsplit

from edgeface import __version__
from edgeface.errors import ConfigError

#: Environment variable with the broker password (from the service's EnvironmentFile).
PASSWORD_ENV = "EDGEFACE_MQTT_PASSWORD"
ONLINE, OFFLINE = "online", "offline"


@dataclass(frozen=True)
class BrokerUrl:
    """``[mqtt://|mqtts://][USER@]HOST[:PORT]``."""

    host: str
    port: int
    tls: bool
    user: Optional[str] = None

    def redacted(self) -> str:
        """For logs and the startup line: the user name, never a password."""
        user = f"{self.user}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{host}:{self.port}"


def parse_broker_url(text: str, key: str = "mqtt") -> BrokerUrl:
    """Parse the broker setting; a password in it is refused (it belongs in the environment)."""
    raw = text.strip()
    if "://" not in raw:
        raw = "mqtt://" + raw
    try:
        u = urlsplit(raw)
        port = u.port
    except ValueError as exc:
        raise ConfigError(f"{key}: invalid broker address {text!r}: {exc}") from None
    if u.scheme not in ("mqtt", "mqtts"):
        raise ConfigError(f"{key}: {text!r}: the scheme must be mqtt:// or mqtts:// (TLS)")
    if u.password is not None:
        raise ConfigError(f"{key}: do not put the password in the broker address; set "
                          f"{PASSWORD_ENV} in the service's environment file instead")
    if not u.hostname or u.path.strip("/") or u.query or u.fragment:
        raise ConfigError(f"{key}: expected [mqtt://|mqtts://][USER@]HOST[:PORT], got {text!r}")
    tls = u.scheme == "mqtts"
    return BrokerUrl(u.hostname, port or (8883 if tls else 1883), tls, u.username or None)


def check_broker_url(key: str, v: Any) -> str:
    """Option check: the address must parse; the text is kept as given."""
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(f"{key}: expected [mqtt://|mqtts://][USER@]HOST[:PORT]")
    parse_broker_url(v, key)
    return v.strip()


def check_topic_prefix(key: str, v: Any) -> str:
    """A topic prefix: UTF-8 text (what MQTT requires; a non-UTF-8 argument reaches us with
    surrogates and crashed paho), no wildcards, no control characters, no empty levels at
    either end."""
    if not isinstance(v, str) or not v.strip("/ "):
        raise ConfigError(f"{key}: expected a topic prefix such as 'edgeface'")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{key}: {v!r} is not valid UTF-8 (MQTT topics are UTF-8 text)"
                          ) from None
    if any(c in v for c in "+#") or _CONTROL.search(v) or len(v) > 200:
        raise ConfigError(f"{key}: {v!r}: a topic prefix may not contain +, # or control "
                          "characters (and is at most 200 characters)")
    return v.strip("/ ")


# MQTT forbids NUL and discourages the other C0 and C1 controls (MQTT 3.1.1, 1.5.3).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def topic_name(name: str) -> str:
    """``name`` as one topic level and Home Assistant id: ``[a-z0-9_-]``, at most 64.

    Accents are dropped (``été`` -> ``ete``, not ``t``); characters with no ASCII form
    (``камера``, ``門``, an emoji, undecodable bytes) add a digest of the name, so two such
    names stay two devices."""
    folded = name.strip().lower()
    lost = False
    if not folded.isascii():
        import unicodedata  # only for such a name: a 1 MB extension module

        folded = "".join(c for c in unicodedata.normalize("NFKD", folded)
                         if not unicodedata.combining(c))
        lost = any(not c.isascii() and not c.isspace() for c in folded)
    s = re.sub(r"[^a-z0-9_-]+", "_", folded).strip("_")
    if lost:
        import zlib

        digest = zlib.crc32(name.strip().encode("utf-8", "surrogateescape"))
        s = f"{s[:55]}_{digest:08x}".lstrip("_")
    return s[:64] or "edgeface"


def default_device() -> str:
    """The host's short name (``pi-door`` of ``pi-door.lan``)."""
    return topic_name(socket.gethostname().split(".")[0])


@dataclass(frozen=True)
class Topics:
    """Where one device publishes: ``<prefix>/<device>/`` + events, faces, snapshot,
    availability; ``node`` is the device's id in Home Assistant (unique per prefix and
    device)."""

    prefix: str
    device: str
    base: str = field(init=False)
    events: str = field(init=False)
    faces: str = field(init=False)
    snapshot: str = field(init=False)
    availability: str = field(init=False)
    node: str = field(init=False)

    def __post_init__(self) -> None:
        base = f"{self.prefix}/{self.device}"
        for leaf in ("events", "faces", "snapshot", "availability"):
            object.__setattr__(self, leaf, f"{base}/{leaf}")
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "node", topic_name(f"{self.prefix}_{self.device}"))


def ha_status_topic(discovery_prefix: str) -> str:
    """Where Home Assistant says ``online`` when it (re)starts."""
    return f"{discovery_prefix}/status"


def discovery_messages(topics: Topics, discovery_prefix: str) -> list[tuple[str, str]]:
    """(config topic, JSON payload) of each entity, to publish retained."""
    node = topics.node
    common = {
        "availability_topic": topics.availability,
        "payload_available": ONLINE, "payload_not_available": OFFLINE,
        "device": {"identifiers": [node], "name": f"edgeface {topics.device}",
                   "manufacturer": "edgeface", "model": "FeatherFace face detector",
                   "sw_version": __version__},
        "origin": {"name": "edgeface", "sw_version": __version__},
    }
    entities = [
        ("binary_sensor", "face_present", {
            "name": "Face present", "device_class": "occupancy",
            "state_topic": topics.faces,
            # One topic carries the count; the binary sensor derives ON/OFF from it.
            "value_template": "{{ 'ON' if (value | int(0)) > 0 else 'OFF' }}"}),
        ("sensor", "faces", {
            "name": "Faces", "state_topic": topics.faces, "state_class": "measurement",
            "unit_of_measurement": "faces", "icon": "mdi:face-recognition"}),
        ("camera", "snapshot", {
            "name": "Last face", "topic": topics.snapshot, "icon": "mdi:face-recognition"}),
    ]
    out = []
    for component, suffix, fields in entities:
        uid = f"{node}_{suffix}"
        payload = {**fields, "unique_id": uid, **common}
        out.append((f"{discovery_prefix}/{component}/{uid}/config",
                    json.dumps(payload, separators=(",", ":"))))
    return out
