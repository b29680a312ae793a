"""Apply a plan on a host, safely: atomic writes with backups, stop at the first failing step."""

from __future__ import annotations

import base64
import hashlib
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime

from xenpass.fix.base import Command, FileEdit, Plan
from xenpass.text import as_bytes, from_bytes
from xenpass.transport import HostTimeout


@dataclass
class ApplyReport:
    applied: list[str] = field(default_factory=list)
    failed: str | None = None
    backups: list[str] = field(default_factory=list)
    rollback: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"applied": self.applied, "failed": self.failed, "backups": self.backups, "rollback": self.rollback}

    def render(self) -> str:
        lines = [f"applied: {a}" for a in self.applied]
        if self.failed:
            lines.append(f"FAILED: {self.failed} (remaining steps not run)")
        lines += [f"rollback: {r}" for r in self.rollback]
        return "\n".join(lines) or "nothing applied"


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S")


def write_script(edit: FileEdit, backup: str) -> str:
    """One remote shell: check the file is as planned, back it up, write a temp file beside it, rename."""
    path = shlex.quote(edit.path)
    payload = base64.b64encode(as_bytes(edit.after)).decode()
    if edit.before is None:
        guard = f"[ ! -e {path} ] || {{ echo 'xenpass: {edit.path} appeared since facts were collected' >&2; exit 3; }}"
        keep = "chmod 644 \"$tmp\"; chown 0:0 \"$tmp\""
    else:
        digest = hashlib.sha256(as_bytes(edit.before)).hexdigest()  # the exact bytes the host had
        guard = (f"[ \"$(sha256sum < {path} | cut -c1-64)\" = {digest} ] || "
                 f"{{ echo 'xenpass: {edit.path} changed since facts were collected' >&2; exit 3; }}")
        keep = (f"cp -p {path} {shlex.quote(backup)} && chmod \"$(stat -c %a {path})\" \"$tmp\" && "
                f"chown \"$(stat -c %u:%g {path})\" \"$tmp\"")
    directory = shlex.quote(edit.path.rsplit("/", 1)[0] or "/")
    return (f"set -e; {guard}; mkdir -p {directory}; tmp=$(mktemp {directory}/.xenpass.XXXXXX); "
            f"trap 'rm -f \"$tmp\"' EXIT; echo {payload} | base64 -d > \"$tmp\"; {keep}; "
            f"mv -f \"$tmp\" {path}; trap - EXIT")


def apply_plan(host, plan: Plan, timeout: float | None = None) -> ApplyReport:
    """Run the steps in order on `host` (a xenpass.transport runner). A failure stops the rest."""
    report = ApplyReport()
    when = stamp()
    for step in plan.steps:
        if isinstance(step, FileEdit):
            backup = f"{step.path}.xenpass-{when}"
            script = write_script(step, backup)
            undo = f"mv {shlex.quote(backup)} {shlex.quote(step.path)}" if step.before is not None \
                else f"rm {shlex.quote(step.path)}"
            label = f"edit {step.path}"
        else:
            backup = f"{step.backup}.xenpass-{when}" if step.backup else ""
            save = f"cp -p {shlex.quote(step.backup)} {shlex.quote(backup)} && " if step.backup else ""
            script = save + " ".join(shlex.quote(a) for a in step.argv)
            undo = f"mv {shlex.quote(backup)} {shlex.quote(step.backup)}" if step.backup else ""
            label = f"run {' '.join(step.argv)}"
        try:
            result = host.run_script(script, timeout)
        except HostTimeout as exc:
            report.failed = f"{label}: {exc}"
            break
        if result.rc != 0:
            detail = from_bytes(result.stderr or result.stdout or b"").strip().splitlines()
            report.failed = f"{label}: exit {result.rc}: {detail[-1] if detail else 'no output'}"
            break
        report.applied.append(label)
        if backup and ((isinstance(step, FileEdit) and step.before is not None) or isinstance(step, Command)):
            report.backups.append(backup)
        if undo:
            report.rollback.insert(0, undo)
    return report
