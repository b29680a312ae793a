"""Safe output: host-controlled text (names, file contents, errors) is data in every report, never markup.

A host named `<script>alert(1)</script>`, `node03 [old]` or `rich[/bold]`, or a file holding ESC sequences,
C1 controls, NUL or undecodable bytes, must not become HTML, Rich markup or raw terminal control codes,
must not break the compliance JSON (valid UTF-8, no lone surrogates), and must not stop any report.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.support.reporter import Reporter
from xenpass.facts.raw import load_snapshot
from xenpass.parse.bdf import parse_bdf
from xenpass.plugin import RESULTS, pytest_terminal_summary
from xenpass.report import terminal
from xenpass.report.html import matrix_html, verdict_extras
from xenpass.report.results import RunResults
from xenpass.report.terminal import print_matrix
from xenpass.rules.base import Evidence, Status, Verdict
from xenpass.targets import HostResult, Target
from xenpass.text import from_bytes, safe_id, visible

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURES = ROOT / "fixtures"
BROKEN = FIXTURES / "node03-broken-mpt2sas-alias.json"
FIXED = FIXTURES / "node03-fixed.json"

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
# everything a host file may throw at a report: ESC sequences (clear screen, set title), C1 CSI, NUL,
# an undecodable byte (a lone surrogate in str), Rich markup, HTML, a bidi override
HOSTILE = (f"\x1b[2J\x1b]0;pwned\x07{SCRIPT}{IMG}\x9b31m\x00" + from_bytes(b"\xe9")
           + "[bold]x[/bold] [/bold] a'b\"c&d \u202eevil")
HOSTILE_NAMES = [SCRIPT, IMG, "node03 [old]", "rich[/bold]", "[bold]", "esc\x1b[31mred\x1b[0m",
                 "nul\x00c1\x9b", "lat" + from_bytes(b"\xe9"), HOSTILE]

# a control character, C1 control or lone surrogate: must never reach a terminal, page or JSON raw
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
ID_CHARS = re.compile(r"[A-Za-z0-9._:@\[\]/%_-]*")

FRAGMENTS = ["\x1b", "\x1b[2J", "\x9b", "\x00", "\r", "\n", "\t", "\x7f", from_bytes(b"\xe9"), "\udcff", "\ud800",
             "[", "]", "[bold]", "[/bold]", "[/]", "\\", "<", ">", "&", "'", '"', SCRIPT, "%", "%3C", "\u202e",
             "\u2028", " ", "-", "0000:01:00.0"]
host_names = st.lists(st.one_of(st.characters(), st.sampled_from(FRAGMENTS)), max_size=12).map("".join)


# -- helpers ---------------------------------------------------------------------------------------------

class Markup(HTMLParser):
    """The tags, attributes and text a browser would see in an HTML fragment."""

    def __init__(self, fragment: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attrs: set[str] = set()
        self.data: list[str] = []
        self.feed(fragment)
        self.close()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.add(tag)
        self.attrs.update(name for name, _ in attrs)

    def handle_data(self, data: str) -> None:
        self.data.append(data)

    @property
    def text(self) -> str:
        return "".join(self.data)


def hostile_run(name: str, text: str = HOSTILE) -> RunResults:
    """A host with hostile name, reasons and evidence, and an unreachable one with a hostile error."""
    bdf = parse_bdf("01:00.0")
    up = HostResult(Target(name=name), devices=[bdf])
    down = HostResult(Target(name=name + "~down"), error=f"unreachable: ssh: {text}")
    run = RunResults(hosts=[up, down], collect_seconds=0.5)
    run.record(name, bdf, Verdict("hide-entry", Status.PASS, f"hidden by {text}"))
    run.record(name, bdf, Verdict("native-driver-blacklisted", Status.FAIL, f"`blacklist {text}` has no effect",
                                  (Evidence(f"/etc/modprobe.d/{text}.conf", f"8: blacklist mpt2sas {text}"),)))
    run.record(name, bdf, Verdict("initramfs-current", Status.BLOCKED, f"blocked by native-driver-blacklisted: {text}"))
    run.record(name, bdf, Verdict("assignable", Status.PASS, text, state=text))
    return run


def strings(value: object):
    """Every str in a JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def assert_terminal_safe(text: str) -> None:
    text.encode("utf-8")  # no lone surrogate: would raise
    assert not RAW_CONTROL.search(text.replace("\n", "")), repr(RAW_CONTROL.search(text.replace("\n", "")))


def assert_json_safe(data: dict) -> str:
    text = json.dumps(data)
    text.encode("utf-8")
    for value in strings(json.loads(text)):
        assert not RAW_CONTROL.search(value.replace("\n", "").replace("\t", "")), repr(value)
    return text


