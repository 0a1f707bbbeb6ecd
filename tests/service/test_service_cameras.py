"""Several cameras on one device: `edgeface service install --name NAME` installs the template
unit edgeface@.service (rendered from the same source as edgeface.service), the camera's own
config, env file, output directory and tmpfiles.d entry, and enables edgeface@NAME.service.

Nothing here touches the live system: installs go to a temporary --root, or are dry runs whose
layout points into tmp_path. `systemctl --root=DIR enable|disable` is run for real where
systemctl exists (it only makes or removes the .wants links), otherwise its links are made
here; the other commands are recorded.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path

import pytest
from runtime_fakes import tiny_onnx

from edgeface.cli import main
from edgeface.errors import EXIT_USAGE, EdgefaceError
from edgeface.runtime.config import load_config
from edgeface.service import checks, plan, units
from edgeface.service.layout import Layout, check_name

ANALYZE = shutil.which("systemd-analyze")
SYSTEMCTL = shutil.which("systemctl")
PY = ["--python", sys.executable]  # the service user's access to this checkout is not tested
UNIT = "etc/systemd/system/edgeface@.service"
WANTS = "etc/systemd/system/multi-user.target.wants"


def values(text: str, key: str) -> list[str]:
    """The values of the ``key=`` lines of a unit file."""
    return re.findall(rf"^{key}=(.*)$", text, re.MULTILINE)


def settings_of(text: str) -> list[tuple[str, str]]:
    """Every setting of a unit, in order, comments left out."""
    return [tuple(line.split("=", 1)) for line in text.splitlines()
            if "=" in line and not line.startswith("#")]


def check_with_systemd_analyze(template: Path, tmp_path: Path, *, user: bool = False) -> None:
    """`systemd-analyze verify` of the template as an instance: a copy named edgeface@test
    .service, alone in a folder (an instance's file is found by its name; the links beside
    an installed template would drag their units in)."""
    folder = tmp_path / "verify"
    folder.mkdir(exist_ok=True)
    instance = folder / "edgeface@test.service"
    shutil.copyfile(template, instance)
    env = dict(os.environ)
    if user:  # the user manager wants a runtime directory, even offline
        (tmp_path / "xdg").mkdir(mode=0o700, exist_ok=True)
        env["XDG_RUNTIME_DIR"] = str(tmp_path / "xdg")
    done = subprocess.run([ANALYZE, *(["--user"] if user else []), "verify", "--man=no",
                           str(instance)], capture_output=True, text=True, env=env, timeout=60)
    # Unknown keys, bad values and unresolvable specifiers only warn: stderr must be empty.
    assert (done.returncode, done.stderr) == (0, ""), done.stderr


@pytest.fixture
def onnx(tmp_path) -> Path:
    folder = tmp_path / "models-here"
    folder.mkdir()
    return tiny_onnx(folder / "face.onnx")


@pytest.fixture
def ran(monkeypatch) -> list[list[str]]:
    """Commands, recorded; `systemctl --root=R enable|disable UNIT` also done, offline."""
    recorded: list[list[str]] = []

    def run(argv: list[str], **kw) -> int:
        recorded.append(list(argv))
        if argv[0] != "systemctl" or not argv[1].startswith("--root="):
            return 0
        if SYSTEMCTL:
            return subprocess.run([SYSTEMCTL, *argv[1:]], capture_output=True).returncode
        root, verb, unit = Path(argv[1][len("--root="):]), argv[2], argv[3]
        link = root / WANTS / unit
        if verb == "enable":
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
            link.symlink_to("/" + UNIT)
        else:
            link.unlink(missing_ok=True)
        return 0

    monkeypatch.setattr(plan, "run_command", run)
    return recorded


def install(root: Path, name: str, *args: str) -> int:
    return main(["service", "install", "--name", name, "--root", str(root), *PY, *args])


def enabled(root: Path) -> dict[str, str]:
    folder = root / WANTS
    return {p.name: os.readlink(p) for p in folder.iterdir()} if folder.is_dir() else {}


# --------------------------------------------------------------------------- names, rendering

@pytest.mark.parametrize("name", ["Cam1", "-cam", "_cam", "a" * 33, "front.door", "a/b",
                                  "cam 1", "caméra", "", "config", "edgeface"])
def test_bad_camera_names_are_refused_in_one_line(tmp_path, onnx, ran, capsys, name):
    root = tmp_path / "root"
    for argv in (["install", "-m", str(onnx), "--root", str(root)],
                 ["uninstall", "--root", str(root)], ["status"]):
        assert main(["service", *argv, "--name", name]) == EXIT_USAGE
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "camera name" in err, err
    assert not root.exists() and ran == []


@pytest.mark.parametrize("name", ["cam1", "0", "front-door", "back_yard", "a" * 32])
def test_good_camera_names(name):
    assert check_name(name) == name


def test_template_unit_is_edgeface_service_with_the_camera_in_its_paths():
    """One source renders both: they differ in exactly the per-camera settings."""
    base = dict(python=sys.executable, env_file="/etc/edgeface/edgeface.env", gpu_nodes=[])
    single = units.render_unit(units.UnitSettings(
        config="/etc/edgeface/config.yaml", output_dir="/var/lib/edgeface/detections", **base))
    camera = Layout.camera(units.INSTANCE)
    template = units.render_unit(units.UnitSettings(
        config=camera.config, output_dir=camera.output_dir, camera_env=camera.camera_env,
        **base))
    rest = settings_of(template)
    # The camera's own env file, right after the shared one, is the one setting added...
    at = rest.index(("EnvironmentFile", "-/etc/edgeface/%i.env"))
    assert rest[at - 1] == ("EnvironmentFile", "-/etc/edgeface/edgeface.env")
    del rest[at]
    # ...and these are the only ones that differ.
    differ = [(a, b) for a, b in zip(settings_of(single), rest) if a != b]
    assert [d[1] for d in differ] == [
        ("Description", units.DESCRIPTION + ", camera %i"),
        ("ExecStart", f"{sys.executable} -m edgeface.cli $EDGEFACE_OPTS run --config "
                      "/etc/edgeface/%i.yaml $EDGEFACE_ARGS"),
        ("SyslogIdentifier", "edgeface-%i"),
        ("ReadWritePaths", "/var/lib/edgeface/detections/%i")]
    assert len(rest) == len(settings_of(single))
    assert values(template, "MemoryMax") == ["512M"]  # per instance: each is its own cgroup
    assert "Per instance" in template


def test_only_the_instance_becomes_a_specifier():
    """unit_value escapes every literal '%' (a home directory may hold one); only the
    stand-in for the camera's name becomes %i."""
    assert units.unit_value(f"/home/a%b/.config/edgeface/{units.INSTANCE}.yaml") \
        == "/home/a%%b/.config/edgeface/%i.yaml"
    layout = Layout.camera(units.INSTANCE, user_mode=True, environ={"HOME": "/home/a%i"})
    text = units.render_unit(units.UnitSettings(
        python=sys.executable, config=layout.config, env_file=layout.env,
        output_dir=layout.output_dir, camera_env=layout.camera_env), user_mode=True)
    assert "--config /home/a%%i/.config/edgeface/%i.yaml" in values(text, "ExecStart")[0]
    assert values(text, "EnvironmentFile") == ["-/home/a%%i/.config/edgeface/edgeface.env",
                                               "-/home/a%%i/.config/edgeface/%i.env"]


