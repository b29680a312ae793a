"""Run commands inside a fake host root with chroot: the collector's local stand-in for ssh."""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str


@dataclass
class ChrootHost:
    """Quacks like testinfra's host for `run(cmd, *args)` (args quoted, as testinfra does)."""

    root: Path

    def run(self, command: str, *args: str) -> Result:
        line = command % tuple(shlex.quote(a) for a in args)
        done = subprocess.run(["chroot", str(self.root), "/bin/sh", "-c", line], capture_output=True, timeout=120)
        return Result(done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"))
