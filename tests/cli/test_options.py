"""One spelling per flag across commands; the old spellings work for one release, with a
deprecation line on stderr."""

from __future__ import annotations

import click
import pytest
from requires import needs_runtime

from edgeface.cli import COMMANDS, cli, main
from edgeface.cli.options import rewrite_renamed


def test_rewrite_keeps_values_and_warns_once(capsys):
    args = rewrite_renamed(["--conf", "0.3", "--input-size=320x240", "--conf", "0.4", "--",
                            "--conf"], {"--conf": "--confidence-threshold",
                                        "--input-size": "--size"})
    assert args == ["--confidence-threshold", "0.3", "--size=320x240",
                    "--confidence-threshold", "0.4", "--", "--conf"]
    err = capsys.readouterr().err.splitlines()
    assert err == ["edgeface: warning: --conf is deprecated, use --confidence-threshold (the "
                   "old spelling goes in 0.4)",
                   "edgeface: warning: --input-size is deprecated, use --size (the old "
                   "spelling goes in 0.4)"]


@needs_runtime
@pytest.mark.parametrize("argv, old, new", [
    (["run", "--conf", "0.3", "--help"], "--conf", "--confidence-threshold"),
    (["run", "--input-size", "320", "--help"], "--input-size", "--size"),
    (["detect", "--nms", "0.3", "--help"], "--nms", "--nms-threshold"),
    (["eval", "-o", "x", "--help"], "-o", "--output-dir"),
    (["eval", "--providers", "cpu", "--help"], "--providers", "--provider"),
    (["bench", "--out", "x", "--help"], "--out", "--output-dir"),
    (["service", "status", "-n", "5", "--help"], "-n", "--lines"),
    (["service", "install", "--prefix", "/x", "--help"], "--prefix", "--root"),
])
def test_old_spellings_still_parse(argv, old, new, capsys):
    assert main(argv) == 0
    assert f"{old} is deprecated, use {new}" in capsys.readouterr().err


def _options(command: click.Command) -> dict[str, click.Option]:
    out = {}
    for p in command.params:
        if isinstance(p, click.Option):
            for o in [*p.opts, *p.secondary_opts]:
                out[o] = p
    return out


def _all_commands() -> dict[str, click.Command]:
    ctx = click.Context(cli)
    found = {}
    for name in COMMANDS:
        cmd = cli.get_command(ctx, name)
        found[name] = cmd
        if isinstance(cmd, click.Group):
            for sub, subcmd in cmd.commands.items():
                found[f"{name} {sub}"] = subcmd
    return found


def test_shared_flags_mean_one_thing_everywhere():
    """-v is verbosity, -n is dry-run, -o is an output file, -m is the model, and the
    retired spellings are not declared anywhere."""
    meaning = {"-n": {"dry_run"}, "-m": {"model", "models"}, "-o": {"output"},
               "-c": {"config"}}
    retired = {"--conf", "--nms", "--input-size", "--providers", "--out", "--prefix"}
    for name, cmd in _all_commands().items():
        opts = _options(cmd)
        for flag, dest in meaning.items():
            if flag in opts:
                assert opts[flag].name in dest, f"{name}: {flag} is {opts[flag].name}"
        for flag in ("-v",):
            if flag in opts:
                assert opts[flag].name == "verbose", f"{name}: -v is {opts[flag].name}"
        assert not retired & set(opts), f"{name} declares {retired & set(opts)}"
        if "--provider" in opts:
            choices = getattr(opts["--provider"].type, "choices", None)
            assert list(choices or opts["--provider"].metavar.split("|")) == \
                ["auto", "cpu", "cuda", "tensorrt"], name


def test_every_command_has_help():
    for name, cmd in _all_commands().items():
        assert (cmd.help or "").strip(), f"{name} has no help"
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden:
                assert (p.help or "").strip(), f"{name} {p.opts[0]} has no help"