# -- the terminal matrix -----------------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(host_names, host_names)
@example("rich[/bold]", "[/bold]")
@example("node03 [old]", HOSTILE)
def test_terminal_matrix_shows_any_host_text_as_plain_visible_text(name, text):
    reporter = Reporter()
    print_matrix(hostile_run(name, text), reporter)  # no MarkupError
    assert_terminal_safe(reporter.text)


def test_terminal_matrix_keeps_brackets_and_shows_escapes():
    for name in HOSTILE_NAMES:
        reporter = Reporter()
        print_matrix(hostile_run(name), reporter)
        assert_terminal_safe(reporter.text)
    reporter = Reporter()
    print_matrix(hostile_run("node03 [old]"), reporter)
    assert "node03 [old]" in reporter.text
    reporter = Reporter()
    print_matrix(hostile_run("esc\x1b[31m"), reporter)
    assert "esc\\x1b[31m" in reporter.text


def test_terminal_matrix_on_a_tty_has_only_richs_own_colours():
    reporter = Reporter(isatty=True)
    print_matrix(hostile_run("esc\x1b[2J"), reporter)
    assert "\x1b[2J" not in reporter.text and "\x1b]0" not in reporter.text and "\x9b" not in reporter.text
    assert "esc\\x1b[2J" in reporter.text


# -- HTML ----------------------------------------------------------------------------------------------------

MATRIX_TAGS = {"style", "h2", "p", "table", "tr", "th", "td", "details", "summary", "div",
               "a", "dl", "dt", "dd", "code", "span", "b", "ul", "li"}  # the rule catalogue and links to it
MATRIX_ATTRS = {"class", "colspan", "title", "open", "href", "id"}


@settings(max_examples=150, deadline=None)
@given(host_names, host_names, st.booleans())
@example(SCRIPT, IMG, False)
def test_matrix_html_holds_host_text_as_text_only(name, text, compact):
    run = hostile_run(name, text)
    run.compact = compact
    page = matrix_html(run)
    page.encode("utf-8")
    seen = Markup(page)
    assert seen.tags <= MATRIX_TAGS and seen.attrs <= MATRIX_ATTRS
    assert visible(name) in seen.text
    if compact:  # a full report says the error once, under "What failed" (report_html), and links there
        assert visible(f"unreachable: ssh: {text}") in seen.text
    assert not RAW_CONTROL.search(page.replace("\n", ""))


@settings(max_examples=150, deadline=None)
@given(host_names)
@example(HOSTILE)
def test_verdict_extras_hold_host_text_as_text_only(text):
    # a passing rule's row shows its reason and evidence (a failure's row links to "What failed": said once)
    verdict = Verdict("native-driver-blacklisted", Status.PASS, f"reason {text}",
                      (Evidence(f"/etc/{text}", f"8: {text}"),), state=text)
    [extra] = verdict_extras(verdict)
    fragment = extra["content"]
    fragment.encode("utf-8")
    seen = Markup(fragment)
    assert seen.tags <= {"p", "b", "div", "i", "pre", "details", "summary"} and seen.attrs <= {"class"}
    assert visible(f"8: {text}") in seen.text and visible(f"reason {text}") in seen.text
    assert not RAW_CONTROL.search(fragment.replace("\n", ""))


def test_matrix_html_has_no_hostile_markup():
    for name in HOSTILE_NAMES:
        page = matrix_html(hostile_run(name))
        assert "<script" not in page and "<img" not in page


# -- the compliance JSON -------------------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(host_names, host_names)
@example("lat" + from_bytes(b"\xe9"), HOSTILE)
def test_compliance_json_is_utf8_without_surrogates_or_controls(name, text):
    data = hostile_run(name, text).to_json()
    assert_json_safe(data)
    hosts = data["hosts"]
    assert hosts[0]["host"] == visible(name) and hosts[1]["error"] == visible(f"unreachable: ssh: {text}")
    rule = hosts[0]["devices"][0]["rules"][1]
    assert rule["reason"] == visible(f"`blacklist {text}` has no effect")
    assert rule["evidence"][0]["text"] == visible(f"8: blacklist mpt2sas {text}")


def test_compliance_json_file_is_strict_utf8(tmp_path):
    written = hostile_run(HOSTILE).write_json(str(tmp_path / "c.json"))
    data = json.loads(written.read_bytes().decode("utf-8", "strict"))
    assert data["hosts"][0]["host"] == visible(HOSTILE)


# -- test ids --------------------------------------------------------------------------------------------------

