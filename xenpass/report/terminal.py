"""The host x device x rule matrix in the terminal, with Rich."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from xenpass.report.results import RunResults

COLOURS = {"pass": "green", "fail": "red", "error": "red", "warn": "yellow", "blocked": "dim", "skip": "dim"}


def print_matrix(run: RunResults, terminalreporter) -> None:
    rules = run.rule_ids()
    table = Table(title="Xen PCI passthrough compliance", show_lines=False)
    table.add_column("host")
    table.add_column("device")
    for rule in rules:
        table.add_column(rule)
    for host, bdf, verdicts in run.rows():
        if bdf is None:
            table.add_row(host.name, "-", f"[red]{host.error or 'no device checked'}[/red]")
            continue
        cells = []
        for rule in rules:
            v = verdicts.get(rule)
            cells.append(f"[{COLOURS[v.status.value]}]{v.status.value}[/]" if v else "-")
        table.add_row(host.name, str(bdf), *cells)
    buffer = io.StringIO()
    Console(file=buffer, force_terminal=terminalreporter.isatty, width=max(120, 24 + 20 * len(rules))).print(table)
    terminalreporter.write(buffer.getvalue())