# --------------------------------------------------------------------------- install

def test_dry_run_plan_for_a_camera(tmp_path, onnx, ran, monkeypatch, capsys):
    """`install --name cam1 --dry-run`: the plan and the rendered template unit; nothing is
    written or run. The on-device layout is moved into tmp_path so a write would be seen."""
    t = str(tmp_path / "system")
    on_device = Layout.system()
    below = {f.name: t + v for f in fields(on_device)
             if isinstance(v := getattr(on_device, f.name), str) and v.startswith("/")}
    monkeypatch.setattr(Layout, "system", staticmethod(lambda *a: replace(on_device, **below)))
    monkeypatch.setattr(checks, "systemd_booted", lambda: pytest.fail("dry run checked systemd"))
    assert main(["service", "install", "--name", "cam1", "-m", str(onnx), "--dry-run",
                 *PY]) == 0
    out = capsys.readouterr().out
    assert not Path(t).exists() and ran == []
    steps = [line.split(None, 2)[1:] for line in out.splitlines() if line.startswith("  would")]
    assert steps == [
        ["write", f"{t}/etc/sysusers.d/edgeface.conf"],
        ["write", f"{t}/etc/tmpfiles.d/edgeface@cam1.conf"],
        ["mkdir", f"{t}/var/lib/edgeface/models"],
        ["mkdir", f"{t}/var/lib/edgeface/detections/cam1"],
        ["copy", f"{t}/var/lib/edgeface/models/face.onnx  (from {onnx})"],
        ["write", f"{t}/etc/edgeface/cam1.yaml"],
        ["write", f"{t}/etc/edgeface/edgeface.env"],
        ["write", f"{t}/etc/edgeface/cam1.env"],
        ["write", f"{t}/etc/systemd/system/edgeface@.service"],
        ["run", f"systemd-sysusers {t}/etc/sysusers.d/edgeface.conf"],
        ["run", f"systemd-tmpfiles --create {t}/etc/tmpfiles.d/edgeface@cam1.conf"],
        ["run", "systemctl daemon-reload"],
        ["run", "systemctl enable --now edgeface@cam1.service"],
    ]
    unit = out.split(f"--- {t}/etc/systemd/system/edgeface@.service\n")[1].split("\n--- ")[0]
    assert values(unit, "ExecStart") == [f"{sys.executable} -m edgeface.cli $EDGEFACE_OPTS run "
                                         f"--config {t}/etc/edgeface/%i.yaml $EDGEFACE_ARGS"]
    assert values(unit, "EnvironmentFile") == [f"-{t}/etc/edgeface/edgeface.env",
                                               f"-{t}/etc/edgeface/%i.env"]
    assert values(unit, "ReadWritePaths") == [f"{t}/var/lib/edgeface/detections/%i"]
    assert values(unit, "SyslogIdentifier") == ["edgeface-%i"]
    assert f"--- {t}/etc/edgeface/cam1.yaml" in out
    assert "logs: journalctl -u edgeface@cam1 -f   status: edgeface service status --name cam1" \
        in out


