"""Run commands inside a fake host root with chroot: the collector's local stand-in for ssh."""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from xenpass.transport import ScriptResult, remote_command, run_local_command


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str


@dataclass
class ChrootHost:
    """A runner (xenpass.transport) into a fake root; also `run(cmd, *args)` like testinfra's host."""

    root: Path
    userspec: str | None = None  # e.g. "65534:65534": run as that user inside the root

    def argv(self, line: str) -> list[str]:
        user = [f"--userspec={self.userspec}"] if self.userspec else []
        return ["chroot", *user, str(self.root), "/bin/sh", "-c", line]

    def run_script(self, script: str, timeout: float | None = 120) -> ScriptResult:
        return run_local_command(self.argv(remote_command(script)), timeout)

    def run(self, command: str, *args: str) -> Result:
        line = command % tuple(shlex.quote(a) for a in args)
        done = subprocess.run(self.argv(line), capture_output=True, timeout=120)
        return Result(done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"))
