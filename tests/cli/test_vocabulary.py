"""One settings vocabulary: every command's flags, enumerated against the declarations.

A flag that two commands share comes from one :class:`Option` declaration through the one
click adapter, so it has one spelling, one meaning (config key), one default and one check
everywhere; a retired spelling still works, with one deprecation line naming the new one.
"""

from __future__ import annotations

import json
from collections import defaultdict

import click
import pytest
from requires import needs_runtime

from edgeface.cli import COMMANDS as REGISTERED
from edgeface.cli import cli, main
from edgeface.cli.options import (
    CHECKPOINT_GROUP,
    CONFIG,
    DATASET_GROUP,
    OUTPUT_GROUP,
    DeclaredOption,
)
from edgeface.inference.postprocess import PostprocessConfig
from edgeface.runtime.config import check_values, output_options, top_options
from edgeface.runtime.settings import (
    DETECTION,
    LIMITS,
    MAX_DETECTIONS,
    SHARED_OUTPUTS,
    DetectionSettings,
)

GROUPS = {"detection": DETECTION, "limits": LIMITS, "dataset": DATASET_GROUP,
          "checkpoint": CHECKPOINT_GROUP, "output": OUTPUT_GROUP, "config": (CONFIG,),
          "shared outputs": SHARED_OUTPUTS}
#: `run` keeps values unchecked and unset (None) until merged with its config file.
RAW = {"run"}


def _commands() -> dict[str, click.Command]:
    ctx = click.Context(cli)
    found = {}
    for name in REGISTERED.names():
        cmd = cli.get_command(ctx, name)
        found[name] = cmd
        for sub, subcmd in getattr(cmd, "commands", {}).items():
            found[f"{name} {sub}"] = subcmd
    return found


def _vocabulary() -> dict[str, object]:
    """flag -> declaration, for the shared groups and run's own (sources, sinks, ...)."""
    vocab: dict[str, object] = {}
    for opt in [*(o for g in GROUPS.values() for o in g), *top_options(),
                *output_options().values()]:
        assert vocab.get(opt.flag, opt) is opt, f"{opt.flag} is declared twice"
        vocab[opt.flag] = opt
    return vocab


def _flags(p: click.Option) -> list[str]:
    return [o for o in [*p.opts, *p.secondary_opts] if o.startswith("--")
            and not o.startswith("--no-")]


COMMANDS = _commands()
VOCAB = _vocabulary()


def test_the_groups_declare_each_key_and_flag_once():
    keys = [o.key for g in GROUPS.values() for o in g]
    flags = [o.flag for g in GROUPS.values() for o in g]
    assert len(keys) == len(set(keys)) and len(flags) == len(set(flags))
    shorts = [o.short for o in VOCAB.values() if o.short]
    assert len(shorts) == len(set(shorts)) == 4  # -m model, -o output, -n dry-run, -c config


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_vocabulary_flag_is_made_from_its_declaration(name):
    """A command that spells a vocabulary flag declares it through the adapter: same
    declaration, same destination, same default (run: unset until merged)."""
    for p in COMMANDS[name].params:
        if not isinstance(p, click.Option):
            continue
        for flag in _flags(p):
            if flag not in VOCAB:
                continue
            decl = VOCAB[flag]
            assert isinstance(p, DeclaredOption), f"{name} {flag}: a hand-made click option"
            assert p.declaration is decl, f"{name} {flag}: another declaration"
            assert p.name == decl.key, f"{name} {flag}: passed as {p.name}"
            if decl.cli in ("switch", "tristate") or name in RAW:
                assert p.default in (None, False), f"{name} {flag}: default {p.default!r}"
            else:
                assert p.default == decl.default, \
                    f"{name} {flag}: default {p.default!r}, declared {decl.default!r}"
            if decl.short:
                assert decl.short in p.opts, f"{name} {flag}: {decl.short} missing"


def test_a_spelling_shared_by_commands_has_one_meaning_and_one_default():
    """Every flag that two commands spell comes from one declaration; no setting has two
    spellings (the dataset folder was --widerface, --calib and --images)."""
    by_flag: dict[str, set] = defaultdict(set)
    commands_of: dict[str, set] = defaultdict(set)
    defaults: dict[str, set] = defaultdict(set)
    spellings: dict[str, set] = defaultdict(set)
    for name, cmd in COMMANDS.items():
        top = name.split()[0]
        for p in cmd.params:
            if not isinstance(p, click.Option):
                continue
            decl = getattr(p, "declaration", None)
            for flag in _flags(p):
                commands_of[flag].add(top)
                by_flag[flag].add(decl.key if decl else f"{name}:{p.name}")
                if decl is not None:
                    spellings[decl.key].add(flag)
                    defaults[flag].add(repr(decl.default))
                elif top not in RAW:
                    defaults[flag].add(repr(p.default))
            for short in (o for o in p.opts if len(o) == 2):
                by_flag[short].add(decl.key if decl else f"{name}:{p.name}")
    shared = {f for f, cmds in commands_of.items() if len(cmds) > 1}
    assert {"--model", "--threads", "--provider", "--size", "--dataset", "--output-dir",
            "--max-detections", "--json", "--force", "--dry-run"} <= shared
    for flag in sorted(shared):
        assert len(by_flag[flag]) == 1, f"{flag} means {sorted(by_flag[flag])}"
        assert not any(":" in k for k in by_flag[flag]), f"{flag} is hand-made somewhere"
        assert len(defaults[flag]) == 1, f"{flag} defaults to {sorted(defaults[flag])}"
    for short in ("-m", "-o", "-n", "-c"):
        assert len(by_flag[short]) == 1, f"{short} means {sorted(by_flag[short])}"
    for key, flags in spellings.items():
        assert len(flags) == 1, f"{key} is spelled {sorted(flags)}"


