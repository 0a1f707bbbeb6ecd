"""Options shared by several commands, so each is spelled (and checked) the same everywhere,
and the renames of the 0.2 release: old spellings keep working, with a line on stderr."""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import click

from edgeface.inference.backends.registry import PROVIDERS

REMOVED_IN = "0.3"


class FiniteRange(click.FloatRange):
    """A float range that also refuses NaN and infinity (NaN passes every comparison, so a
    plain FloatRange lets ``--duration nan`` through)."""

    name = "float"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        v = super().convert(value, param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return v


def provider_option(help_extra: str = "") -> Callable:
    """``--provider auto|cpu|cuda|tensorrt``: where the model runs."""
    return click.option(
        "--provider", type=click.Choice(PROVIDERS, case_sensitive=False), default="auto",
        show_default=True,
        help="Where the model runs: auto (CPU for .onnx, the GPU for a TensorRT .engine), "
             "cpu, cuda or tensorrt (ONNX Runtime's providers for .onnx)." + help_extra)


def family_option() -> Callable:
    """``--family NAME``: the model family of a foreign ONNX file (one without edgeface
    metadata); an edgeface export names its own."""
    from edgeface.inference.families import family_names

    return click.option("--family", type=click.Choice(family_names()), default=None,
                        help=FAMILY_HELP)


FAMILY_HELP = ("Model family of an ONNX file made elsewhere, without edgeface metadata "
               "[default: the one the model names].")


def threads_option(help_text: str = "Inference threads [default: the cores available].",
                   **kwargs: Any) -> Callable:
    return click.option("--threads", type=click.IntRange(1, 1024), default=None,
                        help=help_text, **kwargs)


def size_option(help_text: str, default: str | None = None) -> Callable:
    """``--size WxH`` (or N for a square): the network input size."""
    return click.option("--size", default=default, metavar="WxH", help=help_text,
                        show_default=default is not None)


def confidence_option(default: float, help_text: str = "Minimum face probability.") -> Callable:
    return click.option("--confidence-threshold", "confidence_threshold",
                        type=FiniteRange(0, 1), default=default, show_default=True,
                        help=help_text)


def nms_option(default: float) -> Callable:
    return click.option("--nms-threshold", "nms_threshold",
                        type=FiniteRange(0, 1, min_open=True), default=default,
                        show_default=True, help="NMS IoU threshold.")


def dry_run_option(help_text: str = "Print what would be done; change nothing.") -> Callable:
    return click.option("-n", "--dry-run", is_flag=True, help=help_text)


class RenamedOptions(click.Command):
    """A command whose old option spellings are rewritten to the new ones before parsing,
    with one deprecation line on stderr each. ``renamed`` maps old -> new spelling."""

    renamed: Mapping[str, str] = {}

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, rewrite_renamed(args, self.renamed))


class RenamedOptionsGroup(click.Group):
    renamed: Mapping[str, str] = {}

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Only the group's own options, before the sub-command name.
        return super().parse_args(ctx, rewrite_renamed(args, self.renamed,
                                                       stop_at=set(self.commands)))


def rewrite_renamed(args: list[str], renamed: Mapping[str, str],
                    stop_at: set[str] | None = None) -> list[str]:
    out: list[str] = []
    warned: set[str] = set()
    for i, arg in enumerate(args):
        if arg == "--" or (stop_at and arg in stop_at):
            return out + args[i:]
        name, eq, value = arg.partition("=")
        if name in renamed and (eq == "" or name.startswith("--")):
            new = renamed[name]
            if name not in warned:
                warned.add(name)
                click.echo(f"edgeface: warning: {name} is deprecated, use {new} "
                           f"(the old spelling goes in {REMOVED_IN})", err=True)
            arg = new + (eq + value if eq else "")
        out.append(arg)
    return out


def renamed(mapping: Mapping[str, str], group: bool = False) -> dict[str, Any]:
    """``@click.command(**renamed({"--old": "--new"}))``."""
    base = RenamedOptionsGroup if group else RenamedOptions
    return {"cls": type(base.__name__, (base,), {"renamed": dict(mapping)})}
