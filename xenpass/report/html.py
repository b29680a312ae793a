"""pytest-html extras: each test's reason and evidence, and the host x device x rule matrix on top."""

from __future__ import annotations

from collections import Counter
from html import escape

import pytest
from pytest_html import extras

from xenpass.fix.base import Plan
from xenpass.parse.bdf import Bdf
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
</style>"""


def shown(text: str, quote: bool = False) -> str:
    """Host text as HTML text: controls and undecodable bytes made visible first, then escaped (never markup)."""
    return escape(visible(text), quote=quote)


def verdict_extras(verdict: Verdict, plan: Plan | None = None) -> list:
    parts = [f"<p><b>{shown(verdict.rule)}: {verdict.status.value.upper()}</b>"
             f"{' (' + shown(verdict.state) + ')' if verdict.state else ''} — {shown(verdict.reason)}</p>"]
    for item in verdict.evidence:
        parts.append(f"<div><i>{shown(item.source)}</i><pre class='xp-evidence'>{shown(item.text)}</pre></div>")
    if plan is not None and not plan.empty:
        parts.append(f"<div><b>Fix plan</b> (apply with <code>--fix</code>)<pre class='xp-evidence'>"
                     f"{shown(plan.render())}</pre></div>")
    return [extras.html("".join(parts))]


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
    head = "".join(f"<th>{escape(r)}</th>" for r in rules)
    matrix_rows = run.rows()
    rows = []
    for host, bdf, verdicts in matrix_rows:
        if bdf is None:
            reason = host.error or "no device checked"
            rows.append(f"<tr><td>{shown(host.name)}</td><td colspan='{len(rules) + 1}' class='xp-error'>"
                        f"{shown(reason)}</td></tr>")
            continue
        cells = "".join(cell(verdicts.get(r), run.compact) for r in rules)
        rows.append(f"<tr><td>{shown(host.name)}</td><td>{shown(str(bdf))}</td>{cells}</tr>")
    table = f"<table class='xp-matrix'><tr><th>host</th><th>device</th>{head}</tr>{''.join(rows)}</table>"
    unreachable = sum(1 for host in run.hosts or [] if host.error)
    return (f"{STYLE}<h2>Compliance matrix</h2>{tally_html(matrix_rows, rules, len(run.hosts or []), unreachable)}"
            f"<details{'' if run.compact else ' open'}><summary>host × device × rule ({len(rows)} rows"
            f"{', click to open' if run.compact else ''})</summary>{table}</details>")


def tally_html(rows: list[tuple[HostResult, Bdf | None, dict[str, Verdict]]], rules: list[str], hosts: int,
               unreachable: int) -> str:
    """Per rule, how many devices came to each status: a fleet's overview before its 2,000 matrix rows."""
    statuses = [s.value for s in Status]
    counts = {rule: Counter[str]() for rule in rules}
    for _, _, verdicts in rows:
        for rule, verdict in verdicts.items():
            counts[rule][verdict.status.value] += 1
    head = "".join(f"<th>{s}</th>" for s in statuses)
    body = "".join(f"<tr><td>{escape(rule)}</td>"
                   + "".join(f"<td class='xp-{s}'>{counts[rule][s]}</td>" if counts[rule][s] else "<td></td>"
                             for s in statuses) + "</tr>" for rule in rules)
    summary = f"{hosts} hosts" + (f", {unreachable} could not be checked" if unreachable else "")
    return f"<p>{summary}</p><table class='xp-matrix'><tr><th>rule</th>{head}</tr>{body}</table>"


def cell(verdict: Verdict | None, compact: bool = False) -> str:
    if verdict is None:
        return "<td>—</td>"
    label = verdict.status.value + (f" ({verdict.state})" if verdict.state and verdict.state != "assignable" else "")
    return f"<td class='xp-{verdict.status.value}'{cell_title(verdict, compact)}>{shown(label)}</td>"


def cell_title(verdict: Verdict, compact: bool) -> str:
    """The reason on hover; a compact report keeps it only where something is wrong, blocked cells name the rule."""
    reason = verdict.reason
    if compact:
        if verdict.status in (Status.PASS, Status.SKIP):
            return ""
        if verdict.status == Status.BLOCKED:
            reason = reason.split(":", 1)[0]
    return f" title='{shown(reason, quote=True)}'"
