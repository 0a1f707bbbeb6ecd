"""The OpenAPI 3 description of the device's HTTP API, served at ``/openapi.json``.

Written by hand (a dict, no framework): it is the contract clients code against, so it
changes only when the API does. ``tests/runtime/http/test_api_openapi.py`` checks its structure
and that it names every route the server has.
"""

from __future__ import annotations

from typing import Any

from edgeface import __version__
from edgeface.http import limits as L


def _error(description: str, retry_after: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if retry_after:
        out["headers"] = {"Retry-After": {"description": "Seconds to wait before retrying.",
                                          "schema": {"type": "integer", "minimum": 1}}}
    return out


def _json(ref: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


_NUM = {"type": "number"}
_BOX = {"type": "array", "items": _NUM, "minItems": 4, "maxItems": 4,
        "description": "x1, y1, x2, y2 in the image's pixels"}
_POINT = {"type": "array", "items": _NUM, "minItems": 2, "maxItems": 2}
_UNAUTHORIZED = _error("No or wrong token (only when the server has one): send "
                       "`Authorization: Bearer <EDGEFACE_API_TOKEN>`.")

SCHEMAS: dict[str, Any] = {
    "Face": {"type": "object", "required": ["box", "score", "landmarks"], "properties": {
        "box": _BOX, "score": {"type": "number", "minimum": 0, "maximum": 1},
        "landmarks": {"type": "array", "items": _POINT, "minItems": 5, "maxItems": 5,
                      "description": "eyes, nose, mouth corners"},
        "track_id": {"type": ["integer", "null"],
                     "description": "`run` with tracking only"}}},
    "Record": {"type": "object", "description": "One image's faces: the record `edgeface "
               "detect --json` and `edgeface run` write.",
               "required": ["ts", "frame", "width", "height", "latency_ms", "faces"],
               "properties": {
                   "ts": {"type": "number", "description": "Unix time"},
                   "frame": {"type": "integer",
                             "description": "index of the image in the request"},
                   "width": {"type": "integer"}, "height": {"type": "integer"},
                   "latency_ms": {"type": "number",
                                  "description": "preprocess + inference + postprocess"},
                   "faces": {"type": "array", "items": {"$ref": "#/components/schemas/Face"}},
                   "image": {"type": "string",
                             "description": "the part's filename (else its field name), "
                                            "or `body` for a raw image body"},
                   "detected": {"type": "boolean"}}},
    "DetectResponse": {"type": "object", "required": ["results"], "properties": {
        "results": {"type": "array", "items": {"$ref": "#/components/schemas/Record"}}}},
    "Error": {"type": "object", "required": ["error", "status"], "properties": {
        "error": {"type": "string"}, "detail": {"type": "string"},
        "status": {"type": "integer"}}},
    "Status": {"type": "object",
               "required": ["camera", "fps", "frames", "gated_frames", "rss_mb", "soc_c"],
               "properties": {
                   "camera": {"type": "boolean"}, "fps": _NUM,
                   "frames": {"type": "integer"}, "gated_frames": {"type": "integer"},
                   "faces": {"type": "integer"}, "rss_mb": _NUM, "peak_rss_mb": _NUM,
                   "soc_c": {"type": ["number", "null"]}, "uptime_s": _NUM,
                   "api": {"type": ["object", "null"]}}},
    "Event": {"type": "object", "required": ["n", "type", "track_id", "ts"], "properties": {
        "n": {"type": "integer"}, "type": {"enum": ["start", "update", "end"]},
        "track_id": {"type": "integer"}, "ts": _NUM, "box": _BOX, "score": _NUM,
        "crop": {"type": ["string", "null"], "description": "URL of the face's JPEG"}}},
}


def spec(camera: bool = True) -> dict[str, Any]:
    """The description; ``camera`` False (``edgeface serve``) leaves the camera's paths out."""
    paths: dict[str, Any] = {
        "/detect": {"post": {
            "summary": "Faces in one image (raw body) or up to "
                       f"{L.API_MAX_IMAGES} (multipart/form-data)",
            "description": "JPEG, PNG or BMP, recognised by content whatever the "
                           "Content-Type says. The declared size is checked before decoding.",
            "requestBody": {"required": True, "content": {
                "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
                "image/bmp": {"schema": {"type": "string", "format": "binary"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "multipart/form-data": {"schema": {"type": "object", "properties": {
                    "image": {"type": "array", "maxItems": L.API_MAX_IMAGES,
                              "items": {"type": "string", "format": "binary"}}}}}}},
            "responses": {
                "200": _json("DetectResponse", "One record per image, in order."),
                "400": _error("Malformed: empty body, bad multipart, more than "
                              f"{L.API_MAX_IMAGES} images, an image that does not decode."),
                "401": _UNAUTHORIZED,
                "411": _error("No Content-Length (chunked bodies are not accepted)."),
                "413": _error(f"Body over {L.MAX_BODY_BYTES} bytes (refused before reading) "
                              "or an image declaring more pixels than the limit (refused "
                              "before decoding)."),
                "415": _error("Not JPEG, PNG or BMP."),
                "429": _error("Over the rate limit (per client or in total).", True),
                "503": _error("The queue is full or the request waited too long.", True)}}},
        "/status": {"get": {"summary": "FPS, frames, memory, SoC temperature, API counters",
                            "responses": {"200": _json("Status", "Now."),
                                          "401": _UNAUTHORIZED}}},
        "/healthz": {"get": {"summary": "200 while the device works (never needs the token)",
                             "security": [],
                             "responses": {"200": {"description": "ok"},
                                           "503": {"description": "starting or stalled"}}}},
        "/metrics": {"get": {"summary": "Prometheus text exposition",
                             "responses": {"200": {"description": "metrics", "content": {
                                 "text/plain": {"schema": {"type": "string"}}}},
                                 "401": _UNAUTHORIZED}}},
        "/openapi.json": {"get": {"summary": "This description",
                                  "responses": {"200": {"description": "OpenAPI 3",
                                                        "content": {"application/json": {}}},
                                                "401": _UNAUTHORIZED}}},
        "/": {"get": {"summary": "The page (HTML); `?token=` sets its session cookie",
                      "parameters": [{"name": "token", "in": "query", "required": False,
                                      "schema": {"type": "string"}}],
                      "responses": {"200": {"description": "the page",
                                            "content": {"text/html": {}}},
                                    "303": {"description": "token accepted: cookie set"},
                                    "401": {"description": "token required (HTML)"}}}},
    }
    if camera:
        jpeg = {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}
        paths.update({
            "/detections": {"get": {"summary": "The newest frame's record",
                                    "responses": {"200": _json("Record", "Newest frame."),
                                                  "401": _UNAUTHORIZED,
                                                  "503": _error("No frame yet.", True)}}},
            "/snapshot.jpg": {"get": {"summary": "The newest annotated frame",
                                      "responses": {"200": {"description": "JPEG",
                                                            "content": jpeg},
                                                    "401": _UNAUTHORIZED,
                                                    "503": _error("No frame yet.", True)}}},
            "/stream.mjpg": {"get": {"summary": "Annotated frames (multipart/x-mixed-replace)",
                                     "responses": {"200": {"description": "MJPEG stream"},
                                                   "401": _UNAUTHORIZED,
                                                   "503": _error("Too many viewers.", True)}}},
            "/events": {"get": {"summary": "Recent face events, newest first",
                                "responses": {"200": {"description": "events", "content": {
                                    "application/json": {"schema": {"type": "array", "items": {
                                        "$ref": "#/components/schemas/Event"}}}}},
                                    "401": _UNAUTHORIZED}}},
            "/events/{n}.jpg": {"get": {
                "summary": "The crop of event n",
                "parameters": [{"name": "n", "in": "path", "required": True,
                                "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "JPEG", "content": jpeg},
                              "401": _UNAUTHORIZED,
                              "404": _error("No such event (or no crop).")}}},
        })
    return {
        "openapi": "3.1.0",
        "info": {"title": "edgeface device API", "version": __version__,
                 "description": "Face detection on the device. With EDGEFACE_API_TOKEN set "
                                "(required beyond loopback) every path but /healthz wants "
                                "the bearer token."},
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }
