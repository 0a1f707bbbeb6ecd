"""The command line's one settings vocabulary: the click adapter that turns an
:class:`~edgeface.runtime.options.Option` declaration into a flag, the dataset and output
groups (detection and limits: :mod:`edgeface.runtime.settings`), and the renames: old
spellings keep working for one release, with a line on stderr naming the new one."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping

import click

from edgeface.runtime.options import Check, Option, boolean, string

REMOVED_IN = "0.4"


class FiniteRange(click.FloatRange):
    """A float range that also refuses NaN and infinity (NaN passes every comparison, so a
    plain FloatRange lets ``--duration nan`` through)."""

    name = "float"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        v = super().convert(value, param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return v


class DeclaredOption(click.Option):
    """A click option made from an :class:`Option` declaration (kept as ``declaration``, so
    that the vocabulary test can tell every flag's declaration)."""

    def __init__(self, *args: Any, declaration: Option, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.declaration = declaration


def option(opt: Option, *, raw: bool = False, required: bool = False,
           help: str | None = None, check: Check | None = None, multiple: bool = False,
           metavar: str | None = None, as_path: bool = True) -> Callable:
    """The one click adapter: the option for ``opt`` with its flag, default and check.

    The check runs once, at parsing, and its value (an int for a size, a tuple for WxH, a
    :class:`~pathlib.Path` for a path) is what the command receives; a bad value is one
    error line naming the flag. ``raw``: `run` keeps values unparsed and unset-by-default
    (None), to merge them with its config file and check them all together there.
    ``help``/``check``/``metavar``/``multiple`` adapt a declaration to one command without
    changing its meaning or its default.
    """
    text = opt.help if help is None else help
    shown = "" if opt.default in (None, False) or required else f" [default: {opt.default}]"
    kwargs: dict[str, Any] = {"cls": DeclaredOption, "declaration": opt, "help": text + shown}
    decls = [opt.flag]
    if opt.cli == "switch":
        kwargs.update(is_flag=True, default=False, help=text)
    elif opt.cli in ("bool", "tristate"):
        name = opt.flag[2:]
        decls = [f"--{name}/--no-{name}"]
        kwargs.update(default=None if raw or opt.cli == "tristate" else opt.default)
    else:
        if opt.cli == "optional":
            kwargs.update(is_flag=False, flag_value=str(opt.flag_value))
        kwargs.update(default=None if raw else opt.default, metavar=metavar or opt.metavar,
                      required=required, multiple=multiple)
        if not raw:
            kwargs["callback"] = _checker(opt, check or opt.check, as_path and opt.path)
    if opt.short:
        decls.insert(0, opt.short)
    return click.option(*decls, opt.key, **kwargs)


def _checker(opt: Option, check: Check, path: bool) -> Callable:
    def one(value: Any) -> Any:
        if value is None:
            return None
        value = check(opt.flag, value)
        return Path(value).expanduser() if path and isinstance(value, str) else value

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if isinstance(value, tuple):  # multiple=True
            return tuple(one(v) for v in value)
        return one(value)

    return callback


# ------------------------------------------------------------------ the shared vocabulary
# Detection and limits: edgeface.runtime.settings (run's config file takes them too).

DATASET = Option(
    "dataset", "--dataset", string, metavar="DIR", path=True,
    help="Images to read: a WIDER FACE directory (images/, ground truth, optional splits/ and "
         "image_sizes.txt) or any folder of images.")
SPLIT = Option(
    "split", "--split", string, metavar="NAME|FILE",
    help="Which images of --dataset: a split under DIR/splits/, a list file, or 'all' "
         "[default: the command's: eval for `eval`; for `quantize` calib when DIR has "
         "splits/calib.txt, else every image].")
EVAL_DATASET = Option(
    "eval_dataset", "--eval-dataset", string, metavar="DIR", path=True,
    help="WIDER FACE directory for the accuracy guard [default: --dataset when it is one].")
EVAL_SPLIT = Option(
    "eval_split", "--eval-split", string, "eval",
    help="Split of --eval-dataset (must not share images with the calibration split).")
#: The dataset a command reads.
DATASET_GROUP = (DATASET, SPLIT, EVAL_DATASET, EVAL_SPLIT)

OUTPUT = Option("output", "--output", string, metavar="PATH", path=True, short="-o",
                help="File to write.")
OUTPUT_DIR = Option("output_dir", "--output-dir", string, metavar="DIR", path=True,
                    help="Directory to write into [default: the command's].")
FORCE = Option("force", "--force", boolean, False, cli="switch",
               help="Overwrite an existing output file.")
DRY_RUN = Option("dry_run", "--dry-run", boolean, False, cli="switch", short="-n",
                 help="Print what would be done; change nothing.")
WEIGHTS = Option("weights", "--weights", string, metavar="FILE", path=True,
                 help="PyTorch checkpoint (.pth / .tar); needs edgeface[export].")
ARCH = Option("arch", "--arch", string, metavar="NAME",
              help="Architecture of --weights (v1, eca_cbam, cbam, eca_cbam_parallel) "
                   "[default: recognised from the checkpoint].")
#: A PyTorch checkpoint, for the commands that read one.
CHECKPOINT_GROUP = (WEIGHTS, ARCH)

CONFIG = Option("config", "--config", string, metavar="FILE", path=True, short="-c",
                help="YAML config file with the same keys as `edgeface run`'s flags.")

#: Where a command writes, and whether it may.
OUTPUT_GROUP = (OUTPUT, OUTPUT_DIR, FORCE, DRY_RUN)


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
