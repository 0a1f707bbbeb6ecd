"""pytest plugin: run the suite on a device install (`pip install '.[cpu]' pytest`).

The suite is written for the `dev` install. On a device there is no torch, onnx, scipy,
matplotlib nor peer packages (the export, eval, quantize and peers extras, which run on a
workstation). Tests that need one of them are reported as skipped, naming the package,
instead of failing:

- a module that imports one at the top (collection error: ModuleNotFoundError);
- a test or fixture that raises ModuleNotFoundError for one, or edgeface's
  MissingDependency whose message names one ("... (No module named 'scipy')");
- the few tests that only *assert* on output that a missing extra changes (listed in
  ASSERTS_NEED below, each with the package it needs; skipped only while it is missing).

Anything else -- a missing cv2, numpy or onnxruntime included -- still fails the run.

Use: PYTHONPATH=tests/targets python -m pytest -p no_torch_plugin tests
"""

from __future__ import annotations

import importlib.util
import re

import pytest

# Import names of the workstation-only extras (setup.cfg: export, eval, quantize, peers).
HOST_ONLY = {"torch", "onnx", "onnxscript", "scipy", "matplotlib", "retinaface", "yuface"}

# Tests that see a missing extra only through a different message or exit code.
# (node id without parameters, predicate on the test's parameters, modules any one of which
# makes it runnable, why). Keep this short; better, the tests should importorskip.
ASSERTS_NEED = [
    ("tests/bench/test_bench.py::test_report_command_writes_the_docs_page_and_its_chart", None,
     ("matplotlib",), "bench report draws a chart"),
    ("tests/test_bench.py::test_cli_errors_are_one_line",
     lambda params: "--peers" in params.get("args", ()),
     ("retinaface", "yuface"), "--peers is refused before the option under test is checked"),
    ("tests/test_eval_cmd.py::test_usage_errors", None,
     ("matplotlib",), "eval refuses to start without matplotlib before checking --split"),
]

_NO_MODULE = re.compile(r"No module named '([^'.]+)")


def _missing(modules) -> bool:
    return all(importlib.util.find_spec(m) is None for m in modules)


def _host_only_module(text: str) -> str | None:
    for name in _NO_MODULE.findall(text):
        if name in HOST_ONLY:
            return name
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if report.failed and isinstance(collector, pytest.Module):
        name = _host_only_module(str(report.longrepr))
        if name:
            report.outcome = "skipped"
            report.longrepr = (str(collector.path), 0,
                               f"Skipped: module imports {name} (not on a device install)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        base = item.nodeid.split("[")[0]
        params = getattr(getattr(item, "callspec", None), "params", {})
        for nodeid, applies, modules, why in ASSERTS_NEED:
            if base == nodeid and (applies is None or applies(params)) and _missing(modules):
                item.add_marker(pytest.mark.skip(
                    reason=f"needs {' or '.join(modules)} (not on a device install): {why}"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is None or not report.failed:
        return
    exc = call.excinfo.value
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in HOST_ONLY:
        name = exc.name.split(".")[0]
    elif type(exc).__name__ == "MissingDependency":
        name = _host_only_module(str(exc))
    else:
        return
    if name:
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0,
                           f"Skipped: needs {name} (not on a device install)")
