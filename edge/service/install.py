"""Plan an install or an uninstall of the service: unit, config, env file, model, directories.

:func:`plan_install` checks everything first, then returns a :class:`~edgeface.service.plan.Plan`.
With ``root`` every file is written below that directory (an image, a test) and systemd is only
driven offline (``--root=``); with ``dry_run`` nothing runs on the live system.
"""

from __future__ import annotations

import difflib
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from edgeface.common.files import atomic_copy, atomic_write
from edgeface.common.sizes import parse_size
from edgeface.errors import ConfigError, ModelError
from edgeface.inference.model_info import sidecar_path
from edgeface.service.checks import (
    access_problems,
    check_model,
    group_exists,
    group_names,
    install_locations,
    memory_cgroup_problem,
    protect_home_for,
)
from edgeface.service.config_edit import check_config, edit_config
from edgeface.service.layout import Layout, reroot
from edgeface.service.plan import Plan
from edgeface.service.tensorrt_cache import (
    TensorRTPrebuild,
    check_engine_model,
    is_engine,
    service_cache_dir,
)
from edgeface.service.units import (
    CONFIG_TEMPLATE,
    ENV_TEMPLATE,
    GPU_PROVIDERS,
    MEMORY_MAX,
    SERVICE,
    SERVICE_MEMORY_LIMIT,
    SERVICE_USER,
    TIMEOUT_START_CPU,
    TIMEOUT_START_TRT,
    UnitSettings,
    gpu_device_nodes,
    render_sysusers,
    render_tmpfiles,
    render_unit,
    template_text,
    unit_value,
)


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
        if is_engine(model):
            check_engine_model(model, on_this_device=req.root is None)
        else:
            check_model(model)
        model_dst = str(Path(layout.models_dir) / model.name)

    config_text, existing, opts = _plan_config(req, layout, model_dst, plan)
    engine = is_engine(opts["model"])
    # ONNX Runtime's TensorRT provider builds its engine when the session is created: a
    # live install builds it now, into the cache the service reads, so that no start (and
    # no restart) builds it. An image (--root) is not the device: its first start builds.
    build = None
    if opts.get("provider") == "tensorrt" and not engine and req.root is None:
        build = TensorRTPrebuild(Path(model) if model is not None else Path(opts["model"]),
                                 Path(opts["model"]), service_cache_dir(layout, req.environ),
                                 layout.env, None if req.user_mode else SERVICE_USER)
    # A CSI camera's frames live in NVMM buffers (nvmap, nvhost): they need the nodes too.
    gpu = req.gpu if req.gpu is not None else (
        opts.get("provider", "cpu") in GPU_PROVIDERS or opts.get("csi") is not None or engine)
    locations = [python, *install_locations()[1:]] if req.python else install_locations()
    unit_settings = UnitSettings(
        python=python, config=layout.config, env_file=layout.env, output_dir=layout.output_dir,
        protect_home=protect_home_for(locations),
        gpu_nodes=gpu_device_nodes(req.dev_dir) if gpu else None,
        timeout_start=TIMEOUT_START_TRT if opts.get("provider") == "tensorrt"
        and not engine and build is None else TIMEOUT_START_CPU)
    unit_text = render_unit(unit_settings, user_mode=req.user_mode)
    if not req.user_mode:
        _check_service_user_can_run(req, locations, plan)

    _plan_files(req, layout, plan, model, model_dst, config_text, existing, unit_text)
    _plan_systemd(req, layout, plan, unit_settings, build)
    if opts.get("provider") == "tensorrt" and not engine and build is None:
        plan.notes.append(f"the TensorRT engine is built on the service's first start on the "
                          f"device (TimeoutStartSec={TIMEOUT_START_TRT}), then cached in "
                          f"{service_cache_dir(layout, req.environ)}")
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
    if req.root is None and not group_exists("video"):
        raise ConfigError("this system has no 'video' group, which the unit's "
                          "SupplementaryGroups= needs for camera access: sudo groupadd -r video")
    problems = [] if req.python else access_problems(locations)
    if problems:
        msg = (f"the service user {SERVICE_USER!r} could not run edgeface from here: "
               f"{problems[0]}. Install edgeface outside home directories (sudo python3 -m "
               "venv /opt/edgeface && sudo /opt/edgeface/bin/pip install 'edgeface[cpu]') or use "
               "--user")
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
        # An engine travels with its sidecar (what it was built from and for).
        pairs = [(model, model_dst)] + ([(sidecar_path(model), str(sidecar_path(model_dst)))]
                                        if is_engine(model) else [])
        for src, dst_path in pairs:
            dst = reroot(root, dst_path)
            if _same_bytes(src, dst):
                plan.add("keep", str(dst), note=f"same {'model' if src == model else 'sidecar'}"
                         " already installed")
            else:
                plan.add("copy", str(dst), lambda src=src, dst=dst: atomic_copy(src, dst),
                         note=f"from {src}")

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
                  settings: UnitSettings, build: TensorRTPrebuild | None = None) -> None:
    root, live = req.root, req.root is None
    now = ["--now"] if req.start else []
    wait = (f"waits for the first processed frame, {settings.timeout_start} at most"
            if req.start else "")
    if req.user_mode:
        if live:
            plan.add("run", "", argv=["systemctl", "--user", "daemon-reload"])
            if build is not None:
                build.add_to(plan)
            plan.add("run", "", argv=["systemctl", "--user", "enable", *now, SERVICE],
                     note=wait)
        else:
            plan.notes.append("on the device, as that user: systemctl --user daemon-reload && "
                              f"systemctl --user enable --now {SERVICE}")
        plan.notes.append("to start at boot without a login session: "
                          "sudo loginctl enable-linger $USER")
        if live and "video" not in group_names():
            plan.notes.append("warning: you are not in the 'video' group, so the camera may "
                              "be inaccessible: sudo usermod -aG video $USER (then log in again)")
    elif live:
        plan.add("run", "", argv=["systemd-sysusers", layout.sysusers])
        plan.add("run", "", argv=["systemd-tmpfiles", "--create", layout.tmpfiles])
        plan.add("run", "", argv=["systemctl", "daemon-reload"])
        if build is not None:  # after sysusers: the cache is handed to the service user
            build.add_to(plan)
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
