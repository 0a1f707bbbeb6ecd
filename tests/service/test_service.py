"""`edgeface service`: unit rendering (checked by systemd-analyze), install plans into a
temporary root, config editing, and the checks that keep a broken install from looking fine.

Nothing here touches the live system: installs go to a temporary --root, or are dry runs
whose layout points into a temporary directory; systemd commands are recorded, or run
offline with --root where the tools exist.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from runtime_fakes import synthetic_frames, tiny_onnx, write_video

import edgeface.http.sink  # noqa: F401  registers outputs.http, which the templates set
from edgeface.cli import main
from edgeface.common.sizes import parse_size
from edgeface.errors import EXIT_BAD_MODEL, EXIT_MEMORY, EXIT_SOURCE, EXIT_USAGE, ConfigError
from edgeface.runtime.config import load_config, validate
from edgeface.service import checks, config_edit, install, plan, units
from edgeface.service.layout import Layout

REPO = Path(__file__).resolve().parents[2]
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze not installed (CI installs the systemd package)")


# --------------------------------------------------------------------------- helpers

def unit_settings(text: str) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit -> {key: [values...]} (keys may repeat)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def verify(unit: Path, *, user: bool, tmp_path: Path) -> subprocess.CompletedProcess:
    """`systemd-analyze [--user] verify --man=no UNIT`; works without systemd as PID 1."""
    env = dict(os.environ)
    if user:  # the user manager needs a runtime directory, even offline
        rt = tmp_path / "xdg-runtime"
        rt.mkdir(mode=0o700, exist_ok=True)
        env["XDG_RUNTIME_DIR"] = str(rt)
    argv = [ANALYZE, *(["--user"] if user else []), "verify", "--man=no", str(unit)]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)


def assert_verifies(unit: Path, *, user: bool, tmp_path: Path) -> None:
    done = verify(unit, user=user, tmp_path=tmp_path)
    # Unknown keys and bad values only warn (exit 0), so stderr must be empty too.
    assert done.returncode == 0 and done.stderr == "", done.stderr


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) + ("/" if p.is_dir() else "")
            for p in root.rglob("*") if p.is_file() or (p.is_dir() and not any(p.iterdir()))}


@pytest.fixture
def model(tmp_path) -> Path:

    (tmp_path / "src").mkdir()
    return tiny_onnx(tmp_path / "src" / "face.onnx")


@pytest.fixture
def commands(monkeypatch) -> list[list[str]]:
    """Record systemd commands instead of running them."""
    ran: list[list[str]] = []
    monkeypatch.setattr(plan, "run_command", lambda argv, **kw: ran.append(argv) or 0)
    return ran


def settings(**kw) -> units.UnitSettings:
    base = dict(python=sys.executable, config="/etc/edgeface/config.yaml",
                env_file="/etc/edgeface/edgeface.env", output_dir="/var/lib/edgeface/detections")
    base.update(kw)
    return units.UnitSettings(**base)


# --------------------------------------------------------------------------- templates

def test_packaged_templates_are_the_systemd_sources():
    for name in units.UNIT_TEMPLATES:
        packaged = REPO / "edge" / "service" / "templates" / name
        assert packaged.read_bytes() == (REPO / "systemd" / name).read_bytes(), (
            f"edge/service/templates/{name} differs from systemd/{name}: after editing "
            f"systemd/, run cp systemd/{name} edge/service/templates/")
        assert units.template_text(name) == packaged.read_text()


def test_every_unit_setting_is_explained_by_a_comment():
    for name in ("edgeface.service", "edgeface-user.service"):
        lines = (REPO / "systemd" / name).read_text().splitlines()
        prev = ""
        for line in lines:
            if line and not line.startswith(("#", "[", "@", "Description=")) and "=" in line:
                assert prev.startswith("#") or unit_settings(prev), f"{name}: {line} unexplained"
            if line.strip():
                prev = line
            else:
                prev = ""


# --------------------------------------------------------------------------- rendering

UNIT_CASES = {
    "system-cpu": (dict(), False),
    "system-jetson": (dict(gpu_nodes=[], timeout_start=units.TIMEOUT_START_TRT), False),
    "system-found-gpu": (dict(gpu_nodes=["/dev/nvmap", "/dev/nvgpu/igpu0/ctrl"]), False),
    "system-home-venv": (dict(protect_home="read-only",
                              output_dir="/srv/faces/%unusual"), False),
    "user": (dict(config="/home/pi/.config/edgeface/config.yaml",
                  env_file="/home/pi/.config/edgeface/edgeface.env"), True),
}


@needs_analyze
@pytest.mark.parametrize("case", list(UNIT_CASES))
def test_rendered_units_pass_systemd_analyze_verify(case, tmp_path):
    kw, user = UNIT_CASES[case]
    unit = tmp_path / units.SERVICE
    unit.write_text(units.render_unit(settings(**kw), user_mode=user))
    assert_verifies(unit, user=user, tmp_path=tmp_path)


@needs_analyze
def test_verify_check_catches_unknown_keys(tmp_path):
    """The check above can fail: a misspelt key exits 0 but warns on stderr."""
    unit = tmp_path / units.SERVICE
    unit.write_text(units.render_unit(settings()).replace("WatchdogSec=", "WatchDogSec="))
    done = verify(unit, user=False, tmp_path=tmp_path)
    assert done.returncode == 0 and "WatchDogSec" in done.stderr


def test_system_unit_matches_the_runtime_contract():
    s = unit_settings(units.render_unit(settings()))
    one = {k: v[-1] for k, v in s.items()}
    assert one["Type"] == "notify"
    assert one["ExecStart"].split()[:3] == [sys.executable, "-m", "edgeface.cli"]
    assert "run --config /etc/edgeface/config.yaml" in one["ExecStart"]
    assert one["EnvironmentFile"].lstrip("-") == "/etc/edgeface/edgeface.env"
    # Restart on crashes, watchdog, lost camera and the memory limit; not on bad config/model.
    assert one["Restart"] == "on-failure"
    prevented = set(map(int, one["RestartPreventExitStatus"].split()))
    assert prevented == {EXIT_USAGE, EXIT_BAD_MODEL}
    assert not prevented & {EXIT_SOURCE, EXIT_MEMORY}
    restart = int(one["RestartSec"].rstrip("s"))
    window, burst = int(one["StartLimitIntervalSec"]), int(one["StartLimitBurst"])
    assert window / restart + 1 < burst, "RestartSec alone must never trip the start limit"
    # The watchdog leaves the runtime's pings (at half the period) room for a slow frame,
    # and a Pi room to load the model and open the camera before READY=1.
    assert 10 <= int(one["WatchdogSec"].rstrip("s")) <= 60
    assert int(one["TimeoutStartSec"].rstrip("s")) >= 60
    assert one["MemoryMax"] == "512M" and one["MemorySwapMax"] == "0"
    assert one["User"] == units.SERVICE_USER and one["SupplementaryGroups"] == "video"
    for key, value in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                       ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                       ("DevicePolicy", "closed")]:
        assert one[key] == value, key
    assert s["ReadWritePaths"] == ["/var/lib/edgeface/detections"]
    assert "char-video4linux rw" in s["DeviceAllow"]
    assert not any("nv" in d for d in s["DeviceAllow"]), "GPU nodes only with a GPU provider"


def test_gpu_nodes_listed_from_dev_or_l4t_defaults(tmp_path):
    (tmp_path / "nvmap").write_text("")  # a regular file is not a device node
    assert units.gpu_device_nodes(tmp_path) == []
    s = unit_settings(units.render_unit(settings(gpu_nodes=[])))
    assert {d.split()[0] for d in s["DeviceAllow"]} >= set(units.L4T_GPU_NODES)
    s = unit_settings(units.render_unit(settings(gpu_nodes=["/dev/nvmap"])))
    assert "/dev/nvmap rw" in s["DeviceAllow"] and "/dev/nvhost-ctrl rw" not in s["DeviceAllow"]


def test_unit_values_are_escaped_or_refused():
    assert units.unit_value("/srv/a%b") == "/srv/a%%b"
    for bad in ("relative/path", "/with space", "/semi;colon", "/dollar$x"):
        with pytest.raises(ConfigError):
            units.unit_value(bad)


# --------------------------------------------------------------------------- config editing

def test_set_config_value_keeps_comments_and_order():
    text = "# head\nmodel: null   # the model\noutputs:\n  # json lines\n  json: \"-\"\n"
    out = config_edit.set_config_value(text, "model", "/m.onnx")
    assert out.splitlines()[1] == 'model: "/m.onnx"   # the model'
    out = config_edit.set_config_value(out, "outputs.http", "127.0.0.1:9000")
    out = config_edit.set_config_value(out, "outputs.json", "/x.jsonl")
    assert yaml.safe_load(out) == {"model": "/m.onnx",
                                   "outputs": {"json": "/x.jsonl", "http": "127.0.0.1:9000"}}
    assert "# head" in out and "# json lines" in out
    out = config_edit.set_config_value(out, "threads", 2)
    assert yaml.safe_load(out)["threads"] == 2


def test_set_config_value_falls_back_to_reserialising():
    text = "outputs: {json: '-'}\nmodel:\n  - odd\n"
    out = config_edit.set_config_value(
        config_edit.set_config_value(text, "outputs.json", "/j"), "model", "/m")
    assert yaml.safe_load(out) == {"outputs": {"json": "/j"}, "model": "/m"}


def test_edit_config_switches_source_and_places_relative_outputs():
    template = units.template_text(units.CONFIG_TEMPLATE)
    text = config_edit.edit_config(template, {"picamera": True, "outputs.json": "d/x.jsonl",
                                              "outputs.crops": "faces"},
                                   "/var/lib/edgeface/detections")
    opts = validate(yaml.safe_load(text))
    assert opts["picamera"] is True and "camera" not in opts
    assert opts["outputs"]["json"] == "/var/lib/edgeface/detections/d/x.jsonl"
    assert opts["outputs"]["crops"] == "/var/lib/edgeface/detections/faces"


def test_parse_settings():
    assert config_edit.parse_settings(
        ["camera=1", "picamera=true", "source=", "outputs.http=:80"]) == {
        "camera": 1, "picamera": True, "source": None, "outputs.http": ":80"}
    with pytest.raises(ConfigError):
        config_edit.parse_settings(["camera"])


# --------------------------------------------------------------------------- install

# Installs that are not about where edgeface lives name the interpreter (--python): then the
# service user's access to this checkout is not examined, and they pass from any checkout
# (one under /tmp, or in a private home, is rightly refused for a real install; see
# test_install_refuses_an_edgeface_the_service_user_cannot_reach).
THIS_PYTHON = ["--python", sys.executable]
# Where edgeface lives, pinned for that test: under a temporary directory, or in /usr (only
# the parents of these paths are looked at, and those exist on any Linux system).
UNDER_TMP = ["/tmp/venv/bin/python3", "/tmp/venv", "/tmp/venv/lib/edgeface"]
UNDER_USR = ["/usr/bin/python3", "/usr", "/usr/lib/edgeface"]

EXPECTED_SYSTEM = {
    "etc/systemd/system/edgeface.service", "etc/edgeface/config.yaml",
    "etc/edgeface/edgeface.env", "etc/sysusers.d/edgeface.conf", "etc/tmpfiles.d/edgeface.conf",
    "var/lib/edgeface/models/face.onnx", "var/lib/edgeface/detections/",
}


def test_install_dry_run_into_root_writes_exactly_the_expected_files(
        tmp_path, model, commands, capsys):
    root = tmp_path / "root"
    rc = main(["service", "install", "--model", str(model), "--root", str(root), "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert files_under(root) == EXPECTED_SYSTEM
    assert commands == []  # dry run: no command, not even offline ones
    assert f"would run    systemctl --root={root} enable edgeface.service" in out
    assert (root / "var/lib/edgeface/models/face.onnx").read_bytes() == model.read_bytes()
    assert "u edgeface " in (root / "etc/sysusers.d/edgeface.conf").read_text()
    assert "d /var/lib/edgeface/detections 0750 edgeface edgeface" in (
        root / "etc/tmpfiles.d/edgeface.conf").read_text()
    assert (root / "etc/edgeface/edgeface.env").read_text() == units.template_text("edgeface.env")

    # The installed config is valid for the runtime, names the installed model (by its
    # on-device path) and keeps the runtime's own limit below the unit's MemoryMax.
    cfg = load_config(root / "etc/edgeface/config.yaml")
    assert cfg["model"] == "/var/lib/edgeface/models/face.onnx"
    unit = (root / "etc/systemd/system/edgeface.service").read_text()
    memory_max = unit_settings(unit)["MemoryMax"][0]
    assert parse_size(cfg["memory_limit"]) < parse_size(memory_max)
    if ANALYZE:
        assert_verifies(root / "etc/systemd/system/edgeface.service", user=False,
                        tmp_path=tmp_path)


def test_install_into_root_runs_only_offline_commands(tmp_path, model, commands, capsys):
    root = tmp_path / "root"
    assert main(["service", "install", "-m", str(model), "--prefix", str(root),
                 *THIS_PYTHON]) == 0
    assert files_under(root) == EXPECTED_SYSTEM
    assert commands == [
        ["systemd-sysusers", f"--root={root}", str(root / "etc/sysusers.d/edgeface.conf")],
        ["systemd-tmpfiles", f"--root={root}", "--create",
         str(root / "etc/tmpfiles.d/edgeface.conf")],
        ["systemctl", f"--root={root}", "enable", "edgeface.service"],
    ]


@pytest.mark.skipif(not all(shutil.which(t) for t in ("systemctl", "systemd-sysusers",
                                                      "systemd-tmpfiles")),
                    reason="systemd tools not installed")
@pytest.mark.skipif(os.geteuid() != 0, reason="systemd-tmpfiles needs root to chown")
def test_install_into_root_with_the_real_offline_tools(tmp_path, model, capsys):
    root = tmp_path / "root"
    assert main(["service", "install", "-m", str(model), "--root", str(root),
                 *THIS_PYTHON]) == 0
    passwd = (root / "etc/passwd").read_text()
    uid, gid = map(int, re.search(r"^edgeface:x:(\d+):(\d+):", passwd, re.M).groups())
    assert 0 < uid < 1000  # a system user
    assert (root / "var/lib/edgeface/detections").stat().st_uid == uid
    assert (root / "var/lib/edgeface/models/face.onnx").stat().st_uid == 0
    for secret in ("etc/edgeface/config.yaml", "etc/edgeface/edgeface.env"):
        st = (root / secret).stat()  # stream credentials: root and the service's group
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, gid, 0o640), secret
    wants = root / "etc/systemd/system/multi-user.target.wants/edgeface.service"
    assert wants.is_symlink() and os.readlink(wants) == "/etc/systemd/system/edgeface.service"


def test_dry_run_without_root_writes_nothing_and_prints_the_plan(
        tmp_path, model, commands, monkeypatch, capsys):
    # The on-device layout, moved into tmp_path so that a write would be seen (and harmless).
    target = tmp_path / "system"
    real = Layout.system

    def layout(output_dir=None):
        lay = real(output_dir)
        for f in ("unit", "config", "env", "models_dir", "output_dir", "sysusers", "tmpfiles"):
            setattr(lay, f, str(target) + getattr(lay, f))
        return lay

    monkeypatch.setattr(Layout, "system", staticmethod(layout))
    monkeypatch.setattr(checks, "systemd_booted", lambda: pytest.fail("dry run checked systemd"))
    assert main(["service", "install", "--model", str(model), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert not target.exists() and commands == []
    assert f"would write  {target}/etc/systemd/system/edgeface.service" in out
    assert "would run    systemctl enable --now edgeface.service" in out
    assert "Type=notify" in out and f"ExecStart={sys.executable} -m edgeface.cli" in out


def test_reinstall_keeps_config_and_env_applies_flags(tmp_path, model, commands, capsys):
    root = tmp_path / "root"
    args = ["service", "install", "--root", str(root), *THIS_PYTHON]
    assert main([*args, "-m", str(model), "--set", "threads=2"]) == 0
    cfg = root / "etc/edgeface/config.yaml"
    env = root / "etc/edgeface/edgeface.env"
    cfg.write_text(cfg.read_text() + "# my note\n")
    env.write_text("EDGEFACE_ARGS=--camera 1\n")

    other = tiny_onnx(tmp_path / "other.onnx")
    assert main([*args, "-m", str(other)]) == 0
    text = cfg.read_text()
    assert "# my note" in text  # edited in place, not replaced
    assert load_config(cfg)["model"] == "/var/lib/edgeface/models/other.onnx"
    assert load_config(cfg)["threads"] == 2
    assert "# my note" in (root / "etc/edgeface/config.yaml.bak").read_text()
    assert env.read_text() == "EDGEFACE_ARGS=--camera 1\n"

    assert main([*args]) == 0  # nothing asked: nothing changes
    assert cfg.read_text() == text
    assert "keep         " + str(cfg) in capsys.readouterr().out

    assert main([*args, "--force"]) == 0  # back to the templates, but the same model
    assert "# my note" not in cfg.read_text()
    assert load_config(cfg)["model"] == "/var/lib/edgeface/models/other.onnx"
    assert "threads" not in load_config(cfg)
    assert env.read_text() == units.template_text("edgeface.env")


def test_install_without_any_model_fails(tmp_path, commands, capsys):
    rc = main(["service", "install", "--root", str(tmp_path / "root")])
    assert rc == EXIT_USAGE and "no model" in capsys.readouterr().err
    assert not (tmp_path / "root").exists()


def test_user_install_into_root(tmp_path, model, commands, monkeypatch, capsys):
    monkeypatch.setenv("HOME", "/home/tester")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    root = tmp_path / "root"
    assert main(["service", "install", "--user", "-m", str(model), "--root", str(root),
                 "--dry-run", "--set", "picamera=true"]) == 0
    home = "home/tester/"
    assert files_under(root) == {
        home + ".config/systemd/user/edgeface.service", home + ".config/edgeface/config.yaml",
        home + ".config/edgeface/edgeface.env", home + ".local/share/edgeface/models/face.onnx",
        home + ".local/share/edgeface/detections/"}
    unit = root / home / ".config/systemd/user/edgeface.service"
    s = unit_settings(unit.read_text())
    assert "User" not in s and s["WantedBy"] == ["default.target"]
    assert "--config /home/tester/.config/edgeface/config.yaml" in s["ExecStart"][0]
    cfg = load_config(root / home / ".config/edgeface/config.yaml")
    assert cfg["picamera"] is True and "camera" not in cfg
    if ANALYZE:
        assert_verifies(unit, user=True, tmp_path=tmp_path)


@pytest.mark.parametrize("args, code, message", [
    (["--set", "outputs.json=/srv/faces.jsonl"], EXIT_USAGE, "outside the service's only"),
    (["--set", "cameraa=1"], EXIT_USAGE, "unknown key 'cameraa'"),
    (["--set", "camera=1", "--set", "csi=0"], EXIT_USAGE, "only one of"),
    (["--output-dir", "/srv/my faces"], EXIT_USAGE, "not supported in a systemd unit"),
])
def test_install_refuses_configs_that_would_fail_on_the_device(
        tmp_path, model, commands, capsys, args, code, message):
    root = tmp_path / "root"
    assert main(["service", "install", "-m", str(model), "--root", str(root), *args]) == code
    assert message in capsys.readouterr().err
    assert not root.exists()


def test_install_refuses_a_bad_model(tmp_path, commands, capsys):
    root = tmp_path / "root"
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    wrong = tiny_onnx(tmp_path / "nhwc.onnx", layout="NHWC")
    for path in (bad, wrong, tmp_path / "missing.onnx"):
        assert main(["service", "install", "-m", str(path), "--root", str(root)]) \
            == EXIT_BAD_MODEL
        assert str(path) in capsys.readouterr().err
    assert not root.exists()


def test_install_refuses_an_edgeface_the_service_user_cannot_reach(
        tmp_path, model, commands, monkeypatch, capsys):
    """Where this edgeface lives is pinned here, not taken from the checkout: under /tmp the
    service (PrivateTmp=yes) would not find it, so an install is refused and a dry run warns;
    the same install from /usr goes through."""
    root = tmp_path / "root"
    args = ["service", "install", "-m", str(model), "--root", str(root)]
    refusal = ("the service user 'edgeface' could not run edgeface from here: /tmp/venv/bin/"
               "python3 is under a temporary directory, which the service does not see "
               "(PrivateTmp=yes)")
    monkeypatch.setattr(install, "install_locations", lambda: list(UNDER_TMP))
    assert main(args) == EXIT_USAGE
    assert refusal in capsys.readouterr().err
    assert not root.exists() and commands == []

    assert main([*args, "--dry-run"]) == 0
    assert "warning: " + refusal in capsys.readouterr().err
    shutil.rmtree(root)

    monkeypatch.setattr(install, "install_locations", lambda: list(UNDER_USR))
    assert main(args) == 0
    assert "could not run edgeface" not in capsys.readouterr().err
    assert files_under(root) == EXPECTED_SYSTEM


def test_live_install_needs_systemd_and_root(tmp_path, model, commands, monkeypatch, capsys):
    monkeypatch.setattr(checks, "systemd_booted", lambda: False)
    assert main(["service", "install", "-m", str(model)]) == EXIT_USAGE
    assert "systemd is not running" in capsys.readouterr().err
    monkeypatch.setattr(checks, "systemd_booted", lambda: True)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["service", "install", "-m", str(model)]) == EXIT_USAGE
    assert "needs root" in capsys.readouterr().err
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert main(["service", "install", "--user", "-m", str(model)]) == EXIT_USAGE
    assert "without sudo" in capsys.readouterr().err
    assert commands == []


@pytest.mark.parametrize("setting, gpu, timeout", [
    ("provider=tensorrt", True, units.TIMEOUT_START_TRT), ("csi=0", True, units.TIMEOUT_START_CPU),
    ("provider=cpu", False, units.TIMEOUT_START_CPU)])
def test_gpu_nodes_for_gpu_providers_and_csi_cameras(tmp_path, model, commands, setting, gpu,
                                                     timeout):
    root = tmp_path / "root"
    assert main(["service", "install", "-m", str(model), "--root", str(root), "--dry-run",
                 "--set", setting]) == 0
    s = unit_settings((root / "etc/systemd/system/edgeface.service").read_text())
    assert any(d.startswith("/dev/nv") for d in s["DeviceAllow"]) == gpu
    assert s["TimeoutStartSec"] == [timeout]


def test_uninstall_from_root(tmp_path, model, commands, capsys):
    root = tmp_path / "root"
    assert main(["service", "install", "-m", str(model), "--root", str(root),
                 *THIS_PYTHON]) == 0
    before = files_under(root)
    assert main(["service", "uninstall", "--root", str(root), "--purge", "--dry-run"]) == 0
    assert files_under(root) == before
    commands.clear()
    assert main(["service", "uninstall", "--root", str(root)]) == 0
    assert not (root / "etc/systemd/system/edgeface.service").exists()
    assert (root / "etc/edgeface/config.yaml").exists()
    assert commands == [["systemctl", f"--root={root}", "disable", "edgeface.service"]]
    assert main(["service", "uninstall", "--root", str(root), "--purge"]) == 0
    assert [p for p in root.rglob("*") if p.is_file()] == []
    assert (root / "var/lib/edgeface/detections").is_dir()  # the data stays


def test_the_installed_unit_command_runs_and_notifies_as_its_main_process(
        tmp_path, model, monkeypatch):
    """End to end without systemd: install (user layout in a temporary HOME), then run the
    unit's own ExecStart= with the installed config, as systemd would: READY=1 must come
    from the main process itself (NotifyAccess=main), and the run must exit 0."""
    home = tmp_path / "home"
    req = install.InstallRequest(user_mode=True, model=model, dry_run=True,
                                 settings={"outputs.http": None},
                                 environ={"HOME": str(home)})
    install.plan_install(req).execute(dry_run=True, write_files=True, echo=lambda line: None)
    unit = unit_settings((home / ".config/systemd/user/edgeface.service").read_text())
    video = write_video(tmp_path / "clip.avi", synthetic_frames(4))
    out = tmp_path / "out.jsonl"
    env_args = f"--source {video} --max-frames 3 --json {out} --status-interval 0"
    argv = []
    for word in shlex.split(unit["ExecStart"][0]):
        argv += {"$EDGEFACE_OPTS": [], "$EDGEFACE_ARGS": env_args.split()}.get(word, [word])

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(60)
    proc = None
    try:
        proc = subprocess.Popen(argv, env={**os.environ, "NOTIFY_SOCKET": str(
            tmp_path / "notify.sock")}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, cwd="/")
        msg, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
        rc = proc.wait(timeout=60)
    finally:
        sock.close()
        if proc is not None and proc.poll() is None:
            proc.kill()
    sender = [struct.unpack("iII", data)[0] for level, kind, data in anc
              if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS]
    assert rc == 0, proc.stderr.read()
    assert msg.decode().startswith("READY=1") and sender == [proc.pid]
    assert len(out.read_text().splitlines()) == 3


def test_status_passes_systemctl_through(commands, monkeypatch, capsys):
    monkeypatch.setattr(plan, "run_command", lambda argv, **kw: commands.append(argv) or 3)
    assert main(["service", "status", "--user", "-n", "5"]) == 3
    assert commands == [["systemctl", "--user", "status", "--no-pager", "--lines=5",
                         "edgeface.service"]]
    assert "unit:" in capsys.readouterr().out


# --------------------------------------------------------------------------- device checks

def test_protect_home_and_access_for_the_service_user(tmp_path):
    assert checks.protect_home_for(["/home/pi/venv/bin/python"]) == "read-only"
    assert checks.protect_home_for(["/opt/edgeface/bin/python", "/usr/lib/python3"]) == "yes"
    private = tmp_path / "home" / "pi"
    (private / "venv").mkdir(parents=True)
    private.chmod(0o700)
    assert checks.unreadable_for_others(private / "venv" / "python") in [private, *private.parents]
    assert checks.unreadable_for_others(Path("/usr/lib/x")) is None
    assert checks.access_problems(["/tmp/venv/bin/python"])[0].startswith("/tmp/venv")


def test_memory_cgroup_problem(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "sys/fs/cgroup").mkdir(parents=True)
    (tmp_path / "boot/firmware").mkdir(parents=True)
    (tmp_path / "boot/firmware/cmdline.txt").write_text("console=tty1 root=/dev/mmcblk0p2\n")
    cmdline, controllers = tmp_path / "proc/cmdline", tmp_path / "sys/fs/cgroup/cgroup.controllers"
    controllers.write_text("cpuset cpu io pids\n")
    cmdline.write_text("console=tty1 cgroup_disable=memory root=/dev/mmcblk0p2\n")
    problem = checks.memory_cgroup_problem(tmp_path)
    assert "cgroup_enable=memory" in problem and "/boot/firmware/cmdline.txt" in problem
    assert "cgroup_memory=1" not in problem  # not a kernel option
    controllers.write_text("cpuset cpu io memory pids\n")
    cmdline.write_text("cgroup_disable=memory cgroup_enable=memory\n")
    assert checks.memory_cgroup_problem(tmp_path) is None
    controllers.unlink()  # cgroup v1: the command line decides
    assert checks.memory_cgroup_problem(tmp_path) is None
    cmdline.write_text("cgroup_enable=memory cgroup_disable=memory\n")
    assert "cgroup_enable=memory" in checks.memory_cgroup_problem(tmp_path)

