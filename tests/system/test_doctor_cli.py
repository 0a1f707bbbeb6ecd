"""`edgeface doctor` on this machine: exit status and JSON for a config that can run and for
configs that cannot."""

from __future__ import annotations

import json

import pytest
from runtime_fakes import tiny_onnx

from edgeface.cli import main


@pytest.fixture(autouse=True)
def no_installed_config(monkeypatch):
    """This machine's own /etc/edgeface/config.yaml (if any) must not leak into the tests."""
    monkeypatch.setattr("edgeface.cli.doctor_cmd.default_config", lambda: None)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_onnx(tmp_path_factory.mktemp("models") / "tiny.onnx")


def doctor_json(capsys, *args):
    code = main(["doctor", "--json", *args])
    out = capsys.readouterr().out
    doc = json.loads(out)
    return code, doc, {c["check"]: c for c in doc["checks"]}


def config(tmp_path, text):
    p = tmp_path / "config.yaml"
    p.write_text(text)
    return str(p)


def test_a_config_that_can_run_exits_0(tmp_path, model, capsys):
    (tmp_path / "frames").mkdir()
    cfg = config(tmp_path, f"model: {model}\nsource: frames\n")
    code, doc, by = doctor_json(capsys, "--config", cfg)
    assert code == 0 and doc["ok"] and doc["exit_code"] == 0
    assert doc["config"] == cfg
    assert by["model"]["status"] == "ok" and "loads (onnxruntime" in by["model"]["summary"]
    assert by["source"]["status"] == "ok" and by["source"]["summary"].startswith("folder ")
    assert by["config"]["details"]["kind"] == "folder"
    assert [c["check"] for c in doc["checks"]][:3] == ["python", "numpy", "opencv"]


@pytest.mark.parametrize("text, check, words", [
    ("model: missing.onnx\nsource: frames\n", "model", "model file not found"),
    ("model: {model}\nprovider: tensorrt\nsource: frames\n", "model", "not available"),
    ("model: {model}\n", "source", "no source"),
    ("model: {model}\ncamera: 63\n", "source", "/dev/video63: no such device"),
    ("model: {model}\nsource: [unclosed\n", "config", "invalid YAML"),
    ("model: {model}\nsauce: frames\n", "config", "unknown key 'sauce'"),
])
def test_a_config_that_cannot_run_exits_1(tmp_path, model, capsys, text, check, words):
    (tmp_path / "frames").mkdir()
    cfg = config(tmp_path, text.format(model=model))
    code, doc, by = doctor_json(capsys, "--config", cfg)
    assert code == 1 and doc["ok"] is False and doc["exit_code"] == 1
    assert by[check]["status"] == "fail" and words in by[check]["summary"]
    assert by[check]["fix"]
    assert doc["verdict"].endswith("the configured service cannot run")


def test_text_report_without_a_config(capsys):
    code = main(["doctor"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("edgeface ") and " doctor on " in lines[0]
    assert any(line.startswith("info  config") for line in lines)
    assert lines[-1].endswith("the configured service can run") == (code == 0)
    assert "Traceback" not in out


def test_help_lists_doctor(capsys):
    assert main(["--help"]) == 0
    assert "doctor" in capsys.readouterr().out


def test_a_deformconv_model_on_onnxruntime_1_24_prints_fail_naming_1_25(tmp_path):
    """The real command and backend, ONNX Runtime's version faked to 1.24.4 (the real old
    one: tests/inference/test_ort_floor.py in the JetPack-floor venv)."""
    import subprocess
    import sys

    from runtime_fakes import REPO

    (tmp_path / "frames").mkdir()
    dcn = tiny_onnx(tmp_path / "dcn.onnx", deformconv=True)
    cfg = config(tmp_path, f"model: {dcn}\nsource: frames\n")
    code = ("import sys, onnxruntime; onnxruntime.__version__ = '1.24.4'; "
            "from edgeface.cli import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", code, "doctor", "--config", cfg],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 1, done.stdout + done.stderr
    fails = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1 and "FAIL  model" in fails[0], done.stdout
    assert "uses DeformConv" in fails[0] and "ONNX Runtime >= 1.25" in fails[0]
    assert "warn  deformconv" in done.stdout and "edgeface export --dcn gridsample" in done.stdout
