"""The formats table behind `edgeface quantize`: every entry consistent with the command and
with the code it names, and every option a format does not take refused in one line (rc 2)."""

from __future__ import annotations

import re

import click
import pytest

from edgeface.cli import main
from edgeface.cli.quantize_cmd import quantize as quantize_command
from edgeface.errors import EXIT_USAGE, ConfigError
from edgeface.quantize import formats as qf

PARAMS = {p.name: p for p in quantize_command.params}
# A value for each option that takes one (flags take none); one the parser accepts.
SAMPLE = {"provider": "tensorrt", "workspace": "1G", "trt_version": "8.6", "dataset": "d",
          "split": "calib", "num_images": "3", "method": "minmax", "percentile": "99.9",
          "activation_type": "s8", "weight_type": "s8", "exclude": "none", "eval_dataset": "e",
          "eval_split": "eval", "max_ap_drop": "1", "threads": "1", "bench_runs": "0"}
FORMATS = list(qf.FORMATS.values())


def _flags_to_kwargs(flags: tuple[str, ...]) -> dict[str, object]:
    kw: dict[str, object] = {}
    it = iter(flags)
    for f in it:
        name = f.lstrip("-")
        if name == "provider":  # what select_format calls the INT8 model's target
            kw["target"] = next(it)
        else:
            kw[name] = True
    return kw


def _argv(name: str) -> list[str]:
    param = PARAMS[name]
    spelled = max(param.opts, key=len)
    return [spelled] if getattr(param, "is_flag", False) else [spelled, SAMPLE[name]]


def test_names_and_suffixes_are_unique():
    assert len({f.name for f in FORMATS}) == len(FORMATS) == len(qf.FORMATS)
    suffixes = [f.suffix for f in FORMATS]
    assert len(set(suffixes)) == len(suffixes), suffixes


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_entry_is_consistent(fmt):
    assert fmt.suffix.endswith(fmt.extensions), (fmt.suffix, fmt.extensions)
    assert all(e.startswith(".") for e in fmt.extensions)
    unknown = (fmt.options | qf.COMMON) - set(PARAMS)
    assert not unknown, f"{fmt.name} allows options the command does not have: {unknown}"
    assert set(fmt.fixed) <= fmt.options
    assert fmt.pipeline in ("int8", "tensorrt") and fmt.title and fmt.device
    assert qf.select_format(**_flags_to_kwargs(fmt.flags)) is fmt  # its flags select it
    for flag in fmt.flags:
        assert flag in SAMPLE.values() or flag.lstrip("-").replace("-", "_") in PARAMS, flag
    if fmt.via is not None:
        made_first = qf.FORMATS[fmt.via]
        assert made_first.pipeline == "int8" and made_first.int8_config is not None
        assert fmt.options >= made_first.options - {"provider"}  # it takes their options
    if fmt.pipeline == "int8":
        assert fmt.int8_config is not None and ".onnx" in fmt.extensions


def test_every_command_option_belongs_to_some_format():
    """A new `quantize` flag must be placed in the table, or every format refuses it."""
    placed = qf.COMMON.union(*(f.options for f in FORMATS))
    assert set(PARAMS) - placed == set()


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_referenced_code_exists(fmt):
    pytest.importorskip("onnxruntime", reason="the INT8 pipeline needs onnxruntime")
    assert callable(fmt.build_function())
    for ref in filter(None, (fmt.int8_config, fmt.check)):
        assert callable(qf.resolve(ref)), ref
    if fmt.int8_config:
        config = fmt.config_function()()  # the defaults
        got = {k: getattr(config, k) for k in fmt.fixed}
        assert got == dict(fmt.fixed), f"{fmt.name}: the table says {fmt.fixed}, the code {got}"


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_check_options_refuses_what_a_format_does_not_take(fmt):
    for name in sorted(set(PARAMS) - fmt.options - qf.COMMON):
        want = "^" + re.escape(f"--{name} does not apply to {fmt.title}")
        with pytest.raises(ConfigError, match=want):
            qf.check_options(fmt, {name: "x"}, lambda n: f"--{n}")
    for name in sorted(fmt.options - set(fmt.fixed)):
        qf.check_options(fmt, {name: "x"}, lambda n: f"--{n}")  # accepted
    for name, value in fmt.fixed.items():
        qf.check_options(fmt, {name: value}, lambda n: f"--{n}")
        with pytest.raises(ConfigError, match=f"fixes .*: drop --{name}$"):
            qf.check_options(fmt, {name: "other"}, lambda n: f"--{n}")


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_the_command_refuses_each_option_in_one_line(fmt, capsys, tmp_path):
    """Through the real command: rc 2, one line naming the flag as spelled, before any work
    (the model does not even exist)."""
    refused = sorted(set(PARAMS) - fmt.options - qf.COMMON)
    assert refused or fmt.name == "tensorrt-int8"
    for name in refused:
        if name in ("fp16", "provider") and qf.select_format(
                **_flags_to_kwargs((*fmt.flags, *_argv(name)))) is not fmt:
            continue  # a selecting flag: it names another format (tensorrt + --fp16)
        argv = ["quantize", *fmt.flags, *_argv(name), "-m", str(tmp_path / "missing.onnx"),
                "-o", str(tmp_path / f"out{fmt.suffix}")]
        code = main(argv)
        err = capsys.readouterr().err
        spelled = max(PARAMS[name].opts, key=len)
        assert code == EXIT_USAGE and err.count("\n") == 1, (argv, err)
        assert f"{spelled} does not apply to {fmt.title} ({fmt.spelling})" in err, (argv, err)


def test_the_message_says_which_format_takes_it(capsys, tmp_path):
    code = main(["quantize", "--tensorrt", "--dataset", str(tmp_path), "-m",
                 str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.engine")])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert err == ("edgeface: error: --dataset does not apply to an FP32 TensorRT engine "
                   "(--tensorrt); it is for --int8\n")


def test_selecting_needs_int8_or_tensorrt():
    with pytest.raises(ConfigError, match="give --int8"):
        qf.select_format(int8=False, tensorrt=False, fp16=True)
    assert qf.select_format(int8=True, tensorrt=True, fp16=True).name == "tensorrt-int8"


def test_product_card_spellings_are_in_the_table():
    spellings = {f.spelling for f in FORMATS}
    assert {"--int8", "--tensorrt"} <= spellings
    assert isinstance(quantize_command, click.Command)
