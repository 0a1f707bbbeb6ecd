"""Render and install the systemd service: unit, config, environment file, model, directories.

The unit templates live in ``systemd/`` (the copies in ``edge/service/templates/`` ship in the wheel
and must stay identical; a test checks). ``@NAME@`` placeholders are filled in here with the
interpreter edgeface is installed in, the on-device paths and the hardware-specific lines.

An install is a :class:`Plan`: a list of file steps and commands, printed as it runs. With
``root`` every file is written below that directory (an image, a test) and systemd is only
driven offline (``--root=``); with ``dry_run`` nothing runs on the live system.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from edgeface.common.files import atomic_copy, atomic_write
from edgeface.common.sizes import parse_size
from edgeface.errors import EXIT_USAGE, ConfigError, EdgefaceError, ModelError

SERVICE = "edgeface.service"
SERVICE_USER = "edgeface"
CONFIG_TEMPLATE = "config.yaml"
SYSTEM_TEMPLATE = "edgeface.service"
USER_TEMPLATE = "edgeface-user.service"
ENV_TEMPLATE = "edgeface.env"
UNIT_TEMPLATES = (SYSTEM_TEMPLATE, USER_TEMPLATE, ENV_TEMPLATE)

# The service config's memory_limit stays below MemoryMax=512M, so that the runtime's clean
# exit 5 comes before the kernel's OOM kill (the cgroup also counts page tables, sockets...).
SERVICE_MEMORY_LIMIT = "480M"
MEMORY_MAX = "512M"

# Model load + first frame; CPU from a cold SD card on a Pi 3 takes well under a minute.
TIMEOUT_START_CPU = "120s"
# A TensorRT engine is built on the first start with the tensorrt provider (minutes on a Nano).
TIMEOUT_START_TRT = "300s"
GPU_PROVIDERS = ("cuda", "tensorrt")

# Jetson (L4T) GPU nodes, used when none can be listed on this machine (rendering for another
# board). Nodes a board lacks are skipped by systemd with a warning.
L4T_GPU_NODES = (
    "/dev/nvhost-ctrl", "/dev/nvhost-ctrl-gpu", "/dev/nvhost-prof-gpu", "/dev/nvhost-gpu",
    "/dev/nvhost-as-gpu", "/dev/nvhost-dbg-gpu", "/dev/nvhost-tsg-gpu", "/dev/nvhost-ctxsw-gpu",
    "/dev/nvhost-sched-gpu", "/dev/nvhost-vic", "/dev/nvmap",
)
_GPU_GLOBS = ("nvhost-*", "nvmap", "nvgpu/*/*", "nvidia*", "nvgpu-pci/*")


# --------------------------------------------------------------------------- templates

def template_text(name: str) -> str:
    """A template shipped in ``edgeface/service/templates`` (``edge/service/templates`` here)."""
    from importlib import resources

    try:
        folder = resources.files("edgeface.service") / "templates"
        return (folder / name).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        raise EdgefaceError(f"template {name!r} is missing from the edgeface package "
                            "(a broken install? reinstall edgeface)") from None


def unit_value(path: str | os.PathLike) -> str:
    """A path as a unit-file value: absolute, no whitespace or quotes, ``%`` escaped."""
    text = str(path)
    if not text.startswith("/"):
        raise ConfigError(f"path must be absolute in a systemd unit: {text}")
    if re.search(r"[\s\"'\\;$]", text):
        raise ConfigError(f"path not supported in a systemd unit (whitespace, quote, "
                          f"backslash, ';' or '$'): {text!r}")
    return text.replace("%", "%%")


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace ``@NAME@`` placeholders; a placeholder left unfilled is an error."""
    out = template
    for key, value in values.items():
        out = out.replace(f"@{key}@", value)
    left = sorted(set(re.findall(r"@([A-Z_]+)@", out)))
    if left:
        raise EdgefaceError(f"unit template placeholders not filled: {', '.join(left)}")
    return out