def test_two_cameras_into_root(tmp_path, onnx, ran, capsys):
    """Two cameras: one template unit, a config, env file, output directory and tmpfiles.d
    entry each, both instances enabled (the .wants links); the second camera's HTTP server
    moves to the next port."""
    root = tmp_path / "root"
    assert install(root, "door", "-m", str(onnx)) == 0
    assert install(root, "garden", "-m", str(onnx), "--set", "picamera=true") == 0
    out = capsys.readouterr().out
    assert f"keep         {root / UNIT}  (unchanged)" in out
    files = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink()}
    assert files == {
        UNIT, f"{WANTS}/edgeface@door.service", f"{WANTS}/edgeface@garden.service",
        "etc/edgeface/door.yaml", "etc/edgeface/garden.yaml", "etc/edgeface/edgeface.env",
        "etc/edgeface/door.env", "etc/edgeface/garden.env", "etc/sysusers.d/edgeface.conf",
        "etc/tmpfiles.d/edgeface@door.conf", "etc/tmpfiles.d/edgeface@garden.conf",
        "var/lib/edgeface/models/face.onnx"}
    assert enabled(root) == {"edgeface@door.service": "/" + UNIT,
                             "edgeface@garden.service": "/" + UNIT}
    assert (root / "var/lib/edgeface/detections/door").is_dir()
    assert (root / "var/lib/edgeface/detections/garden").is_dir()
    assert [a for a in ran if a[0] == "systemctl"] == [
        ["systemctl", f"--root={root}", "enable", "edgeface@door.service"],
        ["systemctl", f"--root={root}", "enable", "edgeface@garden.service"]]

    door, garden = (load_config(root / f"etc/edgeface/{n}.yaml") for n in ("door", "garden"))
    assert door["model"] == garden["model"] == "/var/lib/edgeface/models/face.onnx"
    assert door["outputs"]["json"] == "/var/lib/edgeface/detections/door/detections.jsonl"
    assert garden["outputs"]["json"] == "/var/lib/edgeface/detections/garden/detections.jsonl"
    assert garden["picamera"] is True and door["picamera"] is False
    assert (door["outputs"]["http"], garden["outputs"]["http"]) == (
        "127.0.0.1:8080", "127.0.0.1:8081")
    assert "garden.yaml: outputs.http 127.0.0.1:8081 (127.0.0.1:8080 is served by door.yaml)" \
        in out
    assert "d /var/lib/edgeface/detections/garden 0750 edgeface edgeface -" in (
        root / "etc/tmpfiles.d/edgeface@garden.conf").read_text()
    assert "#EDGEFACE_MQTT_PASSWORD=" in (root / "etc/edgeface/garden.env").read_text()

    # Installing door again changes nothing: its config keeps its port and its values.
    text = (root / "etc/edgeface/door.yaml").read_text()
    assert install(root, "door") == 0
    assert (root / "etc/edgeface/door.yaml").read_text() == text
    if ANALYZE:
        check_with_systemd_analyze(root / UNIT, tmp_path)


