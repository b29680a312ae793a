"""The HTML report reads top-down: the verdict, a card per host, the matrix, each failure's reason once (evidence
and fix plan folded), then every test, then pytest-html's environment table. Checked on the page a run of the
demo targets writes (structure), and in headless Chromium (layout at phone and desktop widths, contrast)."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.report.test_safe_output import HOSTILE, SCRIPT, hostile_run
from xenpass.report.html import report_html, verdict_extras
from xenpass.rules.base import Evidence, Status, Verdict
from xenpass.text import visible

ROOT = Path(__file__).resolve().parents[2]
BROKEN = ROOT / "fixtures/node03-broken-mpt2sas-alias.json"
FIXED = ROOT / "fixtures/node03-fixed.json"
CARD_FIELDS = ("distro", "kernel", "collected at", "remote commands", "seconds")


class Page(HTMLParser):
    """The text a browser shows (style and script left out), with each element's place in it."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text = ""
        self.skip = 0
        self.at: dict[str, int] = {}  # id -> offset in text
        self.cards: list[str] = []  # each host card's text
        self.card_depth = 0
        self.depth = 0
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag in ("style", "script"):
            self.skip += 1
        if attributes.get("id"):
            self.at.setdefault(attributes["id"], len(self.text))
        if tag == "article" and "xp-card" in (attributes.get("class") or ""):
            self.cards.append("")
            self.card_depth = 1
        elif self.card_depth and tag == "article":
            self.card_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self.skip -= 1
        if tag == "article" and self.card_depth:
            self.card_depth -= 1

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        self.text += data
        if self.card_depth:
            self.cards[-1] += data + "\n"


def blob(page: str) -> dict:
    """pytest-html's data: the rows its script renders (cells, log box, extras)."""
    return json.loads(html.unescape(re.search(r'data-jsonblob="(.*?)"', page, re.S).group(1)))


