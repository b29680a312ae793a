"""The host x device x rule matrix in the terminal, with Rich."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table
from rich.text import Text

from xenpass.report.fixes import APPLIED, FAILED, NOT_APPLIED, NOTHING, REFUSED, DeviceFix, fix_history, plural
from xenpass.report.results import RunResults
from xenpass.text import visible

COLOURS = {"pass": "green", "fail": "red", "error": "red", "warn": "yellow", "blocked": "dim", "skip": "dim"}


def print_matrix(run: RunResults, terminalreporter) -> None:
    rules = run.rule_ids()
    table = Table(title="Xen PCI passthrough compliance", show_lines=False)
    table.add_column("host")
    table.add_column("device")
    for rule in rules:
        table.add_column(rule)
    for host, bdf, verdicts in run.rows():
        # Text, not markup: a name or error may hold brackets ("node03 [old]", "[::1]", "rich[/bold]"), and
        # 14,000 cells parse faster as Text; `visible`: an ESC sequence in host text must not reach the terminal
        name = Text(visible(host.name))
        if bdf is None:
            table.add_row(name, Text("-"), Text(visible(host.error or "no device checked"), style="red"))
            continue
        cells = []
        for rule in rules:
            v = verdicts.get(rule)
            label = run.status_label(host.name, bdf, v) if v else "-"
            style = "yellow" if label == "waived" else COLOURS[v.status.value] if v else ""
            cells.append(Text(label, style=style))
        table.add_row(name, Text(str(bdf)), *cells)
    buffer = io.StringIO()
    # colours exactly when pytest's own output has them (a tty, --color=yes/no, NO_COLOR, PY_COLORS)
    colour = bool(getattr(terminalreporter, "hasmarkup", terminalreporter.isatty))
    Console(file=buffer, force_terminal=colour, no_color=not colour,
            width=max(120, 24 + 20 * len(rules))).print(table)
    terminalreporter.write(buffer.getvalue())


FIX_COLOURS = {APPLIED: "green", FAILED: "red", NOT_APPLIED: "yellow", REFUSED: "yellow", NOTHING: "dim"}
DETAILED = 10  # devices: past this, a device that was fixed gets its headline only (failures keep every line)


def print_fix_summary(run: RunResults, terminalreporter) -> None:
    """After --fix, per device: applied N steps / failed at step K (with its rollback) / not applied / nothing to fix.

    Plain lines, every host string `visible` on one line; never wrapped (a rollback command is copied from here).
    """
    history = fix_history(run)
    planned = [f for f in history if f.outcome != NOTHING]
    nothing = [f for f in history if f.outcome == NOTHING]
    lines: list[Text] = []
    if not planned:
        unchecked = sum(1 for h in run.hosts or [] if h.error)
        tail = f" ({len(history)} device{plural(len(history))} checked" + (
            f", {unchecked} host{plural(unchecked)} could not be checked)" if unchecked else ")")
        lines.append(Text("xenpass --fix: nothing to fix" + (tail if history or unchecked else ""), style="green"))
    else:
        lines.append(Text("xenpass --fix, per device:", style="bold"))
        for fix in planned:
            lines.append(Text(one_line(f"  {fix.host} {fix.bdf}: {fix.headline()}"), style=FIX_COLOURS[fix.outcome]))
            if fix.outcome in (FAILED, NOT_APPLIED) or (fix.outcome == APPLIED and len(planned) <= DETAILED):
                lines += [Text(one_line(f"      {line}")) for line in fix_detail(fix)]
        if len(nothing) <= DETAILED:
            lines += [Text(one_line(f"  {f.host} {f.bdf}: {NOTHING}"), style="dim") for f in nothing]
        else:
            lines.append(Text(f"  {len(nothing)} other devices: {NOTHING}", style="dim"))
    buffer = io.StringIO()
    colour = bool(getattr(terminalreporter, "hasmarkup", terminalreporter.isatty))
    console = Console(file=buffer, force_terminal=colour, no_color=not colour, width=200)
    for line in lines:
        console.print(line, soft_wrap=True)
    terminalreporter.write(buffer.getvalue())


def one_line(text: str) -> str:
    return visible(text, keep_newlines=False)


def fix_detail(fix: DeviceFix) -> list[str]:
    """Under a device's headline: which rules moved, the steps not run, every backup, the rollback in order."""
    moved = [f"{rule} {b}→{a}" for rule, b, a in fix.changes() if b != a and b and a]
    lines = [f"before → after: {', '.join(moved)}"] if moved else []
    if fix.outcome == NOT_APPLIED:
        lines += [f"planned: {s.number}. {s.text}" for s in fix.steps() if s.state == "planned"]
    if fix.outcome == FAILED:
        lines += [f"not run: {s.number}. {s.text}" for s in fix.steps() if s.state == "not run"]
    lines += [f"backup: {b}" for b in fix.backups]
    lines += [f"rollback {n}: {command}" for n, command in enumerate(fix.rollback, start=1)]
    return lines
