"""`edgeface doctor`: check this machine and the configured service, each problem with its fix."""

from __future__ import annotations

import json as json_module
from pathlib import Path
from typing import Any, Optional

import click

from edgeface.cli.options import CONFIG, option
from edgeface.errors import EdgefaceError
from edgeface.runtime.settings import JSON
from edgeface.system import doctor_host, doctor_stack
from edgeface.system.doctor import (
    Check,
    Probe,
    exit_code,
    header_line,
    one_line,
    render_text,
    run_checks,
    to_json,
)
from edgeface.system.doctor_service import ModelLoader, ServiceSpec
from edgeface.system.doctor_service import service_checks as _service_checks


def default_checks() -> list[tuple[str, Check]]:
    """Every machine check, in report order: the Python stack's, each backend's (from its
    spec), the host's. The service checks come after them (:func:`service_checks`)."""
    from edgeface.inference.backends.registry import doctor_checks

    return [*doctor_stack.CHECKS.items(), *doctor_checks(), *doctor_host.CHECKS.items()]


def service_checks(spec: ServiceSpec, load_model: ModelLoader) -> list[tuple[str, Check]]:
    """The configured service's checks, with those its model's backend asks for."""
    from edgeface.inference.backends.registry import model_checks

    try:
        extra = model_checks(spec.model)
    except Exception:  # an unknown suffix or provider: the model check reports it
        extra = []
    return _service_checks(spec, load_model, extra)


def default_config() -> Optional[Path]:
    """The installed service's config: the system one, else the user service's."""
    from edgeface.service.layout import Layout

    for layout in (Layout.system(), Layout.user()):
        if Path(layout.config).is_file():
            return Path(layout.config)
    return None


def service_spec(config: Optional[Path]) -> ServiceSpec:
    """What the service configured in ``config`` would run; problems become one line each.

    Imports the runtime here, after the machine checks: a broken numpy or OpenCV is then
    already reported by its own check instead of stopping the doctor.
    """
    if config is None:
        return ServiceSpec()
    try:
        import edgeface.http.sink  # noqa: F401  the config's outputs.http
        from edgeface.runtime.config import load_config, merge
        from edgeface.runtime.sources import classify, selected

        values = merge(load_config(config), {}, set())
    except Exception as exc:
        return ServiceSpec(config=str(config), error=one_line(exc).partition(": ")[2])
    spec = ServiceSpec(config=str(config), model=values.get("model"),
                       provider=values.get("provider") or "auto")
    try:
        kind, target = selected(values)
        if kind == "auto":
            kind, target = classify(target)
        spec.kind, spec.target = kind, target
    except Exception as exc:
        spec.source_error = one_line(exc).partition(": ")[2]
    return spec


def load_model(model: str, provider: str) -> str:
    """Open the model as the service would (one thread); a one-line description."""
    from edgeface.inference.backends import open_backend

    backend = open_backend(model, provider=provider, threads=1)
    providers = [p.replace("ExecutionProvider", "") for p in getattr(backend, "providers", [])]
    dcn = getattr(backend, "dcn_path", None)
    if dcn:  # which kernel runs its DeformConv (issue 21)
        providers.append("dcn: fast sampler" if dcn == "sampler" else
                         f"dcn: ONNX Runtime's DeformConv ({backend.dcn_reason})")
    return f"loads ({backend.name}" + (f", {', '.join(providers)}" if providers else "") + ")"




@click.command("doctor")
@option(CONFIG, help="The service config to check [default: /etc/edgeface/config.yaml, else "
                     "~/.config/edgeface/config.yaml, when present].")
@option(JSON, help="One JSON document instead of text, to this file or '-' (or a bare "
                    "--json) for stdout.")
@click.pass_context
def doctor(ctx: click.Context, config: Optional[Path], json: Optional[Path]) -> None:
    """Check this machine and the configured service: Python, numpy, OpenCV, ONNX Runtime,
    picamera2, TensorRT, cameras, the memory cgroup, clocks, temperature and throttling,
    memory and disk; then whether the config's model loads on its provider and its source
    has what it needs. Every problem comes with a one-line fix.

    Exits 1 when the configured service could not run (a check failed), else 0; warnings
    (slower, or at risk) do not change the exit status.
    """
    probe = Probe()
    config = config if config is not None else default_config()
    findings = run_checks(probe, default_checks())
    spec = service_spec(config)
    findings += run_checks(probe, service_checks(spec, load_model))
    if json is not None:
        extra: dict[str, Any] = {"config": spec.config, "host": header_line(probe)}
        text = json_module.dumps(to_json(findings, **extra), indent=1, default=str)
        if str(json) == "-":
            click.echo(text)
        else:
            try:
                json.write_text(text + "\n", encoding="utf-8")
            except OSError as exc:
                raise EdgefaceError(f"cannot write {json}: {exc.strerror or exc}") from None
    else:
        click.echo(render_text(findings, header_line(probe)))
    ctx.exit(exit_code(findings))
