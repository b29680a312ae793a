"""pytest-html extras: each test's reason and evidence, and the host x device x rule matrix on top."""

from __future__ import annotations

from html import escape

from pytest_html import extras

from xenpass.fix.base import Plan
from xenpass.report.results import RunResults
from xenpass.rules.base import Verdict

STYLE = """<style>
.xp-matrix{border-collapse:collapse;margin:8px 0;font-size:13px}
.xp-matrix th,.xp-matrix td{border:1px solid #ccc;padding:3px 8px;text-align:left}
.xp-pass{background:#d8f5d0}.xp-fail,.xp-error{background:#f9d0d0}.xp-warn{background:#fbefc4}
.xp-blocked,.xp-skip{background:#e6e6e6}
.xp-evidence{background:#f6f6f6;border-left:3px solid #999;padding:4px 8px;white-space:pre-wrap;font-size:12px}
</style>"""


def verdict_extras(verdict: Verdict, plan: Plan | None = None) -> list:
    parts = [f"<p><b>{escape(verdict.rule)}: {verdict.status.value.upper()}</b>"
             f"{' (' + escape(verdict.state) + ')' if verdict.state else ''} — {escape(verdict.reason)}</p>"]
    for item in verdict.evidence:
        parts.append(f"<div><i>{escape(item.source)}</i><pre class='xp-evidence'>{escape(item.text)}</pre></div>")
    if plan is not None and not plan.empty:
        parts.append(f"<div><b>Fix plan</b> (apply with <code>--fix</code>)<pre class='xp-evidence'>"
                     f"{escape(plan.render())}</pre></div>")
    return [extras.html("".join(parts))]


def matrix_html(run: RunResults) -> str:
    rules = run.rule_ids()
    head = "".join(f"<th>{escape(r)}</th>" for r in rules)
    rows = []
    for host, bdf, verdicts in run.rows():
        if bdf is None:
            reason = host.error or "no device checked"
            rows.append(f"<tr><td>{escape(host.name)}</td><td colspan='{len(rules) + 1}' class='xp-error'>"
                        f"{escape(reason)}</td></tr>")
            continue
        cells = "".join(cell(verdicts.get(r)) for r in rules)
        rows.append(f"<tr><td>{escape(host.name)}</td><td>{escape(str(bdf))}</td>{cells}</tr>")
    return (f"{STYLE}<h2>Compliance matrix</h2><table class='xp-matrix'><tr><th>host</th><th>device</th>{head}</tr>"
            f"{''.join(rows)}</table>")


def cell(verdict: Verdict | None) -> str:
    if verdict is None:
        return "<td>—</td>"
    label = verdict.status.value + (f" ({verdict.state})" if verdict.state and verdict.state != "assignable" else "")
    return f"<td class='xp-{verdict.status.value}' title='{escape(verdict.reason, quote=True)}'>{escape(label)}</td>"
