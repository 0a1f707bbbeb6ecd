#!/usr/bin/env python
"""The robustness table (issue 23): every hostile case of classes 1-13, run as the real
command (`edgeface detect`, `run`, `serve` plus the hostile requests) under a 512 MB memory
cgroup, as the systemd unit's MemoryMax=512M would hold it. Per case: peak RSS of the
edgeface process (its VmHWM), the cgroup's peak, wall time, exit code, and whether
the kernel OOM-killed anything.

The inputs are the test suite's own crafted ones (tests/hostile_inputs.py,
tests/hostile/test_image_headers.py, tests/hostile/test_videos.py). A memory cgroup needs
root and a writable controller (cgroup v1 memory, or v2 with memory); elsewhere the limit
falls back to RLIMIT_AS=512M, which is not the same thing (it counts address space, not
resident memory: a refused case still passes, an OOM kill reads as MemoryError), and the
table says so.

    sudo .venv/bin/python benchmarks/robustness.py   # -> benchmarks/results/robustness.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "hostile")]

from hostile_inputs import memory_cgroup, memory_cgroup_available  # noqa: E402
from robustness_cases import CASES, CLEANUP, Case  # noqa: E402
from runtime_fakes import edgeface_cmd, tiny_onnx  # noqa: E402

LIMIT = 512 << 20


def run_case(case: Case, work: Path, model: Path, use_cgroup: bool, timeout: float) -> dict:
    """Build the case's inputs, run its command (and its driver, for servers), measure."""
    d = work / re.sub(r"[^A-Za-z0-9]+", "_", case.name)
    d.mkdir()
    argv, driver = case.build(d, model)
    with ExitStack() as stack:
        cg = stack.enter_context(memory_cgroup(LIMIT)) if use_cgroup else None
        pre = f'echo $$ > "{cg["procs"]}" && ' if cg else ""
        limit = None if cg else _rlimit_as
        t0 = time.monotonic()
        proc = subprocess.Popen(["/bin/sh", "-c", pre + 'exec "$@"', "sh",
                                 *edgeface_cmd(*argv)], cwd=REPO, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                preexec_fn=limit)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(
            line.decode(errors="replace") for line in proc.stderr), daemon=True)
        reader.start()
        note = driver(proc, lines) if driver else ""
        rc, peak_kb = _wait(proc, timeout)
        wall = time.monotonic() - t0
        reader.join(5)
    lines = [x.replace(str(d) + "/", ".../") for x in lines]
    errors = [x.strip() for x in lines
              if x.startswith(("edgeface: error", "Error:")) or "Traceback" in x]
    warnings = [x.strip().split(": ", 1)[-1] for x in lines if "WARNING" in x]
    for cleanup in reversed(CLEANUP):
        cleanup()
    CLEANUP.clear()
    return {"class": case.klass, "case": case.name, "command": "edgeface " + " ".join(
        a.replace(str(d) + "/", ".../").replace(str(work) + "/", ".../") for a in argv),
        "exit_code": rc,
        "expected_exit": case.expect, "wall_s": round(wall, 2),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "cgroup_peak_mb": (round(cg["peak_bytes"] / 2**20, 1)
                           if cg and cg.get("peak_bytes") else None),
        "oom_killed": bool(cg and cg["oom_kills"]) or rc == -signal.SIGKILL,
        "traceback": any("Traceback" in x for x in lines),
        "first_error": errors[0][:160] if errors else "",
        "note": note or (warnings[0][:100] if warnings else "")}


def _rlimit_as() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def _wait(proc: subprocess.Popen, timeout: float) -> tuple[int, int]:
    """(exit code, negative for a signal; peak RSS in KB). The peak is the process's own
    VmHWM, polled every 20 ms until it exits (exec starts a new one; wait4's ru_maxrss
    would count the pages of this script copied by fork)."""
    deadline, peak = time.monotonic() + timeout, 0
    status_file = Path(f"/proc/{proc.pid}/status")
    while True:
        try:
            hwm = [line for line in status_file.read_text().splitlines()
                   if line.startswith("VmHWM")]
            if hwm and b"edgeface" in Path(f"/proc/{proc.pid}/cmdline").read_bytes():
                peak = max(peak, int(hwm[0].split()[1]))
        except OSError:
            pass
        pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, peak
        if time.monotonic() > deadline:
            proc.kill()
        time.sleep(0.02)


def table(rows: list[dict], header: str) -> str:
    out = [header, "", "| class | case | exit (expected) | peak RSS | cgroup peak | wall | "
           "OOM kill | first error line |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cgp = f"{r['cgroup_peak_mb']} MB" if r["cgroup_peak_mb"] is not None else "-"
        err = r["first_error"].replace("|", "\\|")[:100] or r["note"]
        expected = "/".join(map(str, r["expected_exit"]))
        out.append(f"| {r['class']} | {r['case']} | {r['exit_code']} ({expected}) "
                   f"| {r['peak_rss_mb']} MB | {cgp} | {r['wall_s']} s | "
                   f"{'yes' if r['oom_killed'] else 'no'} | {err} |")
    return "\n".join(out) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None,
                    help="ONNX model (default: the suite's tiny model)")
    ap.add_argument("--only", default="", help="run the cases whose name contains this")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds per case")
    ap.add_argument("-o", "--out", type=Path,
                    default=REPO / "benchmarks" / "results" / "robustness.json")
    args = ap.parse_args(argv)
    why_not = memory_cgroup_available()
    limit_note = ("512 MB memory cgroup (memory.max / limit_in_bytes, swap off)"
                  if why_not is None else f"RLIMIT_AS=512M, NOT a memory cgroup ({why_not}): "
                  "address space, not resident memory; an OOM kill reads as MemoryError")
    rows = []
    with tempfile.TemporaryDirectory(prefix="robustness-") as tmp:
        work = Path(tmp)
        model = args.model or tiny_onnx(work / "tiny.onnx")
        for case in CASES:
            if args.only and args.only not in case.name:
                continue
            row = run_case(case, work, model, why_not is None, args.timeout)
            rows.append(row)
            print(json.dumps(row), flush=True)
    cmd = "python benchmarks/robustness.py " + " ".join(argv or sys.argv[1:])
    header = (f"# Robustness under a memory limit ({datetime.now(timezone.utc):%Y-%m-%d})\n\n"
              f"`{cmd.strip()}` on {platform.machine()}, {os.cpu_count()} CPUs, limit: "
              f"{limit_note}. Model: {'tiny test model' if not args.model else args.model}. "
              "Peak RSS: the edgeface process's VmHWM; cgroup peak: what was charged to the "
              "cgroup after the process entered it (memory.peak: its own allocations and "
              "page cache it brought in, not the interpreter pages shared with this script). "
              "Paths under the case folder are shown as `.../`.")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"limit": limit_note, "command": cmd.strip(),
                                    "rows": rows}, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(table(rows, header))
    bad = [r for r in rows if (r["oom_killed"] and r["class"] != "control") or r["traceback"]
           or r["exit_code"] not in r["expected_exit"]]
    print(table(rows, header))
    print(f"{len(rows)} cases, {len(bad)} off their expected exit / OOM-killed / traceback")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
