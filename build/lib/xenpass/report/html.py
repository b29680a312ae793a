"""pytest-html extras: each test's reason and evidence, and the host x device x rule matrix on top."""

from __future__ import annotations

from collections import Counter
from html import escape

import pytest
from pytest_html import extras

from xenpass.catalogue import anchor, html_section
from xenpass.fix.base import Plan
from xenpass.parse.bdf import Bdf
from xenpass.report.fixes import APPLIED, FAILED, NOT_APPLIED, NOTHING, REFUSED, DeviceFix, fix_history, plural
from xenpass.report.results import RunResults
from xenpass.rules.base import Status, Verdict
from xenpass.targets import HostResult
from xenpass.text import visible

STYLE = """<style>
.xp-matrix{border-collapse:collapse;margin:8px 0;font-size:13px}
.xp-matrix th,.xp-matrix td{border:1px solid #ccc;padding:3px 8px;text-align:left}
.xp-pass{background:#d8f5d0}.xp-fail,.xp-error{background:#f9d0d0}.xp-warn{background:#fbefc4}
.xp-blocked,.xp-skip{background:#e6e6e6}
.xp-evidence{background:#f6f6f6;border-left:3px solid #999;padding:4px 8px;white-space:pre-wrap;font-size:12px}
.xp-matrix,.xp-fix{color:#222}
.xp-fix{border:1px solid #ccc;border-left:5px solid #999;padding:2px 12px 8px;margin:12px 0;max-width:1100px}
.xp-fix-applied{border-left-color:#3a9a2a}.xp-fix-failed{border-left-color:#c62828}
.xp-fix-not-applied,.xp-fix-refused{border-left-color:#d9a400}
.xp-fix h3{margin:8px 0 4px;font-size:15px;color:#000}.xp-fix p,.xp-fix .xp-block{margin:8px 0 2px}
.xp-outcome{font-weight:normal}.xp-status{padding:0 4px}.xp-changed td{font-weight:bold}
.xp-step{font-family:monospace;font-size:12px;padding:2px 6px;margin:1px 0;white-space:pre-wrap}
.xp-step-applied{background:#e6f6e0}.xp-step-FAILED{background:#f9d0d0;font-weight:bold}
.xp-step-not-run{color:#666}.xp-step-planned{background:#f3f3f3}.xp-step-refused{background:#fbefc4}
.xp-why{font-family:sans-serif;color:#555}
.xp-undo{background:#fff8e1;border-left:3px solid #d9a400;padding:4px 8px;white-space:pre-wrap;font-size:12px}
</style>"""


def shown(text: str, quote: bool = False) -> str:
    """Host text as HTML text: controls and undecodable bytes made visible first, then escaped (never markup)."""
    return escape(visible(text), quote=quote)


def verdict_extras(verdict: Verdict, plan: Plan | None = None, fix: DeviceFix | None = None) -> list:
    """A test's extras: its verdict and evidence; then its fix plan, or after --fix (`fix`) what the fix did."""
    parts = [f"<p><b>{shown(verdict.rule)}: {verdict.status.value.upper()}</b>"
             f"{' (' + shown(verdict.state) + ')' if verdict.state else ''} — {shown(verdict.reason)}</p>"]
    for item in verdict.evidence:
        parts.append(f"<div><i>{shown(item.source)}</i><pre class='xp-evidence'>{shown(item.text)}</pre></div>")
    if fix is not None:
        parts.append(fix_extras(fix, verdict.rule))
    elif plan is not None and not plan.empty:
        parts.append(f"<div><b>Fix plan</b> (apply with <code>--fix</code>)<pre class='xp-evidence'>"
                     f"{shown(plan.render())}</pre></div>")
    return [extras.html("".join(parts))]


# -- after --fix ---------------------------------------------------------------------------------------------

def status_span(value: str | None) -> str:
    return f"<span class='xp-{value} xp-status'>{value}</span>" if value else "<i>not judged</i>"


MARKS = {"applied": "✓", "FAILED": "✗", "not run": "–", "planned": "○", "refused": "!"}


def fix_steps_html(fix: DeviceFix, why: bool = True) -> str:
    """The plan's steps with what became of each (applied, FAILED, not run, planned, refused), in order."""
    rows = []
    for step in fix.steps():
        number = f"{step.number}. " if step.number is not None else ""
        because = f" <span class='xp-why'>— {shown(step.why)}</span>" if why and step.why else ""
        rows.append(f"<div class='xp-step xp-step-{step.state.replace(' ', '-')}'>{MARKS.get(step.state, '')} "
                    f"{number}{step.state} — {shown(step.text)}{because}</div>")
    if fix.plan.reboot_required and fix.outcome == APPLIED:  # a failed or unapplied plan needs its steps first
        rows.append("<p><b>reboot required</b> for the boot-time configuration to take effect</p>")
    rows += [f"<p><i>note: {shown(note)}</i></p>" for note in fix.plan.notes]
    return "".join(rows)


