"""`edgeface service install` with TensorRT: ONNX Runtime's TensorRT engine is built at install
time into the service's cache directory (so that no start or restart builds it), and a
TensorRT engine is installed with its sidecar after being checked.

Real here: the plans, files, unit settings and refusals. Faked: ONNX Runtime's TensorRT
provider (the build step's backend is replaced, this onnxruntime has none) and, for engines
checked "on the device", TensorRT and CUDA (FakeTensorRT/FakeCudart). Nothing touches the
live system: layouts are moved into tmp_path and commands are recorded.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from runtime_fakes import tiny_onnx
from tensorrt_fakes import ENGINE_MAGIC, FakeTensorRT, install_fakes

from edgeface.cli import main
from edgeface.common.files import sha256_file
from edgeface.errors import EXIT_BAD_MODEL
from edgeface.inference.backends.tensorrt.cache import DeviceFacts, engine_document
from edgeface.inference.model_info import ModelInfo, sidecar_path
from edgeface.service import install, plan, prebuild, units
from edgeface.service.layout import Layout

THIS_PYTHON = ["--python", sys.executable]
ORIN = DeviceFacts(tensorrt="10.3.0", gpu_name="Orin", compute_capability="8.7", sm_count=8)


def unit_value(text: str, key: str) -> list[str]:
    """The values of ``key=`` lines in a unit file."""
    return re.findall(rf"^{key}=(.*)$", text, re.MULTILINE)


@pytest.fixture
def model(tmp_path) -> Path:
    """An ONNX model outside the install's folders."""
    return tiny_onnx(Path(tmp_path, "src").mkdir() or tmp_path / "src" / "face.onnx")


@pytest.fixture
def commands(monkeypatch) -> list[list[str]]:
    """systemd commands recorded, not run (the build step adds a marker among them)."""
    recorded: list[list[str]] = []

    def record(argv: list[str], **kw) -> int:
        recorded.append(list(argv))
        return 0

    monkeypatch.setattr(plan, "run_command", record)
    return recorded


@pytest.fixture
def system_in(tmp_path, monkeypatch) -> Path:
    """The on-device system layout, moved below tmp_path/system."""
    target, real = tmp_path / "system", Layout.system
    moved = ("unit", "config", "env", "models_dir", "output_dir", "sysusers", "tmpfiles")
    monkeypatch.setattr(Layout, "system", staticmethod(lambda output_dir=None: replace(
        real(output_dir), **{f: f"{target}{getattr(real(output_dir), f)}" for f in moved})))
    return target


@pytest.fixture
def fake_build(monkeypatch, commands) -> list[dict]:
    """Replace the build step's backend (ONNX Runtime's TensorRT provider) with a recorder;
    the step's position among the commands is recorded too."""
    built: list[dict] = []

    class Backend:
        info = ModelInfo().with_input_size(64, 64)

        def infer(self, blob):
            built[-1]["frames"] += 1
            return None

    from edgeface.inference import backends

    real = backends.open_backend

    def open_backend(model, **kw):
        if kw.get("provider") != "tensorrt":  # the install's check of the model: real
            return real(model, **kw)
        built.append({"model": Path(model), **kw, "frames": 0})
        commands.append(["<build>"])
        return Backend()

    monkeypatch.setattr("edgeface.inference.backends.open_backend", open_backend)
    monkeypatch.setattr(prebuild, "chown_tree",
                        lambda top, user: built[-1].update(chown=(Path(top), user)))
    return built


def test_live_install_builds_the_engine_before_the_service_starts(
        system_in, model, commands, fake_build, monkeypatch, tmp_path):
    """The build runs after the service user exists and before `enable --now`, with the
    options the service will use (its cache directory, the env file's FP16 choice), then the
    cache is handed to the service user; the unit no longer needs the long start timeout."""
    monkeypatch.setattr(install, "group_exists", lambda name: True)
    monkeypatch.setattr(install, "access_problems", lambda paths: [])
    monkeypatch.setattr(prebuild.os, "geteuid", lambda: 0)
    req = install.InstallRequest(model=model, settings={"provider": "tensorrt"},
                                 python=sys.executable)
    p = install.plan_install(req)
    env = Path(str(system_in) + "/etc/edgeface/edgeface.env")
    lines: list[str] = []
    p.execute(dry_run=False, write_files=True, echo=lines.append)
    assert [c[0] for c in commands] == ["systemd-sysusers", "systemd-tmpfiles", "systemctl",
                                        "<build>", "systemctl"]
    assert commands[-1] == ["systemctl", "enable", "--now", "edgeface.service"]
    (b,) = fake_build
    assert b["model"] == Path(str(system_in) + "/var/lib/edgeface/models/face.onnx")
    assert b["provider"] == "tensorrt" and b["cache_dir"] == Path(units.SYSTEM_CACHE_DIR)
    assert b["fp16"] is False and b["frames"] == 1
    assert b["chown"] == (Path(units.SYSTEM_CACHE_DIR), units.SERVICE_USER)
    engine_dir = f"{units.SYSTEM_CACHE_DIR}/onnxruntime-tensorrt/face-{sha256_file(model)[:16]}"
    assert any(line.startswith(f"  build        {engine_dir}") for line in lines), lines
    unit = Path(str(system_in) + "/etc/systemd/system/edgeface.service").read_text()
    assert unit_value(unit, "TimeoutStartSec") == [units.TIMEOUT_START_CPU]
    assert "CacheDirectory=edgeface" in unit  # what SYSTEM_CACHE_DIR names
    assert yaml.safe_load(Path(str(system_in) + "/etc/edgeface/config.yaml").read_text())[
        "provider"] == "tensorrt"

    # FP16 is the service's choice (its env file), so the prebuilt engine is the one it loads.
    env.write_text(env.read_text() + "EDGEFACE_TENSORRT_FP16=1\n")
    fake_build.clear()
    install.plan_install(req).execute(dry_run=False, write_files=True, echo=lines.append)
    assert fake_build[0]["fp16"] is True


