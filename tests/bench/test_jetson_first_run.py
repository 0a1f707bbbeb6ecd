"""benchmarks/jetson_first_run.sh cannot run here (no Jetson, GPU or TensorRT): what can be
checked is that it is shellcheck-clean, that its arguments are checked, that --dry-run lists
every step in order with the right commands into the one output file, and that its Python
snippets compile."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "jetson_first_run.sh"
STEPS = ["device", "python-stack", "cuda", "tensorrt", "doctor", "build-static",
         "build-dynamic", "foreign-cache", "rebuild-over-foreign-cache", "detect-dynamic",
         "trt-compare-static", "trt-compare-dynamic", "bench"]


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_shellcheck_clean():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt install shellcheck)")
    got = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert got.returncode == 0, got.stdout


def test_dry_run_lists_every_step_into_one_file(tmp_path):
    out = tmp_path / "res" / "first_run.txt"
    got = run("--dry-run", "--onnx", "v1.onnx", "--dynamic-onnx", "v1.dyn.onnx", "--images",
              str(tmp_path), "--out", str(out))
    assert got.returncode == 0, got.stderr
    text = out.read_text()
    assert text == got.stdout  # everything shown is in the file to send back
    assert re.findall(r"^== (\S+)$", text, re.MULTILINE) == STEPS + ["summary"]
    assert [line.split()[1] for line in text.split("== summary\n")[1].splitlines()[:-1]] \
        == STEPS
    work = out.parent / "jetson_first_run.work"
    for needle in (f"quantize --tensorrt --fp16 --force -m v1.onnx -o {work}/v1.fp16.engine",
                   f"-m v1.dyn.onnx -o {work}/v1.dynamic.fp16.engine",
                   f"truncate_cache {work}/v1.fp16.engine.timing",
                   f"trt_compare.py --engine {work}/v1.fp16.engine --onnx v1.onnx --images "
                   f"{tmp_path}", "--onnx v1.dyn.onnx", "-m edgeface.cli doctor",
                   f"bench --model {work}/v1.fp16.engine --model v1.onnx"):
        assert needle in text, needle
    assert f"send back: {out}" in text


def test_foreign_cache_from_another_device_is_copied_in(tmp_path):
    got = run("-n", "--onnx", "a.onnx", "--dynamic-onnx", "b.onnx", "--foreign-cache",
              "xavier.timing", "--out", str(tmp_path / "o.txt"))
    assert got.returncode == 0 and "+ cp xavier.timing " in got.stdout


def test_python_snippets_compile(tmp_path):
    text = run("-n", "--onnx", "a", "--dynamic-onnx", "b", "--out",
               str(tmp_path / "o.txt")).stdout
    snippets = re.findall(r"^\+ \S+ -c (.*?)\n== ", text, re.MULTILINE | re.DOTALL)
    assert len(snippets) == 3
    for code in snippets:
        compile(code, "<jetson_first_run.sh>", "exec")


def test_arguments_are_checked(tmp_path):
    got = run()
    assert got.returncode == 2 and "give --onnx" in got.stderr and got.stdout == ""
    got = run("--bogus")
    assert got.returncode == 2 and "unknown argument --bogus" in got.stderr
    got = run("--onnx", str(tmp_path / "missing.onnx"), "--dynamic-onnx", "b", "--out",
              str(tmp_path / "o.txt"))
    assert got.returncode == 2 and "missing.onnx not found" in got.stderr
    assert "On the Jetson" in run("--help").stdout


@pytest.mark.skipif(sys.platform != "linux", reason="bash script for Linux")
def test_a_failing_step_is_recorded_and_the_rest_still_runs(tmp_path):
    """No Jetson here: every device step fails, each one says so, the script finishes."""
    onnx = tmp_path / "v1.onnx"
    onnx.write_bytes(b"not a model")
    out = tmp_path / "o.txt"
    env = {"PATH": "/usr/bin:/bin", "PYTHON": "/bin/false", "HOME": str(tmp_path)}
    got = run("--onnx", str(onnx), "--dynamic-onnx", str(onnx), "--images", str(tmp_path),
              "--out", str(out), env=env)
    assert got.returncode == 0
    summary = out.read_text().split("== summary\n")[1].splitlines()
    assert [s.split()[1] for s in summary[:-1]] == STEPS
    first = 0 if not Path("/etc/nv_tegra_release").exists() else 1  # "device" needs L4T
    assert all(s.startswith("FAIL(1) ") for s in summary[first:5]), summary
