"""`edgeface run --config`: YAML keys = flags, flags win, unknown keys are errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import edgeface.http.sink  # noqa: F401  registers outputs.http, which the template sets
from edgeface.common.sizes import parse_size, parse_wxh
from edgeface.errors import EXIT_USAGE, ConfigError
from edgeface.runtime.config import defaults, load_config, merge, output_options, validate

TEMPLATE = Path(__file__).resolve().parents[2] / "edge" / "service" / "templates" / "config.yaml"


def write(tmp_path, text):
    p = tmp_path / "config.yaml"
    p.write_text(text)
    return p


def test_load_normalises_and_resolves_relative_paths(tmp_path):
    p = write(tmp_path, """
model: models/v1.onnx
source: clips/a.mp4
size: 320x240
confidence_threshold: 0.6
max_detections: 20
threads: 2
provider: CUDA
memory_limit: 300M
outputs:
  json: out/det.jsonl
  http: 0.0.0.0:9000
  video: null
""")
    cfg = load_config(p)
    assert cfg["model"] == str(tmp_path / "models/v1.onnx")
    assert cfg["source"] == str(tmp_path / "clips/a.mp4")
    assert cfg["size"] == (320, 240) and cfg["provider"] == "cuda"
    assert cfg["outputs"] == {"json": str(tmp_path / "out/det.jsonl"), "http": "0.0.0.0:9000"}
    assert "video" not in cfg["outputs"]


@pytest.mark.parametrize("source", ["rtsp://cam/1", "0", "csi:1", "picamera", "/dev/video2"])
def test_non_path_sources_are_kept(tmp_path, source):
    assert load_config(write(tmp_path, f"source: '{source}'\n"))["source"] == source


def test_unknown_key_names_it_and_lists_valid_ones(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "model: m.onnx\nconfidence: 0.3\n"))
    msg = str(e.value)
    assert e.value.exit_code == EXIT_USAGE
    assert "unknown key 'confidence'" in msg and str(tmp_path) in msg
    assert "confidence_threshold" in msg and "nms_threshold" in msg and "outputs" in msg
    with pytest.raises(ConfigError, match=r"unknown key 'outputs.kafka' .*"
                                          r"json, json_max_size, json_keep, video, .*http"):
        load_config(write(tmp_path, "outputs:\n  kafka: broker:9092\n"))


@pytest.mark.parametrize("text, match", [
    ("confidence_threshold: 1.5", r"'confidence_threshold': 1.5 is outside \[0, 1\]"),
    ("nms_threshold: 0", r"'nms_threshold': 0 is outside \(0, 1\]"),
    ("threads: two", r"'threads': expected an integer"),
    ("max_detections: 2.5", r"'max_detections': expected an integer"),
    ("arena: yes please", r"'arena': expected true or false"),
    ("provider: npu", r"'provider': expected one of auto, cpu, cuda, tensorrt"),
    ("size: 416x", r"'size' '416x': expected WIDTHxHEIGHT"),
    ("memory_limit: lots", r"invalid size 'lots'"),
    ("outputs: [json]", r"'outputs': expected a mapping"),
    ("camera: 0\nsource: a.mp4", r"set only one of source, camera, picamera, csi"),
    ("- a\n- b", r"expected a mapping"),
    ("model: a: b", r"config.yaml line 1: invalid YAML: mapping values"),
])
def test_invalid_values(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path, text + "\n"))


def test_renamed_key_still_works_with_a_warning(tmp_path, capsys):
    assert load_config(write(tmp_path, "input_size: 320x240\n"))["size"] == (320, 240)
    assert "config key 'input_size' is deprecated, use 'size'" in capsys.readouterr().err


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    assert load_config(write(tmp_path, "# only comments\n")) == {}


def test_merge_precedence():
    file_values = validate({"confidence_threshold": 0.7, "threads": 2, "camera": 1,
                            "outputs": {"http": "8080"}})
    base = defaults()
    flags = {**{k: v for k, v in base.items() if k != "outputs"},
             **dict.fromkeys(output_options()), "threads": 4, "source": "clip.mp4",
             "json": "x.jsonl"}
    merged = merge(file_values, flags, explicit={"threads", "source", "json"})
    assert merged["confidence_threshold"] == 0.7  # from the file
    assert merged["threads"] == 4  # the flag wins
    assert merged["source"] == "clip.mp4" and merged["camera"] is None  # source replaced
    assert {k: merged["outputs"][k] for k in ("json", "json_max_size", "json_keep", "video",
                                              "http")} == \
        {"json": "x.jsonl", "json_max_size": None, "json_keep": 3, "video": None, "http": "8080"}
    # Every other output keeps its default (the face-event outputs: off).
    assert merged["outputs"] == {**base["outputs"], "json": "x.jsonl", "http": "8080"}
    assert merged["nms_threshold"] == base["nms_threshold"]
    assert defaults()["outputs"]["json"] is None  # merge copies, never mutates the defaults


def test_template_is_valid_and_documents_every_key():
    text = TEMPLATE.read_text()
    data = yaml.safe_load(text)
    cfg = validate(data, base=TEMPLATE.parent)
    assert set(data) == set(defaults()), "the template must show every key"
    assert set(data["outputs"]) == set(output_options())
    assert cfg["camera"] == 0 and cfg["outputs"]["http"].startswith("127.0.0.1:")
    # Each key has a comment right above it (or shares one with the key above it).
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^\s*(\w+):", line)
        if m and m.group(1) != "outputs":
            above = lines[i - 1].strip()
            assert above.startswith("#") or re.match(r"^\w+:", above), \
                f"key {m.group(1)} is not documented"
    for key, value in data.items():
        if key not in ("outputs", "model", "camera", "http") and key in defaults():
            default = defaults()[key]
            if key == "memory_limit":
                assert parse_size(value) == parse_size(default)
            else:
                assert value == default, f"template {key}={value!r} != default {default!r}"


@pytest.mark.parametrize("text, expected", [
    ("416", (416, 416)), ("640x480", (640, 480)), ("640X480", (640, 480)), (320, (320, 320)),
    ([640, 360], (640, 360)), (None, None)])
def test_parse_wxh(text, expected):
    assert parse_wxh(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("512M", 512 << 20), ("512MB", 512 << 20), ("512MiB", 512 << 20), ("1.5G", 3 << 29),
    ("200k", 200 << 10), ("1048576", 1 << 20), (4096, 4096), ("0", None), ("none", None),
    (None, None)])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["12Q", "-5M", "M", "", True])
def test_parse_size_rejects(text):
    with pytest.raises(ConfigError):
        parse_size(text)