def test_live_dry_run_shows_the_build_step(system_in, model, commands, fake_build, capsys):
    assert main(["service", "install", "-m", str(model), "--set", "provider=tensorrt",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    build = out.index(f"would build  {units.SYSTEM_CACHE_DIR}/onnxruntime-tensorrt/face-")
    assert build < out.index("would run    systemctl enable --now edgeface.service")
    assert f"TimeoutStartSec={units.TIMEOUT_START_CPU}" in out
    assert commands == [] and fake_build == []  # a dry run builds nothing


def test_image_install_leaves_the_build_to_the_first_start(tmp_path, model, commands, capsys):
    root = tmp_path / "root"
    assert main(["service", "install", "-m", str(model), "--root", str(root), *THIS_PYTHON,
                 "--set", "provider=tensorrt"]) == 0
    out = capsys.readouterr().out
    unit = (root / "etc/systemd/system/edgeface.service").read_text()
    assert unit_value(unit, "TimeoutStartSec") == [units.TIMEOUT_START_TRT]
    assert "built on the service's first start" in out and "build " not in out.split("\n")[0]
    assert [c[0] for c in commands] == ["systemd-sysusers", "systemd-tmpfiles", "systemctl"]


def _engine(tmp_path: Path, device: DeviceFacts = ORIN) -> Path:
    onnx = tiny_onnx(tmp_path / "src" / "face.onnx", size=(64, 64))
    engine = tmp_path / "src" / "face.engine"
    engine.write_bytes(ENGINE_MAGIC + json.dumps({"model": str(onnx), "flags": [0]}).encode())
    doc = engine_document(
        metadata=ModelInfo(arch="tiny-test").with_input_size(64, 64).to_metadata(),
        source=onnx, source_sha256=sha256_file(onnx), input_size=(64, 64), precision="fp16",
        int8_mode=None, device=device, engine_sha256=sha256_file(engine),
        engine_bytes=engine.stat().st_size, builder={}, edgeface_version="t", created="t")
    sidecar_path(engine).write_text(json.dumps(doc))
    return engine


def test_engine_is_installed_with_its_sidecar(tmp_path, commands, capsys):
    """Into an image (no GPU here): the sidecar is checked, both files are copied, the unit
    gets the GPU nodes and the short start timeout, no build step."""
    (tmp_path / "src").mkdir()
    engine = _engine(tmp_path)
    root = tmp_path / "root"
    assert main(["service", "install", "-m", str(engine), "--root", str(root),
                 *THIS_PYTHON]) == 0
    models = root / "var/lib/edgeface/models"
    assert (models / "face.engine").read_bytes() == engine.read_bytes()
    assert (models / "face.engine.json").read_bytes() == sidecar_path(engine).read_bytes()
    cfg = yaml.safe_load((root / "etc/edgeface/config.yaml").read_text())
    assert cfg["model"] == "/var/lib/edgeface/models/face.engine"
    unit = (root / "etc/systemd/system/edgeface.service").read_text()
    assert any(d.startswith("/dev/nv") for d in unit_value(unit, "DeviceAllow"))
    assert unit_value(unit, "TimeoutStartSec") == [units.TIMEOUT_START_CPU]


def test_stale_engine_is_refused_at_install(tmp_path, commands, monkeypatch, capsys):
    (tmp_path / "src").mkdir()
    engine = _engine(tmp_path, DeviceFacts(**{**ORIN.record(), "tensorrt": "8.6.2"}))
    # On the device (a live dry run): opened as the service would; TensorRT 10.3 here.
    install_fakes(monkeypatch, FakeTensorRT("10.3.0"))
    code = main(["service", "install", "-m", str(engine), "--dry-run"])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_MODEL and err.count("\n") == 1
    assert "built for TensorRT 8.6.2, this device has 10.3.0" in err
    # Into an image: its bytes no longer match the sidecar.
    engine.write_bytes(engine.read_bytes() + b"x")
    code = main(["service", "install", "-m", str(engine), "--root", str(tmp_path / "root"),
                 *THIS_PYTHON])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_MODEL and "the engine's bytes are not the ones" in err
    assert commands == []


def test_env_flag_and_cache_dirs(tmp_path):
    env = tmp_path / "e.env"
    env.write_text("# comment\nEDGEFACE_TENSORRT_FP16='yes'\nOTHER=1\n")
    assert prebuild.env_flag(env, "EDGEFACE_TENSORRT_FP16")
    assert not prebuild.env_flag(env, "MISSING")
    assert not prebuild.env_flag(tmp_path / "none.env", "X")
    lay = Layout.user(environ={"HOME": "/home/pi"})
    assert prebuild.service_cache_dir(lay, {"HOME": "/home/pi", "CACHE_DIRECTORY": "/x"}
                                            ) == Path("/home/pi/.cache/edgeface")
    assert prebuild.service_cache_dir(Layout.system()) == Path("/var/cache/edgeface")
    assert prebuild.is_engine("a.ENGINE") and not prebuild.is_engine("a.onnx")
