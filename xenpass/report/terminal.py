"""The host x device x rule matrix in the terminal, with Rich."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table
from rich.text import Text

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
            cells.append(Text(v.status.value, style=COLOURS[v.status.value]) if v else Text("-"))
        table.add_row(name, Text(str(bdf)), *cells)
    buffer = io.StringIO()
    # colours exactly when pytest's own output has them (a tty, --color=yes/no, NO_COLOR, PY_COLORS)
    colour = bool(getattr(terminalreporter, "hasmarkup", terminalreporter.isatty))
    Console(file=buffer, force_terminal=colour, no_color=not colour,
            width=max(120, 24 + 20 * len(rules))).print(table)
    terminalreporter.write(buffer.getvalue())
