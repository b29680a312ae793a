"""The terminal report, with Rich: the host x device x rule matrix (or, when it would not fit, a line per host),
"N of M hosts compliant", and after --fix what the fix did per device."""

from __future__ import annotations

import io
import shutil
from collections import Counter

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from xenpass.parse.bdf import Bdf
from xenpass.report.fixes import APPLIED, FAILED, NOT_APPLIED, NOTHING, REFUSED, DeviceFix, fix_history, plural
from xenpass.report.results import RunResults
from xenpass.rules.base import Status
from xenpass.targets import HostResult
from xenpass.text import visible

COLOURS = {"pass": "green", "fail": "red", "error": "red", "warn": "yellow", "blocked": "dim", "skip": "dim"}


def print_matrix(run: RunResults, terminalreporter, width: int | None = None) -> None:
    """The host x device x rule matrix when it fits the terminal's width, else one line per host: its verdict
    and failing rules. Always ends with "N of M hosts compliant"."""
    width = width or terminal_width(terminalreporter)
    buffer = io.StringIO()
    # colours exactly when pytest's own output has them (a tty, --color=yes/no, NO_COLOR, PY_COLORS)
    colour = bool(getattr(terminalreporter, "hasmarkup", terminalreporter.isatty))
    console = Console(file=buffer, force_terminal=colour, no_color=not colour, width=width)
    verdicts = run.host_verdicts()
    table = matrix_table(run)
    needed = table_width(table)
    if needed <= width:
        console.print(table)
        for host in run.hosts or []:  # said under the table: a long error in a cell would widen a rule's column
            if host.error or not run.reported.get(host.name):
                console.print(Text(visible(f"{host.name}: {host.error or 'no device checked'}"), style="red"))
    else:
        console.print(Text(f"Xen PCI passthrough compliance, per host (the host × device × rule matrix needs "
                           f"{needed} columns, the terminal has {width}; it is in the HTML report):", style="bold"))
        for line in host_lines(run, verdicts):
            console.print(line)
    for line in compliant_lines(verdicts):
        console.print(line)
    terminalreporter.write(buffer.getvalue())


def terminal_width(terminalreporter) -> int:
    """pytest's own idea of the width (COLUMNS, else the terminal's, else 80)."""
    width = getattr(getattr(terminalreporter, "_tw", None), "fullwidth", None)
    return width if isinstance(width, int) and width > 0 else shutil.get_terminal_size().columns


def matrix_table(run: RunResults) -> Table:
    rules = run.rule_ids()
    table = Table(title="Xen PCI passthrough compliance", show_lines=False)
    table.add_column("host")
    table.add_column("device")
    table.add_column("now")
    table.add_column("after reboot")
    for rule in rules:
        table.add_column(rule)
    for host, bdf, verdicts in run.rows():
        # Text, not markup: a name or error may hold brackets ("node03 [old]", "[::1]", "rich[/bold]"), and
        # 14,000 cells parse faster as Text; `visible`: an ESC sequence in host text must not reach the terminal
        name = Text(visible(host.name))
        if bdf is None:  # why: under the table
            table.add_row(name, Text("-"), Text("-"), Text("-"),
                          Text("unreachable" if host.error else "no device", style="red"))
            continue
        cells = []
        for rule in rules:
            v = verdicts.get(rule)
            label = run.status_label(host.name, bdf, v) if v else "-"
            style = "yellow" if label == "waived" else COLOURS[v.status.value] if v else ""
            cells.append(Text(label, style=style))
        now, after = boot_cells(run, host, bdf)
        table.add_row(name, Text(str(bdf)), now, after, *cells)
    return table


def boot_cells(run: RunResults, host: HostResult, bdf: Bdf) -> tuple[Text, Text]:
    """The driver now, and after the next boot as the boot model predicts it ("pending" when they differ)."""
    states = run.next_boot(host, bdf)
    if states is None:
        return Text("-"), Text("-")
    after = states["after_reboot"]
    label = "unknown" if not after["known"] else after["driver"] or "none"
    if states["pending_reboot"]:
        return Text(visible(states["now"] or "none")), Text(visible(label) + " (pending reboot)", style="yellow")
    return Text(visible(states["now"] or "none")), Text(visible(label), style="dim" if label == "unknown" else "")


def boot_text(run: RunResults, host: HostResult, bdf: Bdf) -> str:
    now, after = boot_cells(run, host, bdf)
    return f" (now {now.plain}, after reboot {after.plain})" if now.plain != "-" else ""


def text(cell: object) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)  # Rich pads a short row with ""


def table_width(table: Table) -> int:
    """The columns a table of one-line cells needs unwrapped: each column's widest cell and its padding, and
    the borders. Counted here: Rich's own measurement costs a second per thousand rows."""
    widths = [max([cell_len(str(column.header)), *(cell_len(text(cell)) for cell in column.cells)])
              for column in table.columns]
    return sum(widths) + 2 * len(widths) + len(widths) + 1


VERDICT_COLOURS = {"compliant": "green", "waived": "yellow", "non-compliant": "red", "unreachable": "magenta",
                   "error": "magenta", "no-devices": "magenta"}


def host_lines(run: RunResults, verdicts: dict[str, tuple[str, dict[Bdf, str]]]) -> list[Text]:
    """Per host: its verdict; under it, per device that is not compliant, what failed (or why the host could not
    be checked). Plain lines: they wrap at any width, where a table's columns would be squeezed letter by letter."""
    lines = []
    for host in run.hosts or []:
        verdict, devices = verdicts[host.name]
        line = Text(visible(host.name, keep_newlines=False) + ": ")
        line.append(verdict, style=VERDICT_COLOURS[verdict])
        lines.append(line)
        if host.error or not devices:
            lines.append(Text("  " + visible(host.error or "no device checked", keep_newlines=False), style="red"))
            continue
        lines += [Text("  " + device_line(run, host.name, bdf) + boot_text(run, host, bdf))
                  for bdf, v in devices.items() if v != "compliant"]
    return lines


def device_line(run: RunResults, host: str, bdf: Bdf) -> str:
    """One device's failing (and waived) rules: "0000:01:00.0: native-driver-blacklisted (blocks 1)"."""
    rules = run.reported.get(host, {}).get(bdf, {})
    labels = {rule: run.status_label(host, bdf, v) for rule, v in rules.items()}
    failing = [f"{rule} ({label})" if label not in ("fail", "error") else rule
               for rule, label in labels.items() if rules[rule].status in (Status.FAIL, Status.ERROR)
               and label != "waived"]
    waived = [rule for rule, label in labels.items() if label == "waived"]
    blocked = sum(1 for v in rules.values() if v.status == Status.BLOCKED)
    parts = [", ".join(failing)] if failing else []
    if blocked:
        parts.append(f"{blocked} blocked")
    if waived:
        parts.append("waived: " + ", ".join(waived))
    return f"{bdf}: {'; '.join(parts) or 'all pass'}"


def compliant_lines(verdicts: dict[str, tuple[str, dict[Bdf, str]]]) -> list[Text]:
    """What the hosts came to, then, last, "N of M hosts compliant" (waived hosts count: the gate's exit 0)."""
    counts = Counter(v for v, _ in verdicts.values())
    total = len(verdicts)
    good = counts["compliant"] + counts["waived"]
    lines = []
    if good != total or counts["waived"]:
        lines.append(Text("hosts: " + ", ".join(f"{counts[v]} {v}" for v in VERDICT_COLOURS if counts[v])))
    lines.append(Text(f"{good} of {total} host{plural(total)} compliant", style="bold green" if good == total
                      else "bold red"))
    return lines


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
