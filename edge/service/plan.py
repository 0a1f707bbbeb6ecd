"""An install as a :class:`Plan`: file steps and commands, printed as they run.

With ``write_files`` off nothing is written; with ``dry_run`` no command runs.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from edgeface.errors import EdgefaceError


@dataclass
class Step:
    """One thing an install does: a file operation (``apply``) or a command (``argv``)."""

    verb: str
    target: str
    apply: Callable[[], None] | None = None
    argv: list[str] | None = None
    note: str = ""
    check: bool = True  # a failing command fails the install


@dataclass
class Plan:
    """The steps of an install or uninstall, notes to print after them, texts a dry run shows."""

    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    show: list[tuple[str, str]] = field(default_factory=list)  # (title, text) for dry runs

    def add(self, *args: Any, **kwargs: Any) -> None:
        self.steps.append(Step(*args, **kwargs))

    def execute(self, *, dry_run: bool, write_files: bool, echo: Callable[[str], None],
                runner: Callable[[list[str]], int] | None = None) -> None:
        """Run the steps in order, echoing each; see :func:`run_command` for ``runner``."""
        runner = runner or run_command
        for step in self.steps:
            shown = shlex.join(step.argv) if step.argv else step.target
            note = f"  ({step.note})" if step.note else ""
            if step.argv is not None:
                if dry_run:
                    echo(f"  would run    {shown}")
                    continue
                echo(f"  run          {shown}{note}")
                rc = runner(step.argv)
                if rc != 0 and step.check:
                    unit = step.argv[-1].removesuffix(".service")  # edgeface, edgeface@NAME
                    hint = (f"; see: journalctl -u {unit} -e" if "--now" in step.argv
                            or "start" in step.argv else "")
                    raise EdgefaceError(f"`{shown}` failed with exit status {rc}{hint}")
                continue
            if step.apply is None or not write_files:
                echo(f"  {'would ' + step.verb if step.apply else step.verb:12s} {shown}{note}")
                continue
            echo(f"  {step.verb:12s} {shown}{note}")
            try:
                step.apply()
            except OSError as exc:
                raise EdgefaceError(f"{step.verb} {shown}: {exc.strerror or exc}") from None


def run_command(argv: list[str], *, to_stderr: bool = True) -> int:
    """Run a command (its output on our stderr); a missing program is an EdgefaceError."""
    if shutil.which(argv[0]) is None:
        raise EdgefaceError(f"{argv[0]} not found: is this a systemd system?")
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    (sys.stderr if to_stderr else sys.stdout).write(done.stdout)
    sys.stderr.write(done.stderr)
    return done.returncode