@settings(max_examples=500, deadline=None)
@given(host_names)
@example(SCRIPT)
@example("node03 [old]")
@example("lat" + from_bytes(b"\xe9"))
def test_safe_id_is_harmless_and_reversible(name):
    shown = safe_id(name)
    assert ID_CHARS.fullmatch(shown), shown
    assert unquote(shown, errors="surrogatepass") == name  # reversible, so distinct names get distinct ids
    assert safe_id(name) == shown  # stable


@settings(max_examples=300, deadline=None)
@given(host_names, host_names)
@example("a b", "a%20b")
@example("é", from_bytes("é".encode()))
@example(from_bytes(b"\xc3\xa9"), "\udcc3\udca9")
def test_safe_id_is_unique(a, b):
    assert (safe_id(a) == safe_id(b)) == (a == b)


def test_safe_id_keeps_ordinary_names_readable():
    assert safe_id("node03.example.com") == "node03.example.com"
    assert safe_id("root@node03:22") == "root@node03:22"
    assert safe_id("web_01") == "web_01"
    assert safe_id("node03 [old]") == "node03%20[old]"
    assert safe_id(SCRIPT) == "%3Cscript%3Ealert%281%29%3C/script%3E"


# -- end to end: `python -m pytest checks/` the way users run it -------------------------------------------

def hostile_snapshot(path: Path) -> Path:
    """The broken node03, its files and command output laced with hostile text."""
    raw = load_snapshot(BROKEN)
    raw.files["/etc/modprobe.d/blacklist.conf"].content = (
        f"# {HOSTILE}\nblacklist evbug\nblacklist mpt2sas {HOSTILE}\n")
    raw.commands["lspci -k"].output = raw.commands["lspci -k"].output.replace(
        "Subsystem: ", f"Subsystem: {HOSTILE} ", 1)
    path.write_text(raw.to_json() + "\n")
    return path


def run_checks(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, str, str]:
    out = tmp_path / "c.json"
    cmd = [sys.executable, "-m", "pytest", "checks/", "-q", "--tb=line", "-rA", "--color=no",
           f"--compliance-json={out}", f"--html={tmp_path / 'r.html'}", *args]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200", "PY_COLORS": "0"})
    stdout = done.stdout.decode("utf-8", "strict")  # nothing undecodable reaches the terminal
    stderr = done.stderr.decode("utf-8", "strict")
    return done, stdout, stderr


def report_strings(page: str) -> list[str]:
    """What pytest-html's page shows: its own markup plus every string of the JSON blob its script renders."""
    blob = re.search(r'data-jsonblob="(.*?)"', page, re.S)
    assert blob, "no pytest-html data in the report"
    return [page, *strings(json.loads(html.unescape(blob.group(1))))]


ROW_TAGS = {"td", "a", "p", "b", "div", "i", "pre", "code", "span", "details", "summary"}  # cells, log, extras


def assert_report_safe(tmp_path: Path) -> dict:
    page = (tmp_path / "r.html").read_bytes().decode("utf-8", "strict")
    shown = report_strings(page)
    for text in shown:
        for bad in ("<script>alert", "<img src=x", "<b onmouseover", "\x1b", "\x9b"):
            assert bad not in text, (bad, text[:300])
    blob = json.loads(html.unescape(re.search(r'data-jsonblob="(.*?)"', page, re.S).group(1)))
    for rows in blob["tests"].values():
        for row in rows:  # the HTML pytest-html's script puts into the page with innerHTML
            for fragment in [*row["resultsTableRow"], row["log"], *(e["content"] for e in row["extras"])]:
                seen = Markup(fragment)
                assert seen.tags <= ROW_TAGS, (seen.tags, fragment[:300])
                assert not any(a.startswith("on") for a in seen.attrs), fragment[:300]
    data = json.loads((tmp_path / "c.json").read_bytes().decode("utf-8", "strict"))
    assert_json_safe(data)
    return data