def test_retired_spellings_are_not_declared_and_name_a_declared_flag():
    for name, cmd in COMMANDS.items():
        declared = {o for p in cmd.params if isinstance(p, click.Option)
                    for o in [*p.opts, *p.secondary_opts]}
        for old, new in getattr(cmd, "renamed", {}).items():
            assert old not in declared, f"{name} still declares {old}"
            assert new in declared, f"{name}: {old} -> {new}, which it does not declare"


def test_max_detections_has_one_default_everywhere():
    assert DetectionSettings().max_detections == MAX_DETECTIONS == 750
    assert PostprocessConfig().keep_top_k == MAX_DETECTIONS  # what eval keeps
    for name in ("run", "detect", "serve"):
        p = next(p for p in COMMANDS[name].params if "--max-detections" in p.opts)
        assert p.declaration.default == MAX_DETECTIONS
        assert f"[default: {MAX_DETECTIONS}]" in p.help


def test_checks_normalise_once_into_typed_values():
    opts = {o.key: o.default for o in top_options()}
    opts.update(memory_limit="64M", size="320x240", threads="2", outputs={})
    checked = check_values(opts)
    assert checked["memory_limit"] == 64 << 20 and checked["size"] == (320, 240)
    assert checked["threads"] == 2
    assert check_values({**opts, "memory_limit": "off"})["memory_limit"] is None
    settings = DetectionSettings.from_values(checked)
    with pytest.raises(AttributeError):
        settings.threads = 3  # frozen
    assert settings.postprocess().keep_top_k == MAX_DETECTIONS


@needs_runtime
@pytest.mark.parametrize("argv", [
    ["run", "--threads", "0", "-m", "x.onnx", "--camera", "0"],
    ["detect", "--threads", "0", "-m", "x.onnx", "a.jpg"],
    ["serve", "--threads", "0", "-m", "x.onnx"],
    ["eval", "--threads", "0", "-m", "x.onnx", "--dataset", "d"],
    ["bench", "--threads", "1,0", "-m", "x.onnx"],
    ["quantize", "--threads", "0", "--int8", "-m", "x.onnx", "-o", "y.onnx"],
])
def test_threads_is_checked_one_way_everywhere(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--threads: 0 is outside [1, " in err[0], err


@needs_runtime
@pytest.mark.parametrize("argv", [
    ["detect", "--size", "20x20", "-m", "x.onnx", "a.jpg"],
    ["serve", "--size", "20x20", "-m", "x.onnx"],
    ["eval", "--size", "20x20", "-m", "x.onnx", "--dataset", "d"],
    ["export", "--size", "20x20", "--weights", "w.pth", "-o", "y.onnx"],
])
def test_size_is_parsed_one_way_everywhere(argv, capsys):
    assert main(argv) == 2
    assert "--size: 20x20 is outside 32..4096 per side" in capsys.readouterr().err


@needs_runtime
@pytest.mark.parametrize("argv, old, new", [
    (["eval", "--widerface", "d", "--help"], "--widerface", "--dataset"),
    (["quantize", "--calib", "d", "--help"], "--calib", "--dataset"),
    (["quantize", "--eval", "d", "--help"], "--eval", "--eval-dataset"),
    (["quantize", "--target", "tensorrt", "--help"], "--target", "--provider"),
    (["bench", "--images", "d", "--help"], "--images", "--dataset"),
])
def test_old_dataset_and_target_spellings_warn_once(argv, old, new, capsys):
    assert main(argv) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "deprecated" in line]
    assert err == [f"edgeface: warning: {old} is deprecated, use {new} (the old spelling "
                   "goes in 0.4)"]


@needs_runtime
def test_target_is_now_the_provider_vocabulary(tmp_path, capsys):
    """`--target` is rewritten to `--provider`, whose values mean what they mean in run:
    cuda runs no INT8 model, and says so naming the new flag."""
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    rc = main(["quantize", "--int8", "--target", "cuda", "-m", str(model), "-o",
               str(tmp_path / "q.onnx"), "--dataset", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "--target is deprecated, use --provider" in err
    assert "--provider cuda: an INT8 model is made for cpu or tensorrt" in err


def test_doctor_json_is_runs_json_a_file_or_stdout(tmp_path, capsys, monkeypatch):
    """`--json` is a destination everywhere; doctor's bare `--json` still prints."""
    monkeypatch.setattr("edgeface.cli.doctor_cmd.default_config", lambda: None)
    out = tmp_path / "doctor.json"
    main(["doctor", "--json", str(out)])
    assert capsys.readouterr().out == ""
    written = json.loads(out.read_text())
    main(["doctor", "--json"])
    assert json.loads(capsys.readouterr().out)["verdict"] == written["verdict"]
