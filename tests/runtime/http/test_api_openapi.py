"""/openapi.json: an OpenAPI 3 document checked by structure (paths, operations, responses,
schemas, every $ref resolvable), that names exactly the server's routes."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

from edgeface.http.auth import TokenAuth
from edgeface.http.feed import EventFeed
from edgeface.http.latest import LatestSink
from edgeface.http.openapi import spec
from edgeface.http.server import StatusServer
from edgeface.runtime.metrics import Metrics

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)


def check_schema(schema, where):
    assert isinstance(schema, dict), where
    if "$ref" in schema:
        return
    assert {"type", "enum", "properties", "items"} & set(schema), where
    for name, sub in schema.get("properties", {}).items():
        check_schema(sub, f"{where}.{name}")
    if "items" in schema:
        check_schema(schema["items"], f"{where}[]")
    for req in schema.get("required", []):
        assert req in schema["properties"], f"{where}: required {req} is not a property"


@pytest.mark.parametrize("camera", [True, False])
def test_document_structure(camera):
    doc = json.loads(json.dumps(spec(camera)))  # JSON-clean
    assert re.match(r"^3\.\d+\.\d+$", doc["openapi"])
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http",
                                                              "scheme": "bearer"}
    for name, schema in doc["components"]["schemas"].items():
        check_schema(schema, name)
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"], ref
    for path, item in doc["paths"].items():
        assert path.startswith("/"), path
        assert set(item) <= METHODS and item, path
        for method, op in item.items():
            assert op["summary"], (path, method)
            assert op["responses"], (path, method)
            for code, resp in op["responses"].items():
                assert re.match(r"^[1-5]\d\d$", code) and resp["description"], (path, code)
            for param in re.findall(r"{(\w+)}", path):
                assert any(p["name"] == param and p["in"] == "path"
                           for p in op.get("parameters", [])), (path, param)
    detect = doc["paths"]["/detect"]["post"]
    assert set(detect["responses"]) == {"200", "400", "401", "411", "413", "415", "429",
                                        "503"}
    assert {"image/jpeg", "multipart/form-data"} <= set(detect["requestBody"]["content"])
    for code in ("429", "503"):
        assert "Retry-After" in detect["responses"][code]["headers"]
    record = doc["components"]["schemas"]["Record"]
    assert set(record["required"]) == {"ts", "frame", "width", "height", "latency_ms", "faces"}
    assert doc["paths"]["/healthz"]["get"]["security"] == []


@pytest.mark.parametrize("camera", [True, False])
def test_served_document_names_every_route(camera):
    feed = EventFeed() if camera else None
    server = StatusServer(LatestSink(), Metrics(), "127.0.0.1", 0, auth=TokenAuth(None),
                          feed=feed, camera=camera).start()
    try:
        with urllib.request.urlopen(server.url + "/openapi.json", timeout=5) as r:
            doc = json.load(r)
        documented = {re.sub(r"{n}\.jpg$", "*", p) for p in doc["paths"]}
        served = set(server.router.paths()) - {"/stream"}  # /stream: an alias
        assert documented - {"/detect"} == served  # /detect: only with an API
    finally:
        server.close()
        if feed is not None:
            feed.close()
