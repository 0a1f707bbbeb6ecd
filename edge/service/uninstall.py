"""Plan an uninstall: stop and disable the unit, remove it and, with ``purge``, its files.

A camera (``edgeface@NAME.service``) leaves the template unit, and the files every camera
shares, to the cameras still enabled.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Mapping

from edgeface.service.layout import Layout, enabled_cameras, reroot
from edgeface.service.plan import Plan
from edgeface.service.units import INSTANCE, SERVICE_USER


def _rmdir_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass  # holds files edgeface did not write: leave them


def plan_uninstall(*, user_mode: bool = False, root: Path | None = None, purge: bool = False,
                   environ: Mapping[str, str] | None = None, name: str | None = None) -> Plan:
    """Stop, disable and remove the unit; with ``purge`` also config, env file and models.

    With a camera ``name``: stop and disable its instance; the template unit goes with the
    last enabled camera, and ``purge`` removes only that camera's config, env file and
    tmpfiles.d entry. Files every camera shares (env file, models, the user's sysusers.d
    entry) are kept while a camera is enabled. Output files (detections) and the service
    user are never removed.
    """
    layout = (Layout.camera(name, user_mode=user_mode, environ=environ) if name is not None
              else Layout.user(environ=environ) if user_mode else Layout.system())
    live = root is None
    plan = Plan()
    unit_here = reroot(root, layout.unit)
    user = ["--user"] if user_mode else []
    service = layout.service
    # Cameras that still use the template unit and the shared files.
    others = [n for n in enabled_cameras(Layout.camera(INSTANCE, user_mode=user_mode,
                                                       environ=environ), root) if n != name]
    if unit_here.exists():
        if live:
            plan.add("run", "", argv=["systemctl", *user, "disable", "--now", service])
        elif not user_mode:
            plan.add("run", "", argv=["systemctl", f"--root={root}", "disable", service])
        if name is not None and others:
            plan.add("keep", str(unit_here), note="used by " + ", ".join(
                f"edgeface@{n}" for n in others))
        else:
            plan.add("remove", str(unit_here), unit_here.unlink)
        if live:
            plan.add("run", "", argv=["systemctl", *user, "daemon-reload"])
            plan.add("run", "", argv=["systemctl", *user, "reset-failed", service], check=False)
    else:
        plan.notes.append(f"{service} is not installed ({unit_here} does not exist)")
    if name is not None and unit_here.exists() and not reroot(root, layout.config).exists():
        plan.notes.append(f"camera {name!r} has no config ({layout.config}): was it "
                          "installed? `systemctl list-units 'edgeface@*'` lists the cameras")
    if purge:
        _plan_purge(layout, root, plan, shared=not others)
    own = (f"{layout.config} and {layout.camera_env}" if name is not None
           else f"{Path(layout.config).parent}/ and {layout.models_dir}/")
    plan.notes.append(f"kept: {layout.output_dir} (detections)"
                      + ("" if user_mode else f" and the system user {SERVICE_USER!r}")
                      + ("" if purge else f", {own} (--purge removes those)"))
    if purge and others and name is None:
        plan.notes.append(f"kept: {layout.env} and {layout.models_dir}/, used by the cameras "
                          + ", ".join(others))
    return plan


def _plan_purge(layout: Layout, root: Path | None, plan: Plan, *, shared: bool) -> None:
    """Remove the config and env file, and with ``shared`` what every unit uses (models...)."""
    own = [layout.config, layout.config + ".bak"]
    own += [layout.env, layout.sysusers] if layout.name is None and shared else []
    for p in [*own, layout.camera_env, layout.tmpfiles]:
        here = reroot(root, p) if p else None
        if here is not None and here.exists():
            plan.add("remove", str(here), here.unlink)
    models = reroot(root, layout.models_dir)
    if layout.name is None and shared and models.is_dir():
        plan.add("remove", f"{models}/", lambda: shutil.rmtree(models))
    config_dir = reroot(root, str(Path(layout.config).parent))
    if config_dir.is_dir():
        plan.add("rmdir", f"{config_dir}/", lambda: _rmdir_if_empty(config_dir),
                 note="if empty")