OFFLINE_TOOLS = ("systemctl", "systemd-sysusers", "systemd-tmpfiles")
needs_tools_and_root = pytest.mark.skipif(
    os.geteuid() != 0 or not all(map(shutil.which, OFFLINE_TOOLS)),
    reason="needs the systemd tools, and root (systemd-tmpfiles gives files to the user)")


@needs_tools_and_root
def test_two_cameras_with_the_real_offline_tools(tmp_path, onnx, capsys):
    root = tmp_path / "root"
    for name in ("door", "garden"):
        assert install(root, name, "-m", str(onnx)) == 0
    uid, gid = map(int, re.search(r"^edgeface:x:(\d+):(\d+):", (root / "etc/passwd").read_text(),
                                  re.M).groups())
    for name in ("door", "garden"):
        assert (root / f"var/lib/edgeface/detections/{name}").stat().st_uid == uid
        for secret in (f"etc/edgeface/{name}.yaml", f"etc/edgeface/{name}.env",
                       "etc/edgeface/edgeface.env"):
            st = (root / secret).stat()
            assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, gid, 0o640), secret
    # The parent of the cameras' directories is created for them, and can be entered.
    assert (root / "var/lib/edgeface/detections").stat().st_mode & 0o777 == 0o755
    assert enabled(root) == {"edgeface@door.service": "/" + UNIT,
                             "edgeface@garden.service": "/" + UNIT}


def test_cameras_share_the_template_unit_gpu_and_start_timeout(tmp_path, onnx, ran, capsys):
    """The unit is every camera's: a CPU camera installed after a TensorRT one keeps the GPU
    nodes and the first start's engine build time."""
    root = tmp_path / "root"
    assert install(root, "jetson", "-m", str(onnx), "--set", "provider=tensorrt") == 0
    assert install(root, "usb", "-m", str(onnx), "--set", "provider=cpu") == 0
    unit = (root / UNIT).read_text()
    assert any(d.startswith("/dev/nv") for d in values(unit, "DeviceAllow"))
    assert values(unit, "TimeoutStartSec") == [units.TIMEOUT_START_TRT]


def test_camera_install_refusals_and_warnings(tmp_path, onnx, ran, capsys):
    root = tmp_path / "root"
    assert install(root, "door", "-m", str(onnx), "--output-dir", "/srv/door") == EXIT_USAGE
    assert "camera 'door' writes to /var/lib/edgeface/detections/door" in capsys.readouterr().err
    assert not root.exists()
    assert install(root, "door", "-m", str(onnx)) == 0
    assert install(root, "garden", "-m", str(onnx), "--set", "outputs.http=0.0.0.0:8080",
                   "--set", "outputs.mqtt=broker.lan") == 0
    err = capsys.readouterr().err
    assert "garden.yaml: outputs.http 0.0.0.0:8080 is also served by door.yaml" in err
    assert "--set outputs.mqtt_device=$(hostname)-garden" in err


def test_user_camera_into_root(tmp_path, onnx, ran, monkeypatch, capsys):
    monkeypatch.setenv("HOME", "/home/tester")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    root = tmp_path / "root"
    assert main(["service", "install", "--user", "--name", "cam1", "-m", str(onnx),
                 "--root", str(root), *PY]) == 0
    assert "systemctl --user enable --now edgeface@cam1.service" in capsys.readouterr().out
    home = root / "home/tester"
    unit = home / ".config/systemd/user/edgeface@.service"
    text = unit.read_text()
    assert "--config /home/tester/.config/edgeface/%i.yaml" in values(text, "ExecStart")[0]
    assert values(text, "WantedBy") == ["default.target"] and not values(text, "User")
    cfg = load_config(home / ".config/edgeface/cam1.yaml")
    assert cfg["outputs"]["json"] == \
        "/home/tester/.local/share/edgeface/detections/cam1/detections.jsonl"
    assert (home / ".config/edgeface/cam1.env").is_file()
    assert ran == []  # a user's manager is driven on the device, by that user
    if ANALYZE:
        check_with_systemd_analyze(unit, tmp_path, user=True)


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")
def test_the_instance_check_sees_errors_in_the_template(tmp_path):
    """Verifying the template as an instance expands %i: a bad specifier is caught."""
    layout = Layout.camera(units.INSTANCE)
    text = units.render_unit(units.UnitSettings(
        python=sys.executable, config=layout.config, env_file=layout.env,
        output_dir=layout.output_dir, camera_env=layout.camera_env))
    template = tmp_path / "edgeface@.service"
    template.write_text(text)
    check_with_systemd_analyze(template, tmp_path)
    template.write_text(text.replace("SyslogIdentifier=edgeface-%i", "SyslogIdentifier=%z"))
    with pytest.raises(AssertionError, match="%z"):
        check_with_systemd_analyze(template, tmp_path)