def fix_undo_html(fix: DeviceFix) -> str:
    """Every backup, and the rollback commands in the order to run them (only when something was applied)."""
    if fix.outcome not in (APPLIED, FAILED):
        return ""
    backups = (f"<pre class='xp-evidence'>{shown(chr(10).join(fix.backups))}</pre>" if fix.backups
               else " <i>none recorded</i>")
    rollback = (f" — run these, in this order, to undo what was applied:"
                f"<pre class='xp-undo'>{shown(chr(10).join(fix.rollback))}</pre>" if fix.rollback
                else " <i>no command recorded: nothing applied has an undo</i>")
    return f"<div class='xp-block'><b>Backups</b>{backups}</div><div class='xp-block'><b>Rollback</b>{rollback}</div>"


def fix_extras(fix: DeviceFix, rule: str) -> str:
    """In a test's extras after --fix: its rule before → after, and what --fix did to the device."""
    before = fix.before.get(rule)
    after = fix.after.get(rule)
    return (f"<div class='xp-fix xp-fix-{fix.outcome.replace(' ', '-')}'>"
            f"<p><b>--fix</b> — {shown(rule)}: {status_span(before.status.value if before else None)} → "
            f"{status_span(after.status.value if after else None)}</p>"
            f"<p><b>{shown(fix.host)} {shown(str(fix.bdf))}: {shown(fix.headline())}</b></p>"
            f"{fix_steps_html(fix)}{fix_undo_html(fix)}</div>")


def fix_history_html(run: RunResults, fixing: bool | None = None, compact: bool | None = None) -> str:
    """The "Fix history" section after the matrix: one entry per host × device that had a plan."""
    history = fix_history(run)
    if not (history if fixing is None else fixing):
        return ""
    compact = run.compact if compact is None else compact
    planned = [f for f in history if f.outcome != NOTHING]
    nothing = [f for f in history if f.outcome == NOTHING]
    if not planned:
        checked = f" ({len(history)} device{plural(len(history))} checked)" if history else ""
        return f"{STYLE}<h2 id='xp-fix-history'>Fix history</h2><p>--fix: nothing to fix{checked}.</p>"
    counts = Counter(f.outcome for f in planned)
    tally = f"{len(planned)} device{plural(len(planned))} had a fix plan — " + " · ".join(
        f"{outcome}: {counts[outcome]}" for outcome in (APPLIED, FAILED, NOT_APPLIED, REFUSED) if counts[outcome])
    if nothing:
        tally += f"; nothing to fix on {len(nothing)} other device{plural(len(nothing))}"
    entries = [fix_entry_html(fix, compact) for fix in planned]
    rest = (f"<p>nothing to fix: {shown(', '.join(f'{f.host} {f.bdf}' for f in nothing))}</p>" if nothing else "")
    return f"{STYLE}<h2 id='xp-fix-history'>Fix history</h2><p>{tally}.</p>{''.join(entries)}{rest}"


def fix_entry_html(fix: DeviceFix, compact: bool) -> str:
    changed = " class='xp-changed'"
    changes = "".join(f"<tr{'' if b == a else changed}><td>{shown(rule)}</td>"
                      f"<td class='xp-{b}'>{b or '—'}</td><td>→</td><td class='xp-{a}'>{a or '—'}</td></tr>"
                      for rule, b, a in fix.changes())
    after = "now (nothing applied)" if fix.outcome in (NOT_APPLIED, REFUSED) else "after --fix"
    table = (f"<table class='xp-matrix'><tr><th>rule</th><th>before --fix</th><th></th><th>{after}</th></tr>"
             f"{changes}</table>")
    plan = ""
    if not compact:  # the plan itself, with its diffs: open where it is all there is (a snapshot)
        opened = " open" if fix.outcome == NOT_APPLIED else ""
        plan = (f"<details{opened}><summary>the plan{' (not applied)' if opened else ''}, with its diffs</summary>"
                f"<pre class='xp-evidence'>{shown(fix.plan.render())}</pre></details>")
    return (f"<div class='xp-fix xp-fix-{fix.outcome.replace(' ', '-')}'>"
            f"<h3>{shown(fix.host)} · {shown(str(fix.bdf))} — <span class='xp-outcome'>{shown(fix.headline())}"
            f"</span></h3>{table}<p><b>Steps</b></p>{fix_steps_html(fix, why=compact)}{fix_undo_html(fix)}{plan}</div>")


