"""What a rule is: metadata next to a pure function facts -> verdict."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from xenpass.facts.host import HostFacts
from xenpass.parse.bdf import Bdf


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    BLOCKED = "blocked"
    SKIP = "skip"
    ERROR = "error"

    @property
    def ok(self) -> bool:
        return self in (Status.PASS, Status.WARN, Status.SKIP)


@dataclass(frozen=True)
class Evidence:
    """Raw lines a verdict rests on, and where they came from (a file or a command)."""

    source: str
    text: str


@dataclass(frozen=True)
class Verdict:
    rule: str
    status: Status
    reason: str
    evidence: tuple[Evidence, ...] = ()
    state: str | None = None  # a finer passing state, e.g. "attached" for assignable

    def to_json(self) -> dict:
        out = {
            "id": self.rule,
            "status": self.status.value,
            "reason": self.reason,
            "evidence": [{"source": e.source, "text": e.text} for e in self.evidence],
        }
        if self.state:
            out["state"] = self.state
        return out


@dataclass(frozen=True)
class Context:
    """What the user asked about a device beyond the host's own facts."""

    domus: tuple[str, ...] = ()


Check = Callable[[HostFacts, Bdf, Context], Verdict]


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: str  # "critical" fails the gate; "warning" only warns
    step: str  # the seed step it proves
    requires: tuple[str, ...]
    check: Check = field(repr=False)
    # The fact sources it reads (xenpass.facts.host.SOURCES): when one is unknown, the rule is an error, not judged.
    reads: tuple[str, ...] = ()
    # The catalogue (--list-rules, README, the HTML report): what passes, why it matters, where that is defined.
    passes: str = ""
    why: str = ""
    references: tuple[str, ...] = ()

    def verdict(self, status: Status, reason: str, *evidence: Evidence, state: str | None = None) -> Verdict:
        return Verdict(self.id, status, reason, tuple(e for e in evidence if e.text), state)


def file_evidence(facts: HostFacts, path: str, lines: list[str] | None = None) -> Evidence:
    """A file's lines as evidence: the given ones, or the whole file; '(missing)' when absent."""
    content = facts.raw.file(path)
    if content is None:
        return Evidence(path, "(missing)")
    return Evidence(path, "\n".join(lines) if lines is not None else content.rstrip("\n"))


def command_evidence(facts: HostFacts, name: str, text: str | None = None) -> Evidence:
    output = facts.raw.output(name)
    if output is None:
        return Evidence(name, "(command not available on this host)")
    return Evidence(name, (text if text is not None else output).rstrip("\n") or "(no output)")


def where(source: str, lineno: int) -> str:
    return f"{source}:{lineno}"