def gpu_device_nodes(dev: str | os.PathLike = "/dev") -> list[str]:
    """The Jetson/NVIDIA GPU device nodes present under ``dev``."""
    dev = Path(dev)
    found: set[str] = set()
    for pattern in _GPU_GLOBS:
        for p in dev.glob(pattern):
            try:
                if stat.S_ISCHR(p.stat().st_mode):
                    found.add(str(Path("/dev") / p.relative_to(dev)))
            except OSError:
                continue
    return sorted(found)


def gpu_device_lines(nodes: Sequence[str] | None) -> str:
    """The DeviceAllow= block for the GPU (a comment when the CPU backend is used)."""
    if nodes is None:
        return "# CPU backend, no CSI camera: no GPU nodes (`service install --gpu` adds them)."
    nodes = list(nodes) or list(L4T_GPU_NODES)
    lines = ["# Jetson GPU (cuda/tensorrt providers, CSI camera buffers): nvhost, nvmap, nvgpu."]
    lines += [f"DeviceAllow={unit_value(n)} rw" for n in nodes]
    return "\n".join(lines)


@dataclass
class UnitSettings:
    """What varies between installs of the unit."""

    python: str
    config: str
    env_file: str
    output_dir: str
    user: str = SERVICE_USER
    protect_home: str = "yes"
    gpu_nodes: list[str] | None = None  # None: CPU backend
    timeout_start: str = TIMEOUT_START_CPU


def render_unit(settings: UnitSettings, *, user_mode: bool = False) -> str:
    """The unit file text for a system (default) or user service."""
    s = settings
    values = {
        "PYTHON": unit_value(s.python),
        "CONFIG": unit_value(s.config),
        "ENV_FILE": unit_value(s.env_file),
        "TIMEOUT_START": s.timeout_start,
    }
    if not user_mode:
        if not re.fullmatch(r"[a-z_][a-z0-9_-]*", s.user):
            raise ConfigError(f"invalid user name {s.user!r}")
        if s.protect_home not in ("yes", "read-only", "tmpfs"):
            raise ConfigError(f"invalid ProtectHome= value {s.protect_home!r}")
        values.update(OUTPUT_DIR=unit_value(s.output_dir), USER=s.user,
                      PROTECT_HOME=s.protect_home, GPU_DEVICES=gpu_device_lines(s.gpu_nodes))
    return fill(template_text(USER_TEMPLATE if user_mode else SYSTEM_TEMPLATE), values)


def render_sysusers(user: str = SERVICE_USER, home: str = "/var/lib/edgeface") -> str:
    return ("# Written by `edgeface service install`: the unprivileged user of edgeface.service.\n"
            f'u {user} - "edgeface face detection" {home}\n')


def render_tmpfiles(layout: Layout, user: str = SERVICE_USER) -> str:
    """Directories, and the config's group: tmpfiles.d applies them at install and boot."""
    return ("# Written by `edgeface service install`: files of edgeface.service.\n"
            "# Models are read-only to the service; the output directory is its own; the\n"
            "# config and env file (stream credentials) are readable by root and its group.\n"
            f"d {layout.models_dir} 0755 root root -\n"
            f"d {layout.output_dir} 0750 {user} {user} -\n"
            f"z {layout.config} 0640 root {user} -\n"
            f"z {layout.env} 0640 root {user} -\n")


# --------------------------------------------------------------------------- the config

_OUTPUT_FILE_KEYS = ("json", "video")


