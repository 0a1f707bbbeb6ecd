"""The `edgeface` command line. Sub-commands are imported only when invoked, so that
`edgeface --help` and the device runtime never pay for (or need) torch."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

import click

from edgeface import __version__
from edgeface.cli.logs import error_line, setup_logging
from edgeface.common.registry import Registry
from edgeface.errors import EXIT_USAGE, EdgefaceError


@dataclass(frozen=True)
class CommandEntry:
    """A sub-command: where its click command is (imported when invoked) and its one-line
    help, kept here so that `--help` imports nothing."""

    name: str
    module: str
    attr: str
    help: str

    def load(self) -> click.Command:
        return getattr(importlib.import_module(self.module), self.attr)


COMMANDS: Registry[CommandEntry] = Registry("command")
for _entry in (
    CommandEntry("detect", "edgeface.cli.detect_cmd", "detect",
                 "Detect faces in images with an ONNX model."),
    CommandEntry("run", "edgeface.cli.run_cmd", "run",
                 "Run the detector on a camera, video or stream."),
    CommandEntry("serve", "edgeface.cli.serve_cmd", "serve",
                 "Serve POST /detect for images (no camera)."),
    CommandEntry("export", "edgeface.cli.export_cmd", "export",
                 "Export a PyTorch checkpoint to ONNX."),
    CommandEntry("quantize", "edgeface.cli.quantize_cmd", "quantize",
                 "Quantize an ONNX model to INT8, or build a TensorRT engine."),
    CommandEntry("eval", "edgeface.cli.eval_cmd", "eval_cmd", "Evaluate AP on WIDERFace."),
    CommandEntry("bench", "edgeface.cli.bench_cmd", "bench",
                 "Benchmark latency and memory on this platform."),
    CommandEntry("models", "edgeface.cli.models_cmd", "models",
                 "List and download known checkpoints."),
    CommandEntry("service", "edgeface.cli.service_cmd", "service",
                 "Install and manage the systemd service."),
    CommandEntry("doctor", "edgeface.cli.doctor_cmd", "doctor",
                 "Check this machine and the service config."),
):
    COMMANDS.register(_entry)


# The device runtime's libraries are extras (so that a reinstall never replaces the ones a
# Jetson or Raspberry Pi OS image provides): say which to install where.
_RUNTIME_HINT = ("install the runtime for this device: pip install 'edgeface[cpu]' (laptops, "
                 "generic boards, Raspberry Pi OS Trixie), 'edgeface[pi]' (Raspberry Pi OS "
                 "Bookworm), or on a Jetson JetPack's packages (docs/install.md#on-a-jetson)")
_MISSING = {"cv2": _RUNTIME_HINT, "onnxruntime": _RUNTIME_HINT,
            "torch": "pip install 'edgeface[export]'", "onnx": "pip install 'edgeface[export]'",
            "scipy": "pip install 'edgeface[eval]'", "matplotlib": "pip install 'edgeface[eval]'"}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return COMMANDS.names()

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return COMMANDS.get(name).load() if name in COMMANDS else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # From the table, so that listing commands imports none of them.
        with formatter.section("Commands"):
            formatter.write_dl([(name, entry.help) for name, entry in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeface")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
def cli(verbose: int) -> None:
    """edgeface: FeatherFace face detection on Jetson, Raspberry Pi and laptops."""
    setup_logging(verbose)


def main(argv: list[str] | None = None) -> int:
    """Entry point: one clear line and a defined exit code for every EdgefaceError."""
    try:
        rv = cli.main(args=argv, prog_name="edgeface", standalone_mode=False)
    except EdgefaceError as exc:
        click.echo(error_line(str(exc)), err=True)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        hint = _MISSING.get((exc.name or "").split(".")[0])
        if hint is None:
            raise
        click.echo(error_line(f"{exc.name} is not installed: {hint}"), err=True)
        return EXIT_USAGE
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    # standalone_mode=False hands back ctx.exit(n) codes as the return value.
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
