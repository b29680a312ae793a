"""What a fix plan is: file edits and commands, each tied to the rule it repairs, plus refusals."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from xenpass.parse.bdf import Bdf

if TYPE_CHECKING:
    from xenpass.rules.boot_outcome import BootOutcome

# The deadline of one remote step of --fix (an edit, an initramfs rebuild), in seconds, unless --step-timeout
# says otherwise; fix.sh and the Ansible export use it too.
STEP_TIMEOUT_DEFAULT = 900


@dataclass(frozen=True)
class FileEdit:
    """A whole-file rewrite; `before` None means the file is new."""

    rule: str
    path: str
    before: str | None
    after: str
    why: str

    def diff(self) -> str:
        before = (self.before or "").splitlines(keepends=True)
        after = self.after.splitlines(keepends=True)
        old = self.path if self.before is not None else "/dev/null"
        lines = difflib.unified_diff(before, after, f"a{self.path}" if self.before is not None else old,
                                     f"b{self.path}")
        return "".join(ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n" for ln in lines)

    def render(self) -> str:
        return f"edit {self.path}: {self.why}\n{self.diff()}"

    def to_json(self) -> dict:
        return {"kind": "edit", "rule": self.rule, "path": self.path, "why": self.why, "diff": self.diff()}


@dataclass(frozen=True)
class Command:
    rule: str
    argv: tuple[str, ...]
    why: str
    backup: str | None = None  # a file copied aside before the command runs (e.g. the initramfs)

    def render(self) -> str:
        saved = f" (backs up {self.backup} first)" if self.backup else ""
        return f"run `{' '.join(self.argv)}`{saved}: {self.why}"

    def to_json(self) -> dict:
        return {"kind": "command", "rule": self.rule, "argv": list(self.argv), "why": self.why,
                "backup": self.backup}


Step = FileEdit | Command


@dataclass(frozen=True)
class Refusal:
    """A step the planner will not take because it could make the host worse."""

    rule: str
    reason: str
    alternative: str

    def render(self) -> str:
        return f"refused ({self.rule}): {self.reason}\n  instead: {self.alternative}"

    def to_json(self) -> dict:
        return {"rule": self.rule, "reason": self.reason, "alternative": self.alternative}


@dataclass
class Part:
    """What one rule's planner proposes."""

    steps: list[Step] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reboot_required: bool = False


@dataclass(frozen=True)
class Plan:
    host: str
    device: Bdf
    steps: tuple[Step, ...] = ()
    refusals: tuple[Refusal, ...] = ()
    reboot_required: bool = False
    notes: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    next_boot: BootOutcome | None = None  # the boot model over the facts as the steps leave them

    @property
    def empty(self) -> bool:
        return not self.steps and not self.refusals

    def for_rule(self, *rules: str) -> Plan:
        """The part of the plan that repairs these rules."""
        steps = tuple(s for s in self.steps if s.rule in rules)
        return Plan(self.host, self.device, steps, tuple(r for r in self.refusals if r.rule in rules),
                    self.reboot_required and bool(steps), self.notes, tuple(r for r in self.rules if r in rules))

    def render(self) -> str:
        if self.empty:
            return "nothing to do"
        out = [f"{i}. {step.render()}" for i, step in enumerate(self.steps, start=1)]
        out += [r.render() for r in self.refusals]
        out += [f"note: {n}" for n in self.notes]
        if self.reboot_required:
            out.append("reboot required for the boot-time configuration to take effect")
        if self.next_boot is not None and self.next_boot.known:
            out.append(f"after these steps, the next boot gives {self.device} to {self.next_boot.label} "
                       f"(boot model: {self.next_boot.why})")
        elif self.next_boot is not None:
            out.append(f"after these steps, for {self.device}, the boot model says: {self.next_boot.why}")
        return "\n".join(out)

    def to_json(self) -> dict:
        return {"steps": [s.to_json() for s in self.steps], "refusals": [r.to_json() for r in self.refusals],
                "reboot_required": self.reboot_required, "notes": list(self.notes),
                **({"next_boot": self.next_boot.to_json()} if self.next_boot is not None else {})}


def replace_lines(text: str, changes: dict[int, str | None]) -> str:
    """Replace (or with None, drop) 1-based lines; every other byte stays as it was."""
    lines = text.splitlines(keepends=True)
    out = []
    for number, line in enumerate(lines, start=1):
        if number not in changes:
            out.append(line)
        elif changes[number] is not None:
            ending = line[len(line.rstrip("\r\n")):] or "\n"
            out.append(changes[number] + ending)
    return "".join(out)


def append_line(text: str | None, line: str) -> str:
    text = text or ""
    if text and not text.endswith("\n"):
        text += "\n"
    return text + line + "\n"
