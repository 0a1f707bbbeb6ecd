"""Plan an install or an uninstall of the service: unit, config, env file, model, directories.

:func:`plan_install` checks everything first, then returns a :class:`~edgeface.service.plan.Plan`.
With ``root`` every file is written below that directory (an image, a test) and systemd is only
driven offline (``--root=``); with ``dry_run`` nothing runs on the live system. With a camera
``name`` the unit is the template ``edgeface@.service``, shared by every camera, and the
config, env file, output directory and tmpfiles.d entry are that camera's.
"""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from edgeface.common.files import atomic_copy, atomic_write
from edgeface.common.sizes import parse_size
from edgeface.errors import ConfigError, ModelError
from edgeface.inference.backends import BackendSpec, backend_for
from edgeface.inference.model_info import sidecar_path
from edgeface.service import cameras
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
from edgeface.service.layout import Layout, enabled_cameras, render_tmpfiles, reroot
from edgeface.service.plan import Plan
from edgeface.service.prebuild import (
    TensorRTPrebuild,
    check_engine_model,
    is_engine,
    service_cache_dir,
)
from edgeface.service.units import (
    CONFIG_TEMPLATE,
    ENV_TEMPLATE,
    INSTANCE,
    MEMORY_MAX,
    SERVICE_MEMORY_LIMIT,
    SERVICE_USER,
    TIMEOUT_START_CPU,
    TIMEOUT_START_TRT,
    UnitSettings,
    gpu_device_nodes,
    render_camera_env,
    render_sysusers,
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
    name: str | None = None  # a camera: edgeface@NAME.service


def _layout(req: InstallRequest) -> Layout:
    if req.name is None:
        return Layout.user(req.output_dir, req.environ) if req.user_mode \
            else Layout.system(req.output_dir)
    layout = Layout.camera(req.name, user_mode=req.user_mode, environ=req.environ)
    if req.output_dir is not None:
        raise ConfigError(f"--output-dir is for edgeface.service: camera {req.name!r} writes to "
                          f"{layout.output_dir}, the template unit's ReadWritePaths=")
    return layout


def _model_spec(opts: Mapping[str, Any]) -> BackendSpec:
    """The spec of the backend that will run the configured model (the config check has
    refused a provider that backend lacks)."""
    return backend_for(opts.get("model") or "", "auto")


def _needs_gpu(opts: Mapping[str, Any]) -> bool:
    """Whether the unit needs the GPU's device nodes: the model's backend on its provider
    needs them, or a source kind does (a CSI camera's frames live in NVMM buffers)."""
    from edgeface.runtime.sources import source_kinds

    sources = [k for k in source_kinds().values() if k.needs_gpu and k.selector is not None]
    spec, provider = _model_spec(opts), opts.get("provider")
    return spec.needs_gpu(provider if provider in spec.providers else "auto") or any(
        opts.get(k.selector.key) is not None and opts.get(k.selector.key) is not False
        for k in sources)


def _builds_on_start(opts: Mapping[str, Any]) -> bool:
    """Whether opening the configured model builds an engine (ONNX Runtime's TensorRT
    provider)."""
    spec, provider = _model_spec(opts), opts.get("provider")
    return spec.builds_engine(provider if provider in spec.providers else "auto")


def plan_install(req: InstallRequest) -> Plan:
    """Check everything, then return the steps of the install (nothing is changed here)."""
    layout = _layout(req)
    # The unit names a camera's paths with %i: one template unit serves every camera.
    in_unit = layout if req.name is None else Layout.camera(
        INSTANCE, user_mode=req.user_mode, environ=req.environ)
    # The others' needs, where the unit is theirs too (GPU nodes, a first start's TensorRT
    # build); their HTTP ports, where this camera's server must not collide.
    others = cameras.other_configs(layout, req.root) if req.name else {}
    sharing = cameras.camera_configs(others)
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

    config_text, existing, opts = _plan_config(req, layout, model_dst, plan, others)
    # ONNX Runtime's TensorRT provider builds its engine when the session is created: a
    # live install builds it now, into the cache the service reads, so that no start (and
    # no restart) builds it. An image (--root) is not the device: its first start builds.
    build = None
    if _builds_on_start(opts) and req.root is None:
        build = TensorRTPrebuild(Path(model) if model is not None else Path(opts["model"]),
                                 Path(opts["model"]), service_cache_dir(layout, req.environ),
                                 layout.env, None if req.user_mode else SERVICE_USER)
    gpu = req.gpu if req.gpu is not None else (
        _needs_gpu(opts) or any(_needs_gpu(o) for o in sharing.values()))
    # An engine built on the first start: this one's (not built now), or, in an image,
    # another camera's (a live install built it at that camera's install).
    first_build = (_builds_on_start(opts) and build is None) or (
        req.root is not None and any(_builds_on_start(o) for o in sharing.values()))
    locations = [python, *install_locations()[1:]] if req.python else install_locations()
    unit_settings = UnitSettings(
        python=python, config=in_unit.config, env_file=in_unit.env,
        output_dir=in_unit.output_dir, protect_home=protect_home_for(locations),
        gpu_nodes=gpu_device_nodes(req.dev_dir) if gpu else None,
        timeout_start=TIMEOUT_START_TRT if first_build else TIMEOUT_START_CPU,
        camera_env=in_unit.camera_env)
    unit_text = render_unit(unit_settings, user_mode=req.user_mode)
    if not req.user_mode:
        _check_service_user_can_run(req, locations, plan)

    _plan_files(req, layout, plan, model, model_dst, config_text, existing, unit_text)
    _plan_systemd(req, layout, plan, unit_settings, build)
    if _builds_on_start(opts) and build is None:
        plan.notes.append(f"the TensorRT engine is built on the service's first start on the "
                          f"device (TimeoutStartSec={TIMEOUT_START_TRT}), then cached in "
                          f"{service_cache_dir(layout, req.environ)}")
    return plan


def _plan_config(req: InstallRequest, layout: Layout, model_dst: str | None, plan: Plan,
                 others: Mapping[str, dict[str, Any]]) -> tuple[str, str | None, dict[str, Any]]:
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
    if req.name is not None:
        text, opts = _camera_config(req, layout, text, opts, others, plan,
                                    new=existing is None or req.force)

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


def _camera_config(req: InstallRequest, layout: Layout, text: str, opts: dict[str, Any],
                   others: Mapping[str, dict[str, Any]], plan: Plan,
                   new: bool) -> tuple[str, dict[str, Any]]:
    """A new camera's HTTP server moves to the next port no other config serves on (the
    template's 8080 is the first camera's); a port set by hand that collides is a warning."""
    outputs = opts.get("outputs") or {}
    if outputs.get("mqtt") and not outputs.get("mqtt_device"):
        plan.notes.append(f"warning: {layout.config}: no outputs.mqtt_device, so this camera "
                          "publishes as the host name, like any other camera here: --set "
                          f"outputs.mqtt_device=$(hostname)-{req.name}")
    http = outputs.get("http")
    if new and "outputs.http" not in req.settings:
        moved = cameras.free_http(http, others)
        if moved is not None:
            users = cameras.http_users(cameras.http_port(http), others)
            plan.notes.append(f"{layout.config}: outputs.http {moved} ({http} is served by "
                              f"{_configs(users)})")
            text = edit_config(text, {"outputs.http": moved}, layout.output_dir)
            return text, check_config(text, output_dir=layout.output_dir, where=layout.config)
    users = cameras.http_users(cameras.http_port(http), others)
    if users:
        plan.notes.append(f"warning: {layout.config}: outputs.http {http} is also served by "
                          f"{_configs(users)}: only one of them can start (--set outputs.http=)")
    return text, opts


def _configs(names: Sequence[str]) -> str:
    return ", ".join(f"{n}.yaml" for n in names)


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
    envs = [(layout.env, template_text(ENV_TEMPLATE))]
    if layout.camera_env is not None and layout.name is not None:
        envs.append((layout.camera_env, render_camera_env(layout.name, layout.env,
                                                       user_mode=req.user_mode)))
    for env, env_text in envs:
        env_here = reroot(root, env)
        if env_here.exists() and not req.force:
            plan.add("keep", str(env_here), note="exists; --force replaces it")
        else:
            plan.add("write", str(env_here), write(env, env_text, secret))

    unit_here = reroot(root, layout.unit)
    old_unit = unit_here.read_text(encoding="utf-8") if unit_here.is_file() else None
    if old_unit == unit_text:
        plan.add("keep", str(unit_here), note="unchanged")
    else:
        plan.add("write", str(unit_here), write(layout.unit, unit_text),
                 note="updated" if old_unit is not None else "")
    plan.show = [(layout.unit, unit_text), (layout.config, config_text)]
    if old_unit is not None and old_unit != unit_text:
        plan.show.append((f"{layout.unit} changes",
                          _diff(old_unit, unit_text, Path(layout.unit).name)))
        others = [n for n in enabled_cameras(layout, root) if n != layout.name]
        if layout.name is not None and others and root is None:
            user = "--user " if req.user_mode else ""
            plan.notes.append(f"the unit changed: the other cameras apply it when restarted: "
                              f"systemctl {user}restart "
                              + " ".join(f"edgeface@{n}" for n in others))


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
            plan.add("run", "", argv=["systemctl", "--user", "enable", *now, layout.service],
                     note=wait)
        else:
            plan.notes.append("on the device, as that user: systemctl --user daemon-reload && "
                              f"systemctl --user enable --now {layout.service}")
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
        plan.add("run", "", argv=["systemctl", "enable", *now, layout.service], note=wait)
    else:
        # Offline, on the image: the tools read these files from the host path given.
        r = f"--root={root}"
        plan.add("run", "", argv=["systemd-sysusers", r, str(reroot(root, layout.sysusers))])
        plan.add("run", "", argv=["systemd-tmpfiles", r, "--create",
                                  str(reroot(root, layout.tmpfiles))])
        plan.add("run", "", argv=["systemctl", r, "enable", layout.service])
        if not req.dry_run:
            plan.notes.append(f"{layout.service} is enabled in {root}: it starts when that "
                              "system boots")
    if live:
        problem = memory_cgroup_problem()
        if problem:
            plan.notes.append(problem)
        if req.start:
            user = " --user" if req.user_mode else ""
            name = f" --name {layout.name}" if layout.name else ""
            plan.notes.append(f"logs: journalctl{user} -u {layout.service[:-len('.service')]} "
                              f"-f   status: edgeface service status{user}{name}")
