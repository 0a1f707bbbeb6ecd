"""Config values that expand or quote without bound (issue 23, class 13): an alias bomb
inside a known key's value, and a long value quoted in the error. One short line each."""

from __future__ import annotations

import time

import pytest
from runtime_fakes import run_edgeface

from edgeface.errors import ConfigError
from edgeface.runtime.config import load_config


def bomb(key: str, depth: int = 6) -> str:
    """``key``'s value holds nine aliases nested ``depth`` deep: 9**(depth+1) leaves."""
    indent = "  " if "." in key else ""
    top, _, leaf = key.rpartition(".")
    y = f"{top}:\n" if top else ""
    y += f"{indent}{leaf}:\n{indent}  - &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for i in range(1, depth + 1):
        y += f"{indent}  - &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n"
    return y


@pytest.mark.parametrize("key", ["model", "source", "size", "threads", "duration",
                                 "confidence_threshold", "outputs.mqtt_prefix",
                                 "outputs.json"])
def test_an_alias_bomb_in_a_value_is_one_short_line(tmp_path, key):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(bomb(key))
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert time.monotonic() - t0 < 5
    msg = str(info.value)
    assert "more than 1000 items" in msg and len(msg) < 400, msg[:500]


@pytest.mark.parametrize("value", ["[" + ", ".join(["x" * 60] * 900) + "]",
                                   '"' + "y" * 60000 + '"'])
def test_a_long_value_is_cut_in_its_error(tmp_path, value):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"size: {value}\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert len(str(info.value)) < 400 and str(info.value).startswith(str(cfg))


def test_the_cli_prints_one_short_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(bomb("size", depth=7))  # 43 million leaves: a 390 MB error before
    p = run_edgeface("run", "--camera", "0", "-m", "x.onnx", "--config", str(cfg))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert len(p.stderr) < 400 and "more than 1000 items" in p.stderr, p.stderr[:500]


def test_small_lists_are_still_checked_normally(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("size: [1, 2]\n")
    with pytest.raises(ConfigError, match="size"):
        load_config(cfg)