def _yaml_scalar(value: Any) -> str:
    """A one-line YAML value (JSON is a subset of YAML's flow style)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


_VALUE_RE = re.compile(r"""^(?P<val>(?:"[^"]*"|'[^']*'|[^#'"])*?)(?P<comment>\s+#.*)?$""")


def _replace_value(line: str, key_end: int, value: Any) -> str:
    m = _VALUE_RE.match(line[key_end:])
    comment = m.group("comment") if m and m.group("comment") else ""
    return f"{line[:key_end]} {_yaml_scalar(value)}{comment}"


def set_config_value(text: str, key: str, value: Any) -> str:
    """Set ``key`` (``model`` or ``outputs.json``) in block-style YAML, keeping comments.

    The edited text is parsed back and checked; anything this simple editor cannot do is
    done by re-serialising the document (comments are then lost, the values are not).
    """
    lines = text.splitlines()
    parts = key.split(".")
    try:
        if len(parts) == 1:
            lines = _set_top(lines, parts[0], value)
        elif len(parts) == 2:
            lines = _set_nested(lines, parts[0], parts[1], value)
        else:
            raise ValueError(key)
        out = "\n".join(lines) + "\n"
        if _get(yaml.safe_load(out) or {}, parts) == value:
            return out
    except (ValueError, yaml.YAMLError):
        pass
    data = yaml.safe_load(text) or {}
    node = data
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[parts[-1]] = value
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def _get(data: Any, parts: Sequence[str]) -> Any:
    for p in parts:
        if not isinstance(data, dict) or p not in data:
            return object()  # never equal to a value
        data = data[p]
    return data


def _set_top(lines: list[str], key: str, value: Any) -> list[str]:
    pat = re.compile(rf"^{re.escape(key)}\s*:")
    for i, line in enumerate(lines):
        m = pat.match(line)
        if m:
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            if line[m.end():].strip() in ("", "|", ">") and nxt[:1] in (" ", "\t", "-"):
                raise ValueError("block value")  # a mapping or list below: re-serialise
            lines = list(lines)
            lines[i] = _replace_value(line, m.end(), value)
            return lines
    return [*lines, f"{key}: {_yaml_scalar(value)}"]


def _set_nested(lines: list[str], parent: str, key: str, value: Any) -> list[str]:
    top = re.compile(rf"^{re.escape(parent)}\s*:\s*(#.*)?$")
    child = re.compile(rf"^(\s+){re.escape(key)}\s*:")
    for i, line in enumerate(lines):
        if not top.match(line):
            continue
        indent = "  "
        j = i + 1
        # The block: blank or indented lines up to the next line starting in column 0.
        while j < len(lines) and (not lines[j].strip() or lines[j][:1] in (" ", "\t")):
            m = child.match(lines[j])
            if m:
                lines = list(lines)
                lines[j] = _replace_value(lines[j], m.end(), value)
                return lines
            if lines[j].strip() and not lines[j].lstrip().startswith("#"):
                indent = lines[j][:len(lines[j]) - len(lines[j].lstrip())]
            j += 1
        return [*lines[:i + 1], f"{indent}{key}: {_yaml_scalar(value)}", *lines[i + 1:]]
    return [*lines, f"{parent}:", f"  {key}: {_yaml_scalar(value)}"]


def parse_settings(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (VALUE in YAML: ``true``, ``0``, ``null``) -> a dict."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise ConfigError(f"--set {key}: {raw!r} is not a YAML value") from None
    return out


def edit_config(text: str, values: Mapping[str, Any], output_dir: str | None) -> str:
    """Apply ``values`` (dotted keys) to a config text and validate the result.

    Setting one source key (camera, picamera, csi, source) clears the others. Relative
    file outputs of the template are placed in ``output_dir``, where the service may write.
    """
    from edgeface.runtime.config import sources_given

    values = dict(values)
    given = sources_given(values)
    if given:
        data = yaml.safe_load(text) or {}
        for k in sources_given(data):
            if k not in values:
                values[k] = False if k == "picamera" else None
    for key, value in values.items():
        text = set_config_value(text, key, value)
    if output_dir:
        outputs = (yaml.safe_load(text) or {}).get("outputs") or {}
        for k in _OUTPUT_FILE_KEYS:
            v = outputs.get(k) if isinstance(outputs, dict) else None
            if isinstance(v, str) and v != "-" and not os.path.isabs(os.path.expanduser(v)):
                text = set_config_value(text, f"outputs.{k}", str(Path(output_dir) / v))
    return text


def check_config(text: str, *, output_dir: str | None, where: str) -> dict[str, Any]:
    """Validate a config text as the runtime will; file outputs must be writable."""
    from edgeface.runtime.config import validate

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    try:
        opts = validate(data, base=Path(where).parent)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if output_dir:
        for k in _OUTPUT_FILE_KEYS:
            v = (opts.get("outputs") or {}).get(k)
            if v and v != "-" and not _inside(Path(v), Path(output_dir)):
                raise ConfigError(
                    f"{where}: outputs.{k} = {v} is outside the service's only writable "
                    f"directory {output_dir}; use a path inside it (or --output-dir)")
    return opts


def _inside(path: Path, directory: Path) -> bool:
    try:
        Path(os.path.normpath(path)).relative_to(os.path.normpath(directory))
        return True
    except ValueError:
        return False


# --------------------------------------------------------------------------- checks

def check_model(path: Path) -> None:
    """Fail now, not at 3 a.m. on the device: the model must load in ONNX Runtime."""
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    from edgeface.inference.backends import open_backend

    open_backend(path, threads=1)


def unreadable_for_others(path: Path) -> Path | None:
    """The first directory above ``path`` that a user who is neither owner nor group
    member cannot traverse (no o+x), or None."""
    for parent in [*reversed(path.parents)]:
        try:
            mode = parent.stat().st_mode
        except OSError:
            return parent
        if not mode & stat.S_IXOTH:
            return parent
    return None


_HOME_PREFIXES = ("/home/", "/root/", "/run/user/")


def protect_home_for(paths: Sequence[str]) -> str:
    """``read-only`` when edgeface's own files live under a home directory, else ``yes``."""
    return "read-only" if any(str(p).startswith(_HOME_PREFIXES) for p in paths) else "yes"


def install_locations() -> list[str]:
    """Where this edgeface lives: the interpreter, the environment and the package."""
    return [sys.executable, sys.prefix, str(Path(__file__).resolve().parent)]


def access_problems(paths: Sequence[str]) -> list[str]:
    """Reasons the unprivileged service user could not run edgeface from ``paths``."""
    problems = []
    for p in paths:
        if str(p).startswith(("/tmp/", "/var/tmp/")):
            problems.append(f"{p} is under a temporary directory, which the service does not "
                            "see (PrivateTmp=yes)")
            continue
        blocked = unreadable_for_others(Path(p))
        if blocked is not None:
            problems.append(f"{blocked} (above {p}) cannot be entered by other users")
    return problems


def memory_cgroup_problem(proc_cmdline: str = "/proc/cmdline",
                          controllers: str = "/sys/fs/cgroup/cgroup.controllers") -> str | None:
    """Why MemoryMax= would not be enforced here (Raspberry Pi firmware disables the memory
    controller on the kernel command line), or None."""
    try:
        enabled = "memory" in Path(controllers).read_text().split()
    except OSError:
        enabled = None  # cgroup v1 or unreadable: judge by the command line alone
    if enabled:
        return None
    try:
        args = Path(proc_cmdline).read_text().split()
    except OSError:
        return None
    disabled = False
    for arg in args:  # the last of cgroup_disable/cgroup_enable=memory wins
        if arg == "cgroup_disable=memory":
            disabled = True
        elif arg == "cgroup_enable=memory":
            disabled = False
    if not disabled:
        return None
    return ("warning: the kernel command line disables the memory cgroup "
            "(cgroup_disable=memory), so MemoryMax=512M is not enforced; append "
            "'cgroup_enable=memory cgroup_memory=1' to /boot/firmware/cmdline.txt and reboot "
            "(the runtime's own memory limit applies meanwhile)")


def systemd_booted() -> bool:
    """True when systemd is the running init system (sd_booted(3))."""
    return Path("/run/systemd/system").is_dir()


# --------------------------------------------------------------------------- layout

def reroot(root: Path | None, path: str | os.PathLike) -> Path:
    """``path`` (absolute, on the device) as seen from here: below ``root`` if given."""
    p = Path(path)
    return root / p.relative_to(p.anchor) if root is not None else p


@dataclass
class Layout:
    """On-device paths of everything an install writes."""

    user_mode: bool
    unit: str
    config: str
    env: str
    models_dir: str
    output_dir: str
    sysusers: str | None = None
    tmpfiles: str | None = None

    @classmethod
    def system(cls, output_dir: str | None = None) -> Layout:
        return cls(user_mode=False, unit=f"/etc/systemd/system/{SERVICE}",
                   config="/etc/edgeface/config.yaml", env="/etc/edgeface/edgeface.env",
                   models_dir="/var/lib/edgeface/models",
                   output_dir=output_dir or "/var/lib/edgeface/detections",
                   sysusers="/etc/sysusers.d/edgeface.conf",
                   tmpfiles="/etc/tmpfiles.d/edgeface.conf")

    @classmethod
    def user(cls, output_dir: str | None = None,
             environ: Mapping[str, str] | None = None) -> Layout:
        env = os.environ if environ is None else environ
        home = Path(env.get("HOME") or Path.home())
        config_home = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
        data_home = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")
        return cls(user_mode=True, unit=str(config_home / "systemd" / "user" / SERVICE),
                   config=str(config_home / "edgeface" / "config.yaml"),
                   env=str(config_home / "edgeface" / "edgeface.env"),
                   models_dir=str(data_home / "edgeface" / "models"),
                   output_dir=output_dir or str(data_home / "edgeface" / "detections"))


# --------------------------------------------------------------------------- plans

@dataclass
class Step:
    """One thing an install does: a file operation (``apply``) or a command (``argv``)."""

    verb: str
    target: str
    apply: Callable[[], None] | None = None
    argv: list[str] | None = None
    note: str = ""
    check: bool = True  # a failing command fails the install


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    show: list[tuple[str, str]] = field(default_factory=list)  # (title, text) for dry runs

    def add(self, *args: Any, **kwargs: Any) -> None:
        self.steps.append(Step(*args, **kwargs))

    def execute(self, *, dry_run: bool, write_files: bool, echo: Callable[[str], None],
                runner: Callable[[list[str]], int] | None = None) -> None:
        """Run the steps in order, echoing each; see :func:`run_command` for ``runner``."""
        runner = runner or run_command
        for step in self.steps:
            shown = shlex.join(step.argv) if step.argv else step.target
            note = f"  ({step.note})" if step.note else ""
            if step.argv is not None:
                if dry_run:
                    echo(f"  would run    {shown}")
                    continue
                echo(f"  run          {shown}{note}")
                rc = runner(step.argv)
                if rc != 0 and step.check:
                    hint = ("; see: journalctl -u edgeface -e" if "--now" in step.argv
                            or "start" in step.argv else "")
                    raise EdgefaceError(f"`{shown}` failed with exit status {rc}{hint}")
                continue
            if step.apply is None or not write_files:
                echo(f"  {'would ' + step.verb if step.apply else step.verb:12s} {shown}{note}")
                continue
            echo(f"  {step.verb:12s} {shown}{note}")
            try:
                step.apply()
            except OSError as exc:
                raise EdgefaceError(f"{step.verb} {shown}: {exc.strerror or exc}") from None


def run_command(argv: list[str], *, to_stderr: bool = True) -> int:
    """Run a command (its output on our stderr); a missing program is an EdgefaceError."""
    if shutil.which(argv[0]) is None:
        raise EdgefaceError(f"{argv[0]} not found: is this a systemd system?")
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    (sys.stderr if to_stderr else sys.stdout).write(done.stdout)
    sys.stderr.write(done.stderr)
    return done.returncode


def _same_bytes(a: Path, b: Path) -> bool:
    if not (a.is_file() and b.is_file()) or a.stat().st_size != b.stat().st_size:
        return False
    import filecmp

    return filecmp.cmp(a, b, shallow=False)


def _diff(old: str, new: str, name: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                        f"{name} (installed)", f"{name} (new)"))


@dataclass
class InstallRequest:
    """Everything `edgeface service install` was asked for."""

    user_mode: bool = False
    root: Path | None = None
    dry_run: bool = False
    model: Path | None = None
    output_dir: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    gpu: bool | None = None  # None: when the config's provider is cuda/tensorrt
    python: str | None = None
    force: bool = False
    start: bool = True
    environ: Mapping[str, str] | None = None
    dev_dir: str = "/dev"


def plan_install(req: InstallRequest) -> Plan:
    """Check everything, then return the steps of the install (nothing is changed here)."""
    layout = Layout.user(req.output_dir, req.environ) if req.user_mode \
        else Layout.system(req.output_dir)
    plan = Plan()
    python = req.python or sys.executable
    unit_value(python)
    if req.root is None and not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise ConfigError(f"interpreter is not an executable file: {python}")

    # The model is checked, then copied next to the service's other state, never referenced
    # in place: the service cannot read home directories, and a re-export in a work folder
    # must not change what a running device uses.
    model = model_dst = None
    if req.model is not None:
        model = Path(req.model).expanduser().resolve()
        check_model(model)
        model_dst = str(Path(layout.models_dir) / model.name)

    config_text, existing, opts = _plan_config(req, layout, model_dst, plan)
    # A CSI camera's frames live in NVMM buffers (nvmap, nvhost): they need the nodes too.
    gpu = req.gpu if req.gpu is not None else (
        opts.get("provider", "cpu") in GPU_PROVIDERS or opts.get("csi") is not None)
    locations = [python, *install_locations()[1:]] if req.python else install_locations()
    unit_settings = UnitSettings(
        python=python, config=layout.config, env_file=layout.env, output_dir=layout.output_dir,
        protect_home=protect_home_for(locations),
        gpu_nodes=gpu_device_nodes(req.dev_dir) if gpu else None,
        timeout_start=TIMEOUT_START_TRT if opts.get("provider") == "tensorrt"
        else TIMEOUT_START_CPU)
    unit_text = render_unit(unit_settings, user_mode=req.user_mode)
    if not req.user_mode:
        _check_service_user_can_run(req, locations, plan)

    _plan_files(req, layout, plan, model, model_dst, config_text, existing, unit_text)
    _plan_systemd(req, layout, plan, unit_settings)
    return plan


def _plan_config(req: InstallRequest, layout: Layout, model_dst: str | None,
                 plan: Plan) -> tuple[str, str | None, dict[str, Any]]:
    """The config to install: the installed one if any (--model and --set applied to it),
    else the template; validated as the runtime will. Returns (text, existing, options)."""
    values: dict[str, Any] = dict(req.settings)
    config_here = reroot(req.root, layout.config)
    existing = config_here.read_text(encoding="utf-8") if config_here.is_file() else None
    base = template_text(CONFIG_TEMPLATE) if existing is None or req.force else existing
    if model_dst:
        values["model"] = model_dst
    elif existing is not None and req.force:  # back to the template, same model
        values["model"] = (yaml.safe_load(existing) or {}).get("model")
    text = edit_config(base, values, layout.output_dir)
    opts = check_config(text, output_dir=layout.output_dir, where=layout.config)

    limit = parse_size(opts.get("memory_limit", SERVICE_MEMORY_LIMIT))
    if limit is None or limit > parse_size(SERVICE_MEMORY_LIMIT):
        if "memory_limit" in req.settings:
            plan.notes.append(f"warning: memory_limit {opts.get('memory_limit')} is not below "
                              f"the unit's MemoryMax={MEMORY_MAX}: the kernel's OOM killer may "
                              "stop the runtime before its own clean exit 5")
        else:
            text = edit_config(text, {"memory_limit": SERVICE_MEMORY_LIMIT}, layout.output_dir)
            opts = check_config(text, output_dir=layout.output_dir, where=layout.config)
    if not opts.get("model"):
        raise ConfigError(f"no model: pass --model FILE.onnx (the config {layout.config} "
                          "names none)")
    if model_dst is None and req.root is None and not Path(opts["model"]).is_file():
        raise ModelError(f"the config's model {opts['model']} does not exist; pass --model")
    return text, existing, opts


def _check_service_user_can_run(req: InstallRequest, locations: Sequence[str],
                                plan: Plan) -> None:
    if req.root is None and not _group_exists("video"):
        raise ConfigError("this system has no 'video' group, which the unit's "
                          "SupplementaryGroups= needs for camera access: sudo groupadd -r video")
    problems = [] if req.python else access_problems(locations)
    if problems:
        msg = (f"the service user {SERVICE_USER!r} could not run edgeface from here: "
               f"{problems[0]}. Install edgeface outside home directories (sudo python3 -m "
               "venv /opt/edgeface && sudo /opt/edgeface/bin/pip install edgeface) or use --user")
        if not req.dry_run:
            raise ConfigError(msg)
        plan.notes.append("warning: " + msg)


def _plan_files(req: InstallRequest, layout: Layout, plan: Plan, model: Path | None,
                model_dst: str | None, config_text: str, existing: str | None,
                unit_text: str) -> None:
    root = req.root
    # The config may hold stream credentials: root and the service's group only (tmpfiles.d
    # sets the group, once sysusers.d created it); a user install keeps it private.
    secret = 0o600 if req.user_mode else 0o640

    def write(path: str, text: str, mode: int = 0o644) -> Callable[[], None]:
        return lambda: atomic_write(reroot(root, path), text, mode)

    if not req.user_mode:
        plan.add("write", str(reroot(root, layout.sysusers)),
                 write(layout.sysusers, render_sysusers(SERVICE_USER)))
        plan.add("write", str(reroot(root, layout.tmpfiles)),
                 write(layout.tmpfiles, render_tmpfiles(layout)))
    for d in (layout.models_dir, layout.output_dir):
        here = reroot(root, d)
        if not here.is_dir():
            plan.add("mkdir", str(here), lambda here=here: here.mkdir(parents=True, exist_ok=True))
    if model is not None and model_dst is not None:
        dst = reroot(root, model_dst)
        if _same_bytes(model, dst):
            plan.add("keep", str(dst), note="same model already installed")
        else:
            plan.add("copy", str(dst), lambda: atomic_copy(model, dst), note=f"from {model}")

    config_here = reroot(root, layout.config)
    backup = Path(str(config_here) + ".bak")
    if existing is not None and (req.force or config_text != existing):
        plan.add("backup", str(backup), lambda: atomic_copy(config_here, backup, secret))
    if existing is None or req.force:
        plan.add("write", str(config_here), write(layout.config, config_text, secret))
    elif config_text != existing:
        before, after = yaml.safe_load(existing) or {}, yaml.safe_load(config_text) or {}
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        plan.add("update", str(config_here), write(layout.config, config_text, secret),
                 note="changed: " + ", ".join(changed))
    else:
        plan.add("keep", str(config_here), note="exists; --force replaces it")
    env_here = reroot(root, layout.env)
    if env_here.exists() and not req.force:
        plan.add("keep", str(env_here), note="exists; --force replaces it")
    else:
        plan.add("write", str(env_here), write(layout.env, template_text(ENV_TEMPLATE), secret))

    unit_here = reroot(root, layout.unit)
    old_unit = unit_here.read_text(encoding="utf-8") if unit_here.is_file() else None
    if old_unit == unit_text:
        plan.add("keep", str(unit_here), note="unchanged")
    else:
        plan.add("write", str(unit_here), write(layout.unit, unit_text),
                 note="updated" if old_unit is not None else "")
    plan.show = [(layout.unit, unit_text), (layout.config, config_text)]
    if old_unit is not None and old_unit != unit_text:
        plan.show.append((f"{layout.unit} changes", _diff(old_unit, unit_text, SERVICE)))


def _plan_systemd(req: InstallRequest, layout: Layout, plan: Plan,
                  settings: UnitSettings) -> None:
    root, live = req.root, req.root is None
    now = ["--now"] if req.start else []
    wait = (f"waits for the first processed frame, {settings.timeout_start} at most"
            if req.start else "")
    if req.user_mode:
        if live:
            plan.add("run", "", argv=["systemctl", "--user", "daemon-reload"])
            plan.add("run", "", argv=["systemctl", "--user", "enable", *now, SERVICE],
                     note=wait)
        else:
            plan.notes.append("on the device, as that user: systemctl --user daemon-reload && "
                              f"systemctl --user enable --now {SERVICE}")
        plan.notes.append("to start at boot without a login session: "
                          "sudo loginctl enable-linger $USER")
        if live and "video" not in _group_names():
            plan.notes.append("warning: you are not in the 'video' group, so the camera may "
                              "be inaccessible: sudo usermod -aG video $USER (then log in again)")
    elif live:
        plan.add("run", "", argv=["systemd-sysusers", layout.sysusers])
        plan.add("run", "", argv=["systemd-tmpfiles", "--create", layout.tmpfiles])
        plan.add("run", "", argv=["systemctl", "daemon-reload"])
        plan.add("run", "", argv=["systemctl", "enable", *now, SERVICE], note=wait)
    else:
        # Offline, on the image: the tools read these files from the host path given.
        r = f"--root={root}"
        plan.add("run", "", argv=["systemd-sysusers", r, str(reroot(root, layout.sysusers))])
        plan.add("run", "", argv=["systemd-tmpfiles", r, "--create",
                                  str(reroot(root, layout.tmpfiles))])
        plan.add("run", "", argv=["systemctl", r, "enable", SERVICE])
        if not req.dry_run:
            plan.notes.append(f"{SERVICE} is enabled in {root}: it starts when that system "
                              "boots")
    if live:
        problem = memory_cgroup_problem()
        if problem:
            plan.notes.append(problem)
        if req.start:
            user = " --user" if req.user_mode else ""
            plan.notes.append(f"logs: journalctl{user} -u edgeface -f   "
                              f"status: edgeface service status{user}")


def _group_exists(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def _group_names() -> set[str]:
    import grp

    names = set()
    for gid in os.getgroups():
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return names


def require_live_system(user_mode: bool) -> None:
    """A live install needs systemd running and, for a system service, root."""
    if not systemd_booted():
        raise EdgefaceError("systemd is not running on this machine (no /run/systemd/system): "
                            "use --root DIR to install into an image, or --dry-run",
                            EXIT_USAGE)
    if not user_mode and os.geteuid() != 0:
        raise EdgefaceError("a system service needs root: run it with sudo (or use --user for "
                            "a user service, --dry-run to see the plan)", EXIT_USAGE)
    if user_mode and os.geteuid() == 0:
        raise EdgefaceError("--user manages your own user service: run it without sudo, as "
                            "the user whose session should run edgeface", EXIT_USAGE)


def _rmdir_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass  # holds files edgeface did not write: leave them


def plan_uninstall(*, user_mode: bool = False, root: Path | None = None, purge: bool = False,
                   environ: Mapping[str, str] | None = None) -> Plan:
    """Stop, disable and remove the unit; with ``purge`` also config, env file and models.

    Output files (detections) and the service user are never removed.
    """
    layout = Layout.user(environ=environ) if user_mode else Layout.system()
    live = root is None
    plan = Plan()
    unit_here = reroot(root, layout.unit)
    user = ["--user"] if user_mode else []
    if unit_here.exists():
        if live:
            plan.add("run", "", argv=["systemctl", *user, "disable", "--now", SERVICE])
        elif not user_mode:
            plan.add("run", "", argv=["systemctl", f"--root={root}", "disable", SERVICE])
        plan.add("remove", str(unit_here), unit_here.unlink)
        if live:
            plan.add("run", "", argv=["systemctl", *user, "daemon-reload"])
            plan.add("run", "", argv=["systemctl", *user, "reset-failed", SERVICE], check=False)
    else:
        plan.notes.append(f"{SERVICE} is not installed ({unit_here} does not exist)")
    if purge:
        for p in (layout.config, layout.config + ".bak", layout.env, layout.sysusers,
                  layout.tmpfiles):
            here = reroot(root, p) if p else None
            if here is not None and here.exists():
                plan.add("remove", str(here), here.unlink)
        models = reroot(root, layout.models_dir)
        if models.is_dir():
            plan.add("remove", f"{models}/", lambda: shutil.rmtree(models))
        config_dir = reroot(root, str(Path(layout.config).parent))
        if config_dir.is_dir():
            plan.add("rmdir", f"{config_dir}/", lambda: _rmdir_if_empty(config_dir),
                     note="if empty")
    plan.notes.append(f"kept: {layout.output_dir} (detections)"
                      + ("" if user_mode else f" and the system user {SERVICE_USER!r}")
                      + ("" if purge else f", {Path(layout.config).parent}/ and "
                         f"{layout.models_dir}/ (--purge removes those)"))
    return plan