class CompactTable:
    """Compact reports list only the tests that did not pass; the matrix above still shows every verdict.

    pytest-html puts a ~700-byte JSON row per test into the page: at 14,000 tests that alone passes 10 MB.
    """

    def __init__(self, run: RunResults, config: pytest.Config) -> None:
        self.run, self.config = run, config
        self.unlisted_passes = 0
        self._html_counts: object | None = None  # pytest-html's report data, found on the first left-out row

    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list) -> None:
        if not self.run.compact or report.when != "call" or ("status", "pass") not in report.user_properties:
            return
        cells.clear()  # pytest-html leaves a row out when its cells are emptied
        self.unlisted_passes += 1
        if self._html_counts is None:
            self._html_counts = next((getattr(p, "_report", None) for p in self.config.pluginmanager.get_plugins()
                                      if type(p).__module__.startswith("pytest_html")), None)
        if self._html_counts is not None:  # a left-out row is not counted: keep the header's "N Passed" true
            self._html_counts.outcomes = "passed"  # type: ignore[attr-defined]

    def pytest_html_results_table_html(self, report: pytest.TestReport, data: list) -> None:
        if self.run.compact and report.passed and data == ["No log output captured."]:
            data.clear()

    def note(self) -> str:
        return (f"<p><i>Compact report: the matrix shows every verdict; the table below lists only the tests that "
                f"did not pass ({self.unlisted_passes:,} passing tests are counted, not listed). Evidence and fix "
                "plans are in the compliance JSON (--report-detail=full puts them here).</i></p>")


def matrix_html(run: RunResults) -> str:
    rules = run.rule_ids()
    head = "".join(f"<th><a href='#{anchor(r)}'>{escape(r)}</a></th>" for r in rules)  # to the catalogue
    matrix_rows = run.rows()
    rows = []
    for host, bdf, verdicts in matrix_rows:
        if bdf is None:
            reason = host.error or "no device checked"
            rows.append(f"<tr><td>{shown(host.name)}</td><td colspan='{len(rules) + 1}' class='xp-error'>"
                        f"{shown(reason)}</td></tr>")
            continue
        cells = "".join(cell(verdicts.get(r), run.compact, run.status_label(host.name, bdf, verdicts[r])
                             if r in verdicts else None) for r in rules)
        rows.append(f"<tr><td>{shown(host.name)}</td><td>{shown(str(bdf))}</td>{cells}</tr>")
    table = f"<table class='xp-matrix'><tr><th>host</th><th>device</th>{head}</tr>{''.join(rows)}</table>"
    unreachable = sum(1 for host in run.hosts or [] if host.error)
    return (f"{STYLE}<h2>Compliance matrix</h2>{tally_html(matrix_rows, rules, len(run.hosts or []), unreachable)}"
            f"<details{'' if run.compact else ' open'}><summary>host × device × rule ({len(rows)} rows"
            f"{', click to open' if run.compact else ''})</summary>{table}</details>{html_section()}")


def tally_html(rows: list[tuple[HostResult, Bdf | None, dict[str, Verdict]]], rules: list[str], hosts: int,
               unreachable: int) -> str:
    """Per rule, how many devices came to each status: a fleet's overview before its 2,000 matrix rows."""
    statuses = [s.value for s in Status]
    counts = {rule: Counter[str]() for rule in rules}
    for _, _, verdicts in rows:
        for rule, verdict in verdicts.items():
            counts[rule][verdict.status.value] += 1
    head = "".join(f"<th>{s}</th>" for s in statuses)
    body = "".join(f"<tr><td><a href='#{anchor(rule)}'>{escape(rule)}</a></td>"
                   + "".join(f"<td class='xp-{s}'>{counts[rule][s]}</td>" if counts[rule][s] else "<td></td>"
                             for s in statuses) + "</tr>" for rule in rules)
    summary = f"{hosts} hosts" + (f", {unreachable} could not be checked" if unreachable else "")
    return f"<p>{summary}</p><table class='xp-matrix'><tr><th>rule</th>{head}</tr>{body}</table>"


def cell(verdict: Verdict | None, compact: bool = False, status: str | None = None) -> str:
    if verdict is None:
        return "<td>—</td>"
    status = status or verdict.status.value
    label = status + (f" ({verdict.state})" if verdict.state and verdict.state != "assignable" else "")
    css = "skip" if status == "waived" else verdict.status.value
    return f"<td class='xp-{css}'{cell_title(verdict, compact)}>{shown(label)}</td>"


def cell_title(verdict: Verdict, compact: bool) -> str:
    """The reason on hover; a compact report keeps it only where something is wrong, blocked cells name the rule."""
    reason = verdict.reason
    if compact:
        if verdict.status in (Status.PASS, Status.SKIP):
            return ""
        if verdict.status == Status.BLOCKED:
            reason = reason.split(":", 1)[0]
    return f" title='{shown(reason, quote=True)}'"
