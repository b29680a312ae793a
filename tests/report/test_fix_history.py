"""What the reports say after --fix: per device, before -> after, the steps applied, the one that failed, every
backup and the rollback commands in order; "nothing to fix" where nothing was planned; and never "apply with
--fix" once --fix was given."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

from tests.support.reporter import Reporter
from xenpass.fix.apply import ApplyReport
from xenpass.fix.base import Command, FileEdit, Plan, Refusal
from xenpass.parse.bdf import parse_bdf
from xenpass.report.fixes import device_fix, fix_history, fix_note
from xenpass.report.html import fix_history_html, verdict_extras
from xenpass.report.results import RunResults
from xenpass.report.terminal import print_fix_summary
from xenpass.rules.base import Status, Verdict
from xenpass.targets import HostResult, Target

ROOT = Path(__file__).resolve().parent.parent.parent
BROKEN = ROOT / "fixtures/node03-broken-mpt2sas-alias.json"
FIXED = ROOT / "fixtures/node03-fixed.json"
BDF = parse_bdf("01:00.0")
SNAPSHOT_NOTE = "snapshot target: the plan is shown, nothing can be applied"
STAMP = "20250101T120000"

EDIT_MODULES = FileEdit("hide-entry", "/etc/modules", "xen_pciback\n", "xen_pciback hide=(0000:01:00.0)\n",
                        "one hide= line")
EDIT_BLACKLIST = FileEdit("native-driver-blacklisted", "/etc/modprobe.d/xen-passthrough.conf", None,
                          "blacklist mpt3sas\n", "blacklist the real module name")
MKINITFS = Command("native-driver-blacklisted", ("mkinitfs", "-o", "/boot/initramfs-lts", "6.6.31-0-lts"),
                   "the image must carry the current modprobe.d", backup="/boot/initramfs-lts")
XL_ADD = Command("driver-pciback", ("xl", "pci-assignable-add", "0000:01:00.0"), "hand the device to pciback now")
RULES = ("hide-entry", "native-driver-blacklisted", "initramfs-current", "driver-pciback", "assignable")


class Text(HTMLParser):
    """The text a browser shows for an HTML fragment, and its tags."""

    def __init__(self, fragment: str) -> None:
        super().__init__(convert_charrefs=True)
        self.data: list[str] = []
        self.tags: set[str] = set()
        self.in_style = False
        self.feed(fragment)
        self.close()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.add(tag)
        self.in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self.in_style = False

    def handle_data(self, data: str) -> None:
        if not self.in_style:
            self.data.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.data).split())  # whitespace as a reader sees it


def fixed_run(name: str, plan_steps: tuple, report: ApplyReport | None, before: dict[str, str],
              after: dict[str, str], snapshot: str | None = None, refusals: tuple = (), reboot: bool = True,
              run: RunResults | None = None) -> RunResults:
    """A run after --fix: one host, one device, its plan, what applying it came to, and the verdicts both sides."""
    run = run or RunResults(hosts=[])
    assert run.hosts is not None
    run.hosts.append(HostResult(Target(name=name, snapshot=snapshot), devices=[BDF]))
    key = (name, BDF)
    run.plans[key] = Plan(name, BDF, plan_steps, refusals, reboot and bool(plan_steps),
                          rules=tuple(dict.fromkeys(s.rule for s in plan_steps)))
    run.before[key] = {rule: Verdict(rule, Status(status), f"{rule} was {status}") for rule, status in before.items()}
    for rule, status in after.items():
        run.record(name, BDF, Verdict(rule, Status(status), f"{rule} is {status}"))
    if report is not None:
        run.applied[key] = report
    return run


ALL_FAIL = {"hide-entry": "fail", "native-driver-blacklisted": "fail", "initramfs-current": "blocked",
            "driver-pciback": "fail", "assignable": "blocked"}


def success_run() -> RunResults:
    report = ApplyReport(
        applied=["edit /etc/modules", "edit /etc/modprobe.d/xen-passthrough.conf",
                 "run mkinitfs -o /boot/initramfs-lts 6.6.31-0-lts", "run xl pci-assignable-add 0000:01:00.0"],
        backups=[f"/etc/modules.xenpass-{STAMP}", f"/boot/initramfs-lts.xenpass-{STAMP}"],
        rollback=[f"mv /boot/initramfs-lts.xenpass-{STAMP} /boot/initramfs-lts",
                  "rm /etc/modprobe.d/xen-passthrough.conf", f"mv /etc/modules.xenpass-{STAMP} /etc/modules"])
    return fixed_run("node03", (EDIT_MODULES, EDIT_BLACKLIST, MKINITFS, XL_ADD), report, ALL_FAIL,
                     dict.fromkeys(RULES, "pass"))


def failed_run() -> RunResults:
    report = ApplyReport(
        applied=["edit /etc/modules", "edit /etc/modprobe.d/xen-passthrough.conf"],
        failed="run mkinitfs -o /boot/initramfs-lts 6.6.31-0-lts: exit 1: mkinitfs: cannot build the image: "
               "no space left",
        backups=[f"/etc/modules.xenpass-{STAMP}"],
        rollback=["rm /etc/modprobe.d/xen-passthrough.conf", f"mv /etc/modules.xenpass-{STAMP} /etc/modules"])
    return fixed_run("node04", (EDIT_MODULES, EDIT_BLACKLIST, MKINITFS, XL_ADD), report, ALL_FAIL,
                     {"hide-entry": "pass", "native-driver-blacklisted": "pass", "initramfs-current": "fail",
                      "driver-pciback": "fail", "assignable": "blocked"})


def snapshot_run() -> RunResults:
    return fixed_run("node05", (EDIT_BLACKLIST, MKINITFS, XL_ADD), ApplyReport(failed=SNAPSHOT_NOTE),
                     ALL_FAIL | {"hide-entry": "pass"}, ALL_FAIL | {"hide-entry": "pass"}, snapshot="node05.json")


def empty_run(run: RunResults | None = None) -> RunResults:
    everything = dict.fromkeys(RULES, "pass")
    return fixed_run("node06", (), None, everything, everything, run=run)


def in_order(text: str, *parts: str) -> bool:
    at = 0
    for part in parts:
        at = text.find(part, at)
        if at < 0:
            return False
        at += len(part)
    return True


# -- the Fix history section of the HTML report ---------------------------------------------------------------

def test_html_history_after_a_successful_fix_shows_before_after_steps_backups_and_rollback():
    page = fix_history_html(success_run())
    shown = Text(page).text
    assert "Fix history" in shown and "node03" in shown and "0000:01:00.0" in shown
    assert "fix applied: 4 of 4 steps" in shown
    assert "native-driver-blacklisted fail → pass" in shown and "initramfs-current blocked → pass" in shown
    assert in_order(shown, "1. applied", "edit /etc/modules", "2. applied", "edit /etc/modprobe.d/xen-passthrough.conf",
                    "3. applied", "run mkinitfs", "4. applied", "run xl pci-assignable-add 0000:01:00.0")
    assert in_order(shown, "Backups", f"/etc/modules.xenpass-{STAMP}", f"/boot/initramfs-lts.xenpass-{STAMP}")
    assert in_order(shown, "Rollback", f"mv /boot/initramfs-lts.xenpass-{STAMP} /boot/initramfs-lts",
                    "rm /etc/modprobe.d/xen-passthrough.conf", f"mv /etc/modules.xenpass-{STAMP} /etc/modules")
    assert "reboot required" in shown
    assert "apply with --fix" not in shown


def test_html_history_after_a_failed_fix_names_the_step_and_how_to_roll_back():
    shown = Text(fix_history_html(failed_run())).text
    assert "fix failed at step 3 of 4" in shown and "no space left" in shown
    assert in_order(shown, "1. applied", "edit /etc/modules", "2. applied", "3. FAILED", "run mkinitfs",
                    "exit 1", "4. not run", "run xl pci-assignable-add")
    assert "native-driver-blacklisted fail → pass" in shown and "initramfs-current blocked → fail" in shown
    assert in_order(shown, "Backups", f"/etc/modules.xenpass-{STAMP}", "Rollback",
                    "rm /etc/modprobe.d/xen-passthrough.conf", f"mv /etc/modules.xenpass-{STAMP} /etc/modules")
    assert "apply with --fix" not in shown


def test_a_step_that_timed_out_may_have_run_in_part():
    run = failed_run()
    report = run.applied[("node04", BDF)]
    report.fault = "timeout"  # ApplyReport.fault: how the failed step ended
    fix = device_fix(run, "node04", BDF)
    assert "fix failed at step 3 of 4" in fix.headline() and "may have run in part" in fix.headline()
    report.fault = "exit"
    assert "may have run in part" not in device_fix(run, "node04", BDF).headline()


def test_html_history_on_a_snapshot_shows_the_plan_and_that_it_cannot_apply():
    shown = Text(fix_history_html(snapshot_run())).text
    assert "not applied" in shown and SNAPSHOT_NOTE in shown
    assert "failed at step" not in shown and "FAILED" not in shown
    assert in_order(shown, "1. planned", "edit /etc/modprobe.d/xen-passthrough.conf", "2. planned", "run mkinitfs",
                    "3. planned", "run xl pci-assignable-add")
    assert "+blacklist mpt3sas" in shown  # the plan itself, with its diff
    assert "Rollback" not in shown and "apply with --fix" not in shown


def test_html_history_counts_devices_with_nothing_to_fix():
    run = empty_run(success_run())
    shown = Text(fix_history_html(run)).text
    assert "1 device had a fix plan — applied: 1; nothing to fix on 1 other device." in shown
    assert "nothing to fix: node06 0000:01:00.0" in shown
    assert Text(fix_history_html(empty_run())).text.count("nothing to fix") == 1


def test_html_history_is_empty_without_fix():
    run = RunResults(hosts=[HostResult(Target(name="node03"), devices=[BDF])])
    run.record("node03", BDF, Verdict("hide-entry", Status.FAIL, "x"))
    assert fix_history(run) == [] and fix_history_html(run) == ""


def test_html_history_shows_host_text_escaped():
    hostile = "<script>alert(1)</script>\x1b[2J"
    run = fixed_run(hostile, (EDIT_BLACKLIST,), ApplyReport(failed=f"edit /etc/{hostile}: exit 3: {hostile}",
                                                           rollback=[f"rm /etc/{hostile}"]),
                    ALL_FAIL, ALL_FAIL)
    page = fix_history_html(run)
    assert "<script" not in page and "\x1b" not in page
    assert "<script>alert(1)</script>\\x1b[2J" in Text(page).text


# -- each affected test's extras, and its reason ----------------------------------------------------------------

def test_a_tests_extras_after_fix_show_its_rule_before_and_after_and_the_devices_history():
    run = failed_run()
    fix = device_fix(run, "node04", BDF)
    [extra] = verdict_extras(run.reported["node04"][BDF]["initramfs-current"], fix)
    shown = Text(extra["content"]).text
    assert "initramfs-current: blocked → fail" in shown
    assert in_order(shown, "fix failed at step 3 of 4", "3. FAILED", "Rollback", "rm /etc/modprobe.d/")
    assert "apply with --fix" not in shown and "Fix plan" not in shown
    assert Text(extra["content"]).tags <= {"p", "b", "div", "i", "pre", "span", "code"}  # pytest-html's row


def test_failing_reason_after_a_failed_fix_says_where_it_failed_and_how_to_roll_back():
    run = failed_run()
    fix = device_fix(run, "node04", BDF)
    note = fix_note(fix, "initramfs-current", run.plans[("node04", BDF)].for_rule("initramfs-current"))
    assert note.startswith("fix failed at step 3 of 4: run mkinitfs")
    assert in_order(note, "applied: 1. edit /etc/modules", "not run: 4. run xl", "backups:", "rollback",
                    "rm /etc/modprobe.d/xen-passthrough.conf", f"mv /etc/modules.xenpass-{STAMP} /etc/modules")
    assert "apply with --fix" not in note


def test_failing_reason_after_a_successful_fix_says_what_was_applied_and_what_remains():
    run = fixed_run("node07", (EDIT_BLACKLIST, MKINITFS), ApplyReport(
        applied=["edit /etc/modprobe.d/xen-passthrough.conf", "run mkinitfs -o /boot/initramfs-lts 6.6.31-0-lts"],
        rollback=["rm /etc/modprobe.d/xen-passthrough.conf"]), ALL_FAIL, ALL_FAIL | {
        "native-driver-blacklisted": "pass", "initramfs-current": "pass"},
        refusals=(Refusal("driver-pciback", "mpt3sas holds a mounted filesystem", "reboot"),))
    fix = device_fix(run, "node07", BDF)
    plan = run.plans[("node07", BDF)]
    note = fix_note(fix, "driver-pciback", plan.for_rule("driver-pciback"),
                    remaining=Plan("node07", BDF, (XL_ADD,)))
    assert note.startswith("fix applied: 2 of 2 steps, none for this rule (before --fix: fail); still failing")
    assert "refused (driver-pciback): mpt3sas holds a mounted filesystem" in note
    assert in_order(note, "still to do (not applied by this run):", "run `xl pci-assignable-add 0000:01:00.0`")
    assert "apply with --fix" not in note
    reboot = fix_note(fix, "native-driver-blacklisted", plan.for_rule("native-driver-blacklisted"))
    assert "still failing because a reboot is required" in reboot


def test_failing_reason_on_a_snapshot_shows_the_plan_and_that_nothing_was_applied():
    run = snapshot_run()
    fix = device_fix(run, "node05", BDF)
    note = fix_note(fix, "driver-pciback", run.plans[("node05", BDF)].for_rule("driver-pciback"))
    assert note.startswith(f"fix not applied: {SNAPSHOT_NOTE}")
    assert in_order(note, "fix plan (not applied):", "1. run `xl pci-assignable-add 0000:01:00.0`")
    assert "apply with --fix" not in note


# -- the terminal ------------------------------------------------------------------------------------------------

def merged(*runs: RunResults) -> RunResults:
    """One run holding every host of `runs`."""
    run = RunResults(hosts=[])
    for part in runs:
        run.hosts += part.hosts
        run.plans |= part.plans
        run.before |= part.before
        run.applied |= part.applied
        run.reported |= part.reported
    return run


def test_terminal_summary_per_device():
    run = merged(snapshot_run(), empty_run(), success_run(), failed_run())
    reporter = Reporter()
    print_fix_summary(run, reporter)
    out = reporter.text
    assert "node05 0000:01:00.0: fix not applied: " + SNAPSHOT_NOTE in out
    assert in_order(out, "node05", "planned: 1. edit /etc/modprobe.d/xen-passthrough.conf", "planned: 3. run xl")
    assert "node06 0000:01:00.0: nothing to fix" in out
    assert "node03 0000:01:00.0: fix applied: 4 of 4 steps" in out
    assert "node04 0000:01:00.0: fix failed at step 3 of 4: run mkinitfs" in out
    assert in_order(out, "node04", "rollback 1: rm /etc/modprobe.d/xen-passthrough.conf",
                    f"rollback 2: mv /etc/modules.xenpass-{STAMP} /etc/modules")
    assert "\x1b" not in out


def test_terminal_summary_when_the_whole_run_had_nothing_to_fix():
    reporter = Reporter()
    print_fix_summary(empty_run(), reporter)
    assert "--fix: nothing to fix" in reporter.text
    reporter = Reporter()
    print_fix_summary(RunResults(hosts=[HostResult(Target(name="bare"), devices=[])]), reporter)
    assert "--fix: nothing to fix" in reporter.text


def test_terminal_summary_shows_host_text_visibly():
    run = fixed_run("esc\x1b[31m", (EDIT_BLACKLIST,), ApplyReport(failed="edit /etc/x\x1b[2J: exit 3: boom",
                                                                   rollback=["rm /etc/x\x1b[2J"]), ALL_FAIL, ALL_FAIL)
    reporter = Reporter()
    print_fix_summary(run, reporter)
    assert "\x1b" not in reporter.text and "esc\\x1b[31m" in reporter.text and "rm /etc/x\\x1b[2J" in reporter.text


# -- the JSON -----------------------------------------------------------------------------------------------------

def test_json_after_fix_keeps_before_and_the_whole_apply_report():
    device = failed_run().to_json()["hosts"][0]["devices"][0]
    rules = {r["id"]: r for r in device["rules"]}
    assert rules["native-driver-blacklisted"]["before"] == "fail"
    assert rules["native-driver-blacklisted"]["status"] == "pass"
    applied = device["applied"]
    assert applied["applied"] == ["edit /etc/modules", "edit /etc/modprobe.d/xen-passthrough.conf"]
    assert applied["failed"].startswith("run mkinitfs") and applied["backups"] == [f"/etc/modules.xenpass-{STAMP}"]
    assert applied["rollback"][0] == "rm /etc/modprobe.d/xen-passthrough.conf"
    assert device["fix_result"] == {"outcome": "failed", "failed_step": 3, "steps": 4,
                                    "summary": "fix failed at step 3 of 4: " + applied["failed"]}
    empty = empty_run().to_json()["hosts"][0]["devices"][0]
    assert empty["fix_result"]["outcome"] == "nothing to fix" and "applied" not in empty


# -- end to end: `python -m pytest checks/ --fix` on snapshots ------------------------------------------------------

def test_fix_on_snapshots_end_to_end_shows_the_plan_and_that_it_cannot_apply(tmp_path):
    report, out = tmp_path / "r.html", tmp_path / "c.json"
    cmd = [sys.executable, "-m", "pytest", "checks/", "-q", "--tb=line", "--color=no", "--snapshot", str(BROKEN),
           "--snapshot", str(FIXED), "--fix", f"--html={report}", f"--compliance-json={out}"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert ("node03-broken-mpt2sas-alias 0000:01:00.0: fix not applied: " + SNAPSHOT_NOTE) in done.stdout
    assert "node03-fixed 0000:01:00.0: nothing to fix" in done.stdout
    assert "apply with --fix" not in done.stdout + done.stderr
    page = report.read_text()
    blob = json.loads(html.unescape(re.search(r'data-jsonblob="(.*?)"', page, re.S).group(1)))
    logs = "\n".join(row["log"] + "".join(e["content"] for e in row["extras"])
                     for rows in blob["tests"].values() for row in rows)
    shown = Text(page).text
    assert "apply with --fix" not in page + logs
    assert in_order(shown, "Compliance matrix", "Fix history", "node03-broken-mpt2sas-alias", SNAPSHOT_NOTE,
                    "1. planned", "edit /etc/modprobe.d/xen-passthrough.conf", "+blacklist mpt3sas")
    assert "nothing to fix: node03-fixed 0000:01:00.0" in shown
    # what --fix did for each failing rule: under its reason in "What failed" (said once, not in the rows' logs)
    failures = shown[shown.index("What failed, and why"):shown.index("Fix history")]
    assert in_order(failures, "native-driver-blacklisted", "What --fix did", "fix not applied: " + SNAPSHOT_NOTE,
                    "fix plan (not applied):")
    data = json.loads(out.read_text())
    broken = next(h for h in data["hosts"] if h["host"] == "node03-broken-mpt2sas-alias")["devices"][0]
    assert broken["applied"]["failed"] == SNAPSHOT_NOTE and broken["fix_result"]["outcome"] == "not applied"
