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


# -- fitting the terminal ----------------------------------------------------------------------------------------

def demo_run() -> RunResults:
    """The seed's node03 broken and fixed, plus a host that could not be checked, judged as the checks do."""
    from pathlib import Path

    from xenpass.engine import evaluate
    from xenpass.facts.host import HostFacts
    from xenpass.facts.raw import load_snapshot
    from xenpass.parse.bdf import parse_bdf
    from xenpass.rules.base import Context

    fixtures = Path(__file__).resolve().parents[2] / "fixtures"
    bdf = parse_bdf("01:00.0")
    hosts = [HostResult(Target(name=name), facts=HostFacts(load_snapshot(fixtures / f"{name}.json")), devices=[bdf])
             for name in ("node03-broken-mpt2sas-alias", "node03-fixed")]
    hosts.append(HostResult(Target(name="node09"), error="ssh: connect to host node09 port 22: Connection refused"))
    run = RunResults(hosts=hosts)
    for host in hosts[:2]:
        for verdict in evaluate(host.facts, bdf, Context()).values():
            run.record(host.name, bdf, verdict)
    return run


def printed(width: int) -> list[str]:
    reporter = Reporter()
    print_matrix(demo_run(), reporter, width=width)
    return reporter.text.rstrip("\n").split("\n")


def test_a_wide_terminal_gets_the_whole_matrix():
    lines = printed(200)
    assert all(len(line) <= 200 for line in lines)
    header = next(line for line in lines if "host" in line and "device" in line)
    assert "native-driver-blacklisted" in header and "initramfs-current" in header  # no column cut short
    assert any("node03-broken-mpt2sas-alias" in line and "fail" in line and "blocked" in line for line in lines)
    assert "now" in header and "after reboot" in header  # the device's driver now and after the next boot
    assert [line.split()[5:8:2] for line in lines if "0000:01:00.0" in line] == [["mpt3sas", "mpt3sas"],
                                                                                 ["pciback", "pciback"]]
    assert lines[-2:] == ["hosts: 1 compliant, 1 non-compliant, 1 unreachable", "1 of 3 hosts compliant"]


def test_a_narrow_terminal_gets_each_hosts_verdict_and_failing_rules():
    for width in (80, 40):
        lines = printed(width)
        assert all(len(line) <= width for line in lines), width
        text = "\n".join(lines)
        assert "…" not in text and "┃" not in text  # not a squeezed matrix: lines that wrap
        flat = " ".join(text.split())
        assert "the host × device × rule matrix needs 189 columns, the terminal has " + str(width) in flat
        assert "node03-broken-mpt2sas-alias: non-compliant 0000:01:00.0: native-driver-blacklisted, driver-pciback; " \
               "2 blocked (now mpt3sas, after reboot mpt3sas) node03-fixed: compliant node09: unreachable ssh: " \
               "connect to host node09 port 22: " \
               "Connection refused hosts: 1 compliant, 1 non-compliant, 1 unreachable 1 of 3 hosts compliant" in flat
        assert lines[-1] == "1 of 3 hosts compliant"


def test_the_width_is_the_terminals(monkeypatch):
    monkeypatch.setenv("COLUMNS", "70")
    reporter = Reporter()
    print_matrix(demo_run(), reporter)
    assert max(len(line) for line in reporter.text.splitlines()) <= 70
    assert "compliance, per host" in reporter.text


def test_all_compliant_says_so_last():
    run = demo_run()
    run.hosts = run.hosts[1:2]
    reporter = Reporter()
    print_matrix(run, reporter, width=200)
    assert reporter.text.rstrip("\n").split("\n")[-1] == "1 of 1 host compliant"


def test_a_pending_reboot_is_shown_in_the_matrix():
    from tests.rules.test_boot_outcome import BLACKLIST, LAB, LOAD, OPTIONS, in_image, lab
    from xenpass.engine import evaluate
    from xenpass.rules.base import Context

    facts = lab(OPTIONS | LOAD | BLACKLIST, in_image(OPTIONS | BLACKLIST))
    host = HostResult(Target(name="dom0"), facts=facts, devices=[LAB])
    run = RunResults(hosts=[host])
    for verdict in evaluate(facts, LAB, Context()).values():
        run.record(host.name, LAB, verdict)
    reporter = Reporter()
    print_matrix(run, reporter, width=250)
    assert any("mptsas" in line and "pciback (pending reboot)" in line for line in reporter.text.splitlines())
    reporter = Reporter()
    print_matrix(run, reporter, width=60)
    assert "after reboot pciback (pending reboot)" in " ".join(reporter.text.split())