def test_hostile_inventory_names_and_file_contents_end_to_end(tmp_path):
    hostile = hostile_snapshot(tmp_path / "hostile.json")
    corrupt = tmp_path / "corrupt\x1b[2J<b onmouseover=alert(1)>.json"
    corrupt.write_text("{not json")
    hosts = {
        SCRIPT: {"snapshot": str(hostile)},
        IMG: {"snapshot": str(hostile)},
        "node03 [old]": {"snapshot": str(BROKEN)},
        "rich[/bold]": {"snapshot": str(FIXED)},
        "esc\x1b[31mred\x1b[0m\x9b": {"snapshot": str(BROKEN)},
        "broken [snapshot]": {"snapshot": str(corrupt)},
    }
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text(yaml.safe_dump({"hosts": hosts}, sort_keys=False))
    done, stdout, stderr = run_checks(tmp_path, "--inventory", str(inventory), "--report-detail=full")
    assert done.returncode == 1, stdout + stderr
    assert "\x1b" not in stdout + stderr and "\x9b" not in stdout + stderr
    assert "MarkupError" not in stdout + stderr and "INTERNALERROR" not in stdout + stderr
    assert "compliance JSON:" in stdout and "Xen PCI passthrough compliance" in stdout
    assert "esc\\x1b[31mred" in stdout  # shown, not obeyed
    assert "test_hide_entry_present[%3Cscript%3Ealert%281%29%3C/script%3E-0000:01:00.0-hide-entry]" in stdout
    data = assert_report_safe(tmp_path)
    names = [h["host"] for h in data["hosts"]]
    assert names == [visible(n) for n in hosts]
    by_name = {h["host"]: h for h in data["hosts"]}
    assert by_name["broken [snapshot]"]["reachable"] is False
    assert "\\x1b[2J" in by_name["broken [snapshot]"]["error"]
    rules = {r["id"]: r for r in by_name[SCRIPT]["devices"][0]["rules"]}
    assert rules["native-driver-blacklisted"]["status"] == "fail"
    evidence = "\n".join(e["text"] for r in rules.values() for e in r["evidence"])
    assert "\\x1b[2J" in evidence and "\\xe9" in evidence and SCRIPT in evidence  # kept, visibly, as data


def test_hostile_snapshot_file_names_end_to_end(tmp_path):
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    for stem in (IMG, "node03 [old]", "rich[bold]"):  # no "/" in a file name
        (snaps / f"{stem}.json").write_bytes(BROKEN.read_bytes())
    hostile_snapshot(snaps / "hostile [bold].json")
    # a file name that is not UTF-8, with an ESC sequence: the host name holds a lone surrogate
    with open(os.fsencode(snaps) + b"/lat\xe9\x1b[31m.json", "wb") as f:
        f.write(BROKEN.read_bytes())
    done, stdout, stderr = run_checks(tmp_path, "--snapshot", str(snaps), "-v")  # -v: progress lines too
    assert done.returncode == 1, stdout + stderr
    assert "\x1b" not in stdout + stderr and "INTERNALERROR" not in stdout + stderr
    assert "compliance JSON:" in stdout
    assert "xenpass: lat\\xe9\\x1b[31m: 1 device(s), from snapshot " in stderr  # the progress line, visible
    data = assert_report_safe(tmp_path)
    assert "lat\\xe9\\x1b[31m" in [h["host"] for h in data["hosts"]]
    assert "lat%ED%B3%A9%1B[31m" in stdout  # the id of the undecodable name: every byte visible


# -- one report step failing does not stop the other -------------------------------------------------------

class Config:
    """The part of pytest's config that pytest_terminal_summary uses."""

    def __init__(self, run: RunResults, json_path: Path) -> None:
        self.stash = {RESULTS: run}
        self.json_path = json_path

    def getoption(self, name: str) -> str | None:
        assert name in ("compliance_json", "fix_export")
        return str(self.json_path) if name == "compliance_json" else None


class LineReporter(Reporter):
    def write_line(self, text: str) -> None:
        self.text += text + "\n"


def test_unwritable_json_is_one_line_and_the_matrix_still_prints(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    reporter = LineReporter()
    pytest_terminal_summary(reporter, 1, Config(hostile_run("rich[/bold]"), blocker / "c.json"))  # does not raise
    assert "xenpass: could not write the compliance JSON" in reporter.text
    assert "Xen PCI passthrough compliance" in reporter.text and "rich[/bold]" in reporter.text


def test_failing_matrix_is_one_line_and_the_json_is_still_written(tmp_path, monkeypatch):
    def broken(run, terminalreporter):
        raise RuntimeError("boom \x1b[2J")

    monkeypatch.setattr(terminal, "print_matrix", broken)
    reporter = LineReporter()
    pytest_terminal_summary(reporter, 1, Config(hostile_run(SCRIPT), tmp_path / "c.json"))
    assert json.loads((tmp_path / "c.json").read_text())["hosts"][0]["host"] == SCRIPT
    assert "xenpass: could not print the compliance matrix: RuntimeError: boom \\x1b[2J" in reporter.text
    assert "\x1b" not in reporter.text


def test_a_failed_json_write_leaves_no_earlier_runs_json(tmp_path):
    target = tmp_path / "c.json"
    target.write_text('{"hosts": []}')  # an earlier, all-green run
    (tmp_path / "c.json.tmp").mkdir()  # makes this run's write fail
    with pytest.raises(OSError):
        hostile_run(SCRIPT).write_json(str(target))
    assert not target.exists()