# --------------------------------------------------------------------------- uninstall, status

def test_uninstalling_one_camera_keeps_the_other(tmp_path, onnx, ran, capsys):
    root = tmp_path / "root"
    for name in ("door", "garden"):
        assert install(root, name, "-m", str(onnx)) == 0
    ran.clear()
    assert main(["service", "uninstall", "--name", "door", "--root", str(root)]) == 0
    assert ran == [["systemctl", f"--root={root}", "disable", "edgeface@door.service"]]
    assert f"keep         {root / UNIT}  (used by edgeface@garden)" in capsys.readouterr().out
    assert (root / UNIT).is_file()
    assert enabled(root) == {"edgeface@garden.service": "/" + UNIT}
    assert (root / "etc/edgeface/door.yaml").is_file()  # kept without --purge

    # The last camera takes the template unit with it; --purge only its own files.
    assert main(["service", "uninstall", "--name", "garden", "--root", str(root),
                 "--purge"]) == 0
    assert enabled(root) == {} and not (root / UNIT).exists()
    for gone in ("etc/edgeface/garden.yaml", "etc/edgeface/garden.env",
                 "etc/tmpfiles.d/edgeface@garden.conf"):
        assert not (root / gone).exists(), gone
    for kept in ("etc/edgeface/door.yaml", "etc/edgeface/edgeface.env",
                 "etc/sysusers.d/edgeface.conf", "var/lib/edgeface/models/face.onnx",
                 "var/lib/edgeface/detections/garden"):
        assert (root / kept).exists(), kept


def test_single_service_beside_cameras(tmp_path, onnx, ran, capsys):
    """edgeface.service and a camera side by side: each its own unit and config; removing
    edgeface.service with --purge keeps what the camera still uses."""
    root = tmp_path / "root"
    assert main(["service", "install", "-m", str(onnx), "--root", str(root), *PY]) == 0
    assert install(root, "door", "-m", str(onnx)) == 0
    assert "(127.0.0.1:8080 is served by config.yaml)" in capsys.readouterr().out
    single = (root / "etc/systemd/system/edgeface.service").read_text()
    assert not [s for s in settings_of(single) if "%i" in s[1]]
    assert values(single, "SyslogIdentifier") == ["edgeface"]
    assert set(enabled(root)) == {"edgeface.service", "edgeface@door.service"}

    assert main(["service", "uninstall", "--root", str(root), "--purge"]) == 0
    assert "kept: /etc/edgeface/edgeface.env and /var/lib/edgeface/models/, used by the " \
           "cameras door" in capsys.readouterr().out
    assert not (root / "etc/edgeface/config.yaml").exists()
    for kept in (UNIT, "etc/edgeface/door.yaml", "etc/edgeface/edgeface.env",
                 "etc/sysusers.d/edgeface.conf", "var/lib/edgeface/models/face.onnx"):
        assert (root / kept).exists(), kept


def test_status_of_a_camera(monkeypatch, capsys):
    argvs: list[list[str]] = []
    monkeypatch.setattr(plan, "run_command", lambda argv, **kw: argvs.append(argv) or 3)
    assert main(["service", "status", "--name", "door", "-n", "5"]) == 3
    assert argvs == [["systemctl", "status", "--no-pager", "--lines=5", "edgeface@door.service"]]
    out, err = capsys.readouterr()
    assert "unit:   /etc/systemd/system/edgeface@.service" in out
    assert "config: /etc/edgeface/door.yaml" in out
    assert "edgeface@door.service is not running" in err


def test_a_failed_start_points_at_the_cameras_journal():
    steps = plan.Plan()
    steps.add("run", "", argv=["systemctl", "enable", "--now", "edgeface@door.service"])
    with pytest.raises(EdgefaceError, match=r"; see: journalctl -u edgeface@door -e$"):
        steps.execute(dry_run=False, write_files=False, echo=lambda line: None,
                      runner=lambda argv: 1)
