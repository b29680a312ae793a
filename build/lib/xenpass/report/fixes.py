"""After --fix: what each device's plan came to, for every report (HTML, terminal, JSON, a test's reason).

Per device: the plan made from the facts before fixing, what applying it did (xenpass.fix.apply.ApplyReport:
the steps applied, the one that failed, the backups, the rollback commands), and the rules' verdicts before
and after. Everything here is plain text; each report makes it `visible` (and HTML-escapes it) itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from xenpass.fix.apply import ApplyReport
from xenpass.fix.base import Command, FileEdit, Plan, Step
from xenpass.parse.bdf import Bdf
from xenpass.rules import RULES
from xenpass.rules.base import Verdict

if TYPE_CHECKING:  # results.py imports this module for the JSON
    from xenpass.report.results import RunResults

NOTHING = "nothing to fix"  # the device's plan was empty
APPLIED = "applied"  # every step ran
FAILED = "failed"  # a step failed; the rest were not run
NOT_APPLIED = "not applied"  # a snapshot target (or no apply report): the plan is only shown
REFUSED = "refused"  # the plan held only refusals: nothing to run


@dataclass(frozen=True)
class StepOutcome:
    number: int | None  # the step's place in the plan (None for a refusal)
    state: str  # applied, FAILED, not run, planned, refused
    text: str  # the step ("edit /etc/modules"), or for a failed one what failed
    why: str = ""


@dataclass(frozen=True)
class DeviceFix:
    host: str
    bdf: Bdf
    plan: Plan
    report: ApplyReport | None
    before: dict[str, Verdict]
    after: dict[str, Verdict]
    snapshot: bool = False

    @property
    def outcome(self) -> str:
        if self.plan.empty:
            return NOTHING
        if self.snapshot or self.report is None:
            return NOT_APPLIED
        if self.report.failed:
            return FAILED
        return APPLIED if self.plan.steps else REFUSED

    @property
    def applied(self) -> list[str]:
        return list(self.report.applied) if self.report is not None and not self.snapshot else []

    @property
    def failed_step(self) -> int | None:
        """The 1-based number of the step that failed (the ones before it were applied)."""
        return len(self.applied) + 1 if self.outcome == FAILED else None

    def headline(self) -> str:
        """One line: what --fix did to this device."""
        total = len(self.plan.steps)
        outcome = self.outcome
        if outcome == NOTHING:
            return NOTHING
        if outcome == NOT_APPLIED:
            why = self.report.failed if self.report is not None and self.report.failed else (
                "snapshot target: nothing can be applied" if self.snapshot else "no step was run")
            return f"fix not applied: {why}"
        assert self.report is not None
        if outcome == FAILED:
            where = f"step {self.failed_step} of {total}" if self.failed_step <= total else f"step {self.failed_step}"
            partly = ("; the step may have run in part (the rollback assumes it did)"
                      if getattr(self.report, "fault", None) in ("timeout", "connection") else "")
            return f"fix failed at {where}: {self.report.failed}{partly}"
        refused = f"; {len(self.plan.refusals)} refused" if self.plan.refusals else ""
        if outcome == REFUSED:
            return f"nothing applied: {len(self.plan.refusals)} step{plural(len(self.plan.refusals))} refused"
        reboot = "; reboot required" if self.plan.reboot_required else ""
        return f"fix applied: {len(self.applied)} of {total} step{plural(total)}{refused}{reboot}"

    def steps(self) -> list[StepOutcome]:
        """Every step of the plan with what became of it, in order; then the refusals."""
        outcome, applied = self.outcome, self.applied
        out = []
        for number, step in enumerate(self.plan.steps, start=1):
            if outcome == NOT_APPLIED:
                out.append(StepOutcome(number, "planned", step_label(step), step.why))
            elif number <= len(applied):
                out.append(StepOutcome(number, "applied", applied[number - 1]))
            elif number == self.failed_step and self.report is not None and self.report.failed:
                out.append(StepOutcome(number, "FAILED", self.report.failed))
            else:
                out.append(StepOutcome(number, "not run", step_label(step), step.why))
        # an apply report that ran more than the plan held (it cannot today): shown, not dropped
        out += [StepOutcome(n, "applied", label) for n, label in enumerate(applied, start=1) if n > len(out)]
        out += [StepOutcome(None, "refused", f"{r.rule}: {r.reason}", f"instead: {r.alternative}")
                for r in self.plan.refusals]
        return out

    @property
    def backups(self) -> list[str]:
        return list(self.report.backups) if self.report is not None and not self.snapshot else []

    @property
    def rollback(self) -> list[str]:
        """The commands that undo what was applied, in the order to run them."""
        return list(self.report.rollback) if self.report is not None and not self.snapshot else []

    def changes(self) -> list[tuple[str, str | None, str | None]]:
        """(rule, status before --fix, status after) for every rule judged, in registry order."""
        rules = [r for r in RULES if r in self.before or r in self.after]
        rules += [r for r in {**self.before, **self.after} if r not in rules]
        return [(r, status(self.before.get(r)), status(self.after.get(r))) for r in rules]

    def affects(self, rule: str) -> bool:
        """Whether a rule's test should show this device's fix: it was planned for, or its status moved."""
        if self.plan.empty:
            return False
        before, after = self.before.get(rule), self.after.get(rule)
        changed = before is not None and after is not None and before.status != after.status
        return changed or rule in self.plan.rules or any(s.rule == rule for s in self.plan.steps) or (
            after is not None and not after.status.ok)


def status(verdict: Verdict | None) -> str | None:
    return verdict.status.value if verdict is not None else None


def plural(n: int) -> str:
    return "" if n == 1 else "s"


def step_label(step: Step) -> str:
    """A plan step named the way the applier names it ("edit PATH", "run ARGV")."""
    if isinstance(step, FileEdit):
        return f"edit {step.path}"
    assert isinstance(step, Command)
    return f"run {' '.join(step.argv)}"


def device_fix(run: RunResults, host: str, bdf: Bdf) -> DeviceFix | None:
    """What --fix did to one device; None when --fix did not look at it (or was not given)."""
    key = (host, bdf)
    if key not in run.before and key not in run.applied:
        return None
    target = next((h.target for h in run.hosts or [] if h.name == host), None)
    after = {**run.evaluated.get(key, {}), **run.reported.get(host, {}).get(bdf, {})}
    return DeviceFix(host, bdf, run.plans.get(key) or Plan(host, bdf), run.applied.get(key),
                     run.before.get(key, {}), after, bool(target is not None and target.snapshot))


def fix_history(run: RunResults) -> list[DeviceFix]:
    """Every device --fix looked at, host by host in run order, devices in order."""
    out = []
    for host in run.hosts or []:
        devices = {bdf for name, bdf in [*run.before, *run.applied] if name == host.name}
        for bdf in sorted(devices):
            fix = device_fix(run, host.name, bdf)
            if fix is not None:
                out.append(fix)
    return out


def fix_note(fix: DeviceFix, rule: str, part: Plan, remaining: Plan | None = None, brief: bool = False) -> str:
    """What a failing test says after --fix, in place of "fix plan (apply with --fix)".

    `part` is the plan's share for this rule (and the rules it blocks); `remaining` a plan made from the facts
    collected after applying (what a next run would still do); `brief` keeps the first line only.
    """
    outcome = fix.outcome
    before = fix.before.get(rule)
    was = f"before --fix: {before.status.value}" if before is not None else "not judged before --fix"
    lines: list[str] = []
    if outcome == NOT_APPLIED:
        lines.append(fix.headline())
        if not part.empty:
            lines += ["", "fix plan (not applied):", part.render()]
    elif outcome == FAILED:
        lines.append(fix.headline())
        steps = fix.steps()
        lines += [f"applied: {s.number}. {s.text}" for s in steps if s.state == "applied"]
        lines += [f"not run: {s.number}. {s.text}" for s in steps if s.state == "not run"]
        lines += undo_lines(fix)
    else:
        still = "still failing" if before is None or not before.status.ok else "now failing"
        if outcome == NOTHING:
            head = f"--fix: nothing was planned for this device ({was}); {still}"
        else:
            total = len(fix.plan.steps)
            mine = len(part.steps)
            share = "none" if not mine else "all" if mine == total else str(mine)
            head = (f"fix applied: {len(fix.applied)} of {total} step{plural(total)}, {share} for this rule ({was}); "
                    f"{still}")
            if part.refusals:
                head += ": the fix for this rule was refused"
            elif fix.plan.reboot_required:
                head += " because a reboot is required for the boot-time configuration to take effect"
            else:
                head += ": the host, collected again after the fix, still fails this rule"
        lines.append(head)
        lines += [r.render() for r in part.refusals]
        if outcome != NOTHING:
            lines += undo_lines(fix)
        if remaining is not None and remaining.steps:
            todo = Plan(remaining.host, remaining.device, remaining.steps, (), remaining.reboot_required)
            lines += ["", "still to do (not applied by this run):", todo.render()]
    return lines[0] if brief else "\n".join(lines)


def undo_lines(fix: DeviceFix) -> list[str]:
    lines = []
    if fix.backups:
        lines.append("backups: " + ", ".join(fix.backups))
    if fix.rollback:
        lines.append("rollback, in this order:")
        lines += [f"  {command}" for command in fix.rollback]
    return lines


def fix_json(fix: DeviceFix) -> dict:
    """The device's --fix outcome in the compliance JSON, next to its `plan` and `applied`."""
    return {"outcome": fix.outcome, "failed_step": fix.failed_step, "steps": len(fix.plan.steps),
            "summary": fix.headline()}
