"""The terminal matrix: host errors are shown as they are, whatever characters they hold."""

from __future__ import annotations

from tests.support.reporter import Reporter
from xenpass.report.results import RunResults
from xenpass.report.terminal import print_matrix
from xenpass.targets import HostResult, Target


def test_host_error_with_brackets_is_printed_verbatim():
    error = "ssh: Could not resolve hostname [/etc/hosts] for [::1]"
    run = RunResults(hosts=[HostResult(Target(name="node09"), error=error)])
    reporter = Reporter()
    print_matrix(run, reporter)
    assert "node09" in reporter.text
    assert "[/etc/hosts]" in reporter.text and "[::1]" in reporter.text