def row_texts(page: str) -> list[str]:
    rows = [row for rows in blob(page)["tests"].values() for row in rows]
    return [Page(row["log"] + "".join(e["content"] for e in row["extras"])).text for row in rows]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    """The page and JSON `scripts/demo` writes: the seed's node03, broken and fixed."""
    out = tmp_path_factory.mktemp("demo")
    done = subprocess.run([sys.executable, "-m", "pytest", "checks/", "-q", "-p", "no:cacheprovider",
                           f"--html={out / 'r.html'}", f"--compliance-json={out / 'c.json'}",
                           "--snapshot", str(BROKEN), "--snapshot", str(FIXED)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    return (out / "r.html").read_text(encoding="utf-8"), json.loads((out / "c.json").read_text())


def test_the_page_opens_with_the_verdict_and_the_failing_rules(demo):
    page = Page(demo[0])
    verdict = page.text.index("1 of 2 hosts non-compliant")
    assert verdict < page.at["xp-hosts"] < page.at["xp-matrix"] < page.at["xp-failures"] < page.at["xp-tests"]
    assert page.text.index("Xen PCI passthrough compliance") < verdict
    failing = page.text[verdict:page.at["xp-hosts"]]
    assert "Failing rules: native-driver-blacklisted (1 device), driver-pciback (1 device)" in failing
    assert "initramfs-current" not in failing  # blocked, not failed


def test_one_card_per_host_with_its_facts(demo):
    page, data = Page(demo[0]), demo[1]
    assert len(page.cards) == len(data["hosts"]) == 2
    for host in data["hosts"]:
        [card] = [c for c in page.cards if c.split("\n", 1)[0].strip() == host["host"]]
        for field in CARD_FIELDS:
            assert f"\n{field}\n" in card, (field, card)
        assert host["verdict"] in card and host["distro"] in card and host["kernel"] in card
        assert "2026-11-24 00:00:00 UTC (snapshot)" in card  # when the snapshot was collected


def test_each_card_says_the_driver_now_and_after_the_next_boot(demo):
    page = Page(demo[0])
    expected = {"node03-broken-mpt2sas-alias": "now mpt3sas · after reboot mpt3sas",
                "node03-fixed": "now pciback · after reboot pciback"}
    for host, states in expected.items():
        [card] = [c for c in page.cards if c.split("\n", 1)[0].strip() == host]
        assert states in " ".join(card.split()), card
        assert "pending reboot" not in card
    cards = demo[0][demo[0].index("id='xp-hosts'"):demo[0].index("id='xp-matrix'")]
    assert cards.count("<details><summary>The next boot, step by step</summary><ol><li>") == 2  # folded


def test_each_failure_reason_is_said_once(demo):
    page, data = demo
    shown = Page(page).text + "\n".join(row_texts(page))
    rules = [r for h in data["hosts"] for d in h["devices"] for r in d["rules"]]
    failures = [r for r in rules if r["status"] == "fail"]
    assert len(failures) == 2
    for rule in failures:
        assert shown.count(rule["reason"]) == 1, rule["id"]
    for rule in (r for r in rules if r["status"] == "blocked"):  # its reason quotes the failure: not repeated
        assert rule["reason"] not in shown
    assert "Also not judged until this passes: initramfs-current." in shown
    assert shown.count("+blacklist mpt3sas") == 1  # the fix plan, once


def test_evidence_and_fix_plan_are_folded(demo):
    failures = demo[0][demo[0].index("id='xp-failures'"):demo[0].index("id='xp-tests'")]
    assert "<details><summary>Evidence (5)</summary>" in failures
    assert "<details><summary>Fix plan (apply with --fix)</summary>" in failures
    assert "<details open" not in failures


def test_no_log_box_and_no_python_tuple_for_blocked_rules(demo):
    page = demo[0]
    rows = [row for rows in blob(page)["tests"].values() for row in rows]
    assert all(row["log"] == "" for row in rows)  # each row says its verdict once, in its extras
    texts = row_texts(page)
    for text in (Page(page).text, *texts):
        assert "Skipped:" not in text and "('" not in text and "test_passthrough.py'," not in text
    assert any("initramfs-current: BLOCKED — not judged: it needs native-driver-blacklisted, which did not pass on "
               "this device (why)." in t for t in texts)


def test_the_environment_table_is_moved_after_the_results(demo):
    """pytest-html renders it first; the page moves it before the footer once built (checked in Chromium too)."""
    page = demo[0]
    assert "['environment-header','environment']" in page and "f.before(e)" in page


# -- host text stays text ------------------------------------------------------------------------------------------

SUMMARY_TAGS = {"meta", "style", "script", "section", "p", "a", "h2", "h3", "div", "article", "span", "dl", "dt",
                "dd", "ul", "li", "details", "summary", "table", "tr", "th", "td", "b", "i", "pre", "code"}
SUMMARY_ATTRS = {"name", "content", "id", "class", "href", "colspan", "title", "open"}


class Markup(HTMLParser):
    def __init__(self, fragment: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attrs: set[tuple[str, str]] = set()
        self.scripts: list[str] = []
        self.in_script = False
        self.feed(fragment)
        self.close()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.add(tag)
        self.attrs.update((name, value or "") for name, value in attrs)
        self.in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self.in_script = False

    def handle_data(self, data: str) -> None:
        if self.in_script:
            self.scripts.append(data)


@pytest.mark.parametrize("name", [SCRIPT, "node03 [old]", HOSTILE])
def test_the_summary_holds_host_text_as_text_only(name):
    page = report_html(hostile_run(name))
    seen = Markup(page)
    assert seen.tags <= SUMMARY_TAGS
    assert {a for a, _ in seen.attrs} <= SUMMARY_ATTRS
    assert all(value.startswith("#") for a, value in seen.attrs if a == "href")
    assert len(seen.scripts) == 1 and "environment" in seen.scripts[0]  # ours only
    assert "<script>alert" not in page and "<img" not in page and "\x1b" not in page
    assert html.escape(visible(name), quote=False) in page


def test_a_host_that_could_not_be_checked_is_explained_once():
    run = hostile_run("node03")
    error = "unreachable: ssh: could not resolve node03~down"
    run.hosts[1].error = error
    text = Page(report_html(run)).text
    assert text.count(error) == 1
    assert text.index("could not be checked: why") < text.index(error)  # the card and the matrix link to it


def test_a_passing_rows_extras_fold_its_evidence():
    verdict = Verdict("hide-entry", Status.PASS, "hidden by /etc/modules:3", (Evidence("/etc/modules", "3: x"),))
    [extra] = verdict_extras(verdict)
    assert "<b>hide-entry: PASS</b> — hidden by /etc/modules:3" in extra["content"]
    assert "<details><summary>Evidence (1)</summary>" in extra["content"]


def test_a_compact_reports_rows_keep_the_message_as_a_sentence(tmp_path):
    """A compact report (huge fleets) has no extras and lists only some failures above: each row that did not
    pass keeps its message, but never as pytest's skip tuple, and a blocked rule does not repeat its blocker's."""
    done = subprocess.run([sys.executable, "-m", "pytest", "checks/", "-q", "-p", "no:cacheprovider",
                           f"--html={tmp_path / 'r.html'}", f"--compliance-json={tmp_path / 'c.json'}",
                           "--report-detail=compact", "--snapshot", str(BROKEN)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    rows = [row for rows in blob((tmp_path / "r.html").read_text())["tests"].values() for row in rows]
    logs = {row["result"] + ": " + html.unescape(row["log"]) for row in rows}
    failed = sorted(log for log in logs if log.startswith("Failed: "))
    assert [log.split("]")[0] for log in failed] == ["Failed: [driver-pciback", "Failed: [native-driver-blacklisted"]
    assert "only an alias of mpt3sas" in failed[1]
    assert sorted(set(logs) - set(failed)) == [
        "Skipped: [assignable] not judged: it needs driver-pciback, which did not pass on this device",
        "Skipped: [initramfs-current] not judged: it needs native-driver-blacklisted, which did not pass on this "
        "device"]
    assert not any("('" in log for log in logs)


def test_every_link_in_the_page_has_its_target(tmp_path):
    """Rows, cards and matrix cells link to the reason: waived-only devices and unreachable hosts included."""
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text("waivers:\n  - rule: driver-pciback\n    reason: vendor driver\n    owner: ops@example.com\n"
                       "    expires: 2099-12-31\n  - rule: native-driver-blacklisted\n    reason: migration\n"
                       "    owner: ops@example.com\n    expires: 2099-12-31\n")
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{not json")
    done = subprocess.run([sys.executable, "-m", "pytest", "checks/", "-q", "-p", "no:cacheprovider",
                           f"--html={tmp_path / 'r.html'}", f"--compliance-json={tmp_path / 'c.json'}",
                           f"--waivers={waivers}", "--snapshot", str(BROKEN), "--snapshot", str(corrupt)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    page = (tmp_path / "r.html").read_text()
    rows = "".join(e["content"] for rows in blob(page)["tests"].values() for row in rows for e in row["extras"])
    ids = set(re.findall(r"id='([^']+)'", page)) | set(re.findall(r'id="([^"]+)"', page))
    links = set(re.findall(r"href='#([^']+)'", page + rows))
    assert links and links <= ids, links - ids
    assert "Accepted by a waiver" in Page(page).text
