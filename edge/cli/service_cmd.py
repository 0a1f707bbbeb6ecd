"""`edgeface service`: install, remove and inspect the systemd service (edgeface.service, or
one instance edgeface@NAME.service per camera with --name)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from edgeface.cli.options import DRY_RUN, FORCE, OUTPUT_DIR, option, renamed
from edgeface.errors import EdgefaceError
from edgeface.runtime.settings import MODEL
from edgeface.service import plan as service_plan
from edgeface.service.checks import require_live_system
from edgeface.service.config_edit import parse_settings
from edgeface.service.install import InstallRequest, plan_install
from edgeface.service.layout import Layout, check_name
from edgeface.service.uninstall import plan_uninstall

_ROOT_HELP = ("Write every file below DIR instead of / (an OS image, a test); systemd is then "
              "only driven offline (systemctl --root=DIR enable). Paths inside the files stay "
              "the on-device ones.")
_DRY_HELP = ("Change nothing on this system: print every step and the rendered unit. Files "
             "are still written when --root points elsewhere; no command is run.")


_NAME_HELP = ("A camera: its own instance edgeface@NAME.service of the template unit "
              "edgeface@.service, with /etc/edgeface/NAME.yaml, NAME.env and the output "
              "directory /var/lib/edgeface/detections/NAME. NAME: 1-32 of a-z, 0-9, _ and -.")


def _name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return None if value is None else check_name(value)


def _name_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--name", default=None, metavar="NAME", callback=_name, help=help)


def _echo(line: str) -> None:
    click.echo(line)


def _flags(user_mode: bool, name: str | None) -> str:
    return (" --user" if user_mode else "") + (f" --name {name}" if name else "")


def _finish(plan: service_plan.Plan, *, dry_run: bool, root: Path | None) -> None:
    plan.execute(dry_run=dry_run, write_files=not dry_run or root is not None, echo=_echo)
    if dry_run and root is None:
        for title, text in plan.show:
            click.echo(f"\n--- {title}\n{text.rstrip()}")
    for note in plan.notes:
        click.echo(note, err=note.startswith("warning"))


@click.group("service")
def service() -> None:
    """Run edgeface as a systemd service: starts at boot, restarts after a crash or a hang
    (watchdog), capped at 512 MB, sandboxed to the camera and its output directory."""


@service.command("install", **renamed({"--prefix": "--root"}))
@option(MODEL, help="ONNX model to run. It is checked, copied to /var/lib/edgeface/models "
                    "(--user: ~/.local/share/edgeface/models) and written into the config.")
@click.option("--user", "user_mode", is_flag=True,
              help="A user service (~/.config/systemd/user) for desktop-session setups, e.g. "
                   "picamera2; run without sudo.")
@click.option("--root", "root", type=click.Path(path_type=Path, file_okay=False),
              default=None, metavar="DIR", help=_ROOT_HELP)
@option(DRY_RUN, help=_DRY_HELP)
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Set a config key (YAML value), e.g. --set picamera=true, --set "
                   "provider=tensorrt, --set outputs.http=0.0.0.0:8080. Repeatable.")
@option(OUTPUT_DIR, as_path=False,
        help="The service's only writable directory; file outputs must be inside it and "
             "relative ones in the config are placed in it [default: "
             "/var/lib/edgeface/detections].")
@click.option("--gpu/--no-gpu", default=None,
              help="Allow the Jetson GPU device nodes [default: when the config uses the "
                   "cuda or tensorrt provider, or a csi camera].")
@click.option("--python", default=None, metavar="PATH",
              help="Interpreter for ExecStart= [default: the one running this command].")
@option(FORCE, help="Replace an existing config and env file with the templates, keeping "
                    "the installed model (the old config is saved as config.yaml.bak).")
@click.option("--no-start", is_flag=True, help="Enable at boot, but do not start now.")
@_name_option(_NAME_HELP)
def install(model: Path | None, user_mode: bool, root: Path | None, dry_run: bool,
            settings: tuple[str, ...], output_dir: str | None, gpu: bool | None,
            python: str | None, force: bool, no_start: bool, name: str | None) -> None:
    """Install, enable and start the service.

    Writes the unit (with this interpreter's path), /etc/edgeface/config.yaml and
    /etc/edgeface/edgeface.env (an existing config or env file is kept: --model and --set
    are applied to it), the edgeface system user (sysusers.d) and its directories
    (tmpfiles.d); then runs daemon-reload and enable --now, which waits for the first frame.

    With --name NAME, one camera of several: the shared template unit edgeface@.service,
    /etc/edgeface/NAME.yaml (and NAME.env, read after edgeface.env), then enable --now
    edgeface@NAME.service. Each camera has its own memory cap and HTTP port.
    """
    if root is None and not dry_run:
        require_live_system(user_mode)
    req = InstallRequest(
        user_mode=user_mode, root=root.resolve() if root else None, dry_run=dry_run,
        model=model, output_dir=output_dir, settings=parse_settings(settings), gpu=gpu,
        python=python, force=force, start=not no_start, name=name)
    plan = plan_install(req)
    where = f" into {req.root}" if req.root else ""
    mode = " (dry run: nothing is changed on this system)" if dry_run else ""
    click.echo(f"edgeface service install{_flags(user_mode, name)}{where}{mode}")
    _finish(plan, dry_run=dry_run, root=req.root)


@service.command("uninstall", **renamed({"--prefix": "--root"}))
@click.option("--user", "user_mode", is_flag=True, help="The user service.")
@click.option("--root", "root", type=click.Path(path_type=Path, file_okay=False),
              default=None, metavar="DIR", help="Remove from below DIR instead of /.")
@option(DRY_RUN, help="Print the steps; change nothing.")
@click.option("--purge", is_flag=True,
              help="Also remove the config, env file, installed models and the sysusers.d / "
                   "tmpfiles.d entries. Detections and the system user are always kept.")
@_name_option("One camera's instance edgeface@NAME.service; the template unit stays while "
              "another camera is enabled. --purge removes only that camera's files.")
def uninstall(user_mode: bool, root: Path | None, dry_run: bool, purge: bool,
              name: str | None) -> None:
    """Stop, disable and remove the service."""
    if root is None and not dry_run:
        require_live_system(user_mode)
    root = root.resolve() if root else None
    plan = plan_uninstall(user_mode=user_mode, root=root, purge=purge, name=name)
    click.echo(f"edgeface service uninstall{_flags(user_mode, name)}"
               + (" (dry run)" if dry_run else ""))
    _finish(plan, dry_run=dry_run, root=None if dry_run else root)


@service.command("status", **renamed({"-n": "--lines"}))
@click.option("--user", "user_mode", is_flag=True, help="The user service.")
@click.option("--lines", default=20, show_default=True, type=click.IntRange(0, 100000),
              help="Journal lines to show.")
@_name_option("One camera's instance edgeface@NAME.service.")
def status(user_mode: bool, lines: int, name: str | None) -> None:
    """Show the service's state and last log lines.

    This is `systemctl status`; its exit status is passed on (0 running, 3 stopped or
    failed, 4 not installed)."""
    layout = (Layout.camera(name, user_mode=user_mode) if name is not None
              else Layout.user() if user_mode else Layout.system())
    unit = Path(layout.unit)
    click.echo(f"unit:   {unit}{'' if unit.exists() else ' (not installed)'}")
    click.echo(f"config: {layout.config}{'' if Path(layout.config).exists() else ' (missing)'}")
    argv = ["systemctl", *(["--user"] if user_mode else []), "status", "--no-pager",
            f"--lines={lines}", layout.service]
    # Through its module, looked up when called: the tests record the commands.
    rc = service_plan.run_command(argv, to_stderr=False)
    if rc != 0:  # systemctl's own codes: 3 inactive/failed, 4 no such unit
        raise EdgefaceError(f"{layout.service} is not running (systemctl status exited {rc})",
                            rc)
