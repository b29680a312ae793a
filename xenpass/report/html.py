"""The HTML report, inside pytest-html's page: the verdict first, a card per host, the host x device x rule matrix,
each failure's reason once (evidence and fix plan folded), the fix history after --fix, then every test.

Everything a host said (names, reasons, evidence, errors) goes through `shown`: made visible, then escaped.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import datetime
from html import escape

import pytest
from pytest_html import extras

from xenpass.catalogue import anchor, html_section
from xenpass.parse.bdf import Bdf
from xenpass.report.fixes import APPLIED, FAILED, NOT_APPLIED, NOTHING, REFUSED, DeviceFix, fix_history, plural
from xenpass.report.results import RunResults, run_verdict
from xenpass.rules.base import Status, Verdict
from xenpass.targets import HostResult
from xenpass.text import visible

# pytest-html's own sheet has grey (#999) body text, orange and red outcome labels on white, a 800 px minimum
# width and a 550 px summary column: below WCAG AA contrast, and unreadable on a phone. These win over it.
PAGE_STYLE = """<meta name="viewport" content="width=device-width, initial-scale=1"><style>
body{min-width:0;max-width:1180px;margin:0 auto;padding:0 14px;color:#1f2328;font-size:14px;line-height:1.45}
a{color:#0550ae}h1{font-size:22px;margin:14px 0 2px}h1+p{color:#57606a;font-size:12px;margin:0}
p{color:inherit}
.summary{display:block}.summary__data{flex:none}.summary__spacer{display:none}
.summary__data>h2:first-child{display:none}
#results-table{color:#1f2328;font-size:13px}.col-testId{word-break:break-word}
span.passed,.passed .col-result{color:#1a7f37}
span.skipped,span.xfailed,span.rerun,.skipped .col-result,.xfailed .col-result,.rerun .col-result{color:#8a4b00}
span.error,span.failed,span.xpassed,.error .col-result,.failed .col-result,.xpassed .col-result{color:#b42318}
.filters button,.collapse button{color:#0550ae}.controls{flex-wrap:wrap;gap:6px}
.filters{flex-wrap:wrap;gap:2px 6px}.logwrapper:not(:has(.log)){display:none}
#environment{color:#1f2328;margin-bottom:24px}#environment-header h2{margin-top:28px}
.xp-verdict{border-radius:6px;padding:10px 16px;margin:12px 0;color:#fff}
.xp-verdict p{margin:4px 0}.xp-verdict a{color:#fff}
.xp-headline{font-size:22px;font-weight:bold}
.xp-verdict.xp-v-compliant,.xp-badge.xp-v-compliant{background:#1a7f37}
.xp-verdict.xp-v-non-compliant,.xp-badge.xp-v-non-compliant{background:#b42318}
.xp-verdict.xp-v-waived,.xp-badge.xp-v-waived{background:#7d4e00}
.xp-verdict.xp-v-could-not-check,.xp-badge.xp-v-unreachable,.xp-badge.xp-v-error,.xp-badge.xp-v-no-devices{
 background:#6639ba}
.xp-badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;font-weight:bold;color:#fff;
 white-space:nowrap;vertical-align:middle}
.xp-cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:10px;margin:8px 0 16px}
.xp-card{border:1px solid #d0d7de;border-top:5px solid #d0d7de;border-radius:6px;padding:6px 12px;min-width:0;
 overflow-wrap:anywhere;background:#fff}
.xp-card.xp-v-compliant{border-top-color:#1a7f37}.xp-card.xp-v-non-compliant{border-top-color:#b42318}
.xp-card.xp-v-waived{border-top-color:#7d4e00}
.xp-card.xp-v-unreachable,.xp-card.xp-v-error,.xp-card.xp-v-no-devices{border-top-color:#6639ba}
.xp-card h3{font-size:15px;margin:4px 0 6px}
.xp-facts{display:grid;grid-template-columns:auto 1fr;gap:1px 10px;margin:0;font-size:13px}
.xp-facts dt{color:#57606a}.xp-facts dd{margin:0}
.xp-devices{margin:6px 0 2px;padding-left:18px;font-size:13px;overflow-wrap:anywhere}
.xp-boot{color:#57606a}.xp-boot ol{padding-left:18px;margin:2px 0}
.xp-scroll{overflow-x:auto;max-width:100%}
.xp-device{border:1px solid #d0d7de;border-left:5px solid #b42318;border-radius:6px;padding:4px 14px 8px;
 margin:10px 0;overflow-wrap:anywhere}
.xp-device.xp-v-waived{border-left-color:#7d4e00}.xp-device.xp-v-unreachable,.xp-device.xp-v-error,
.xp-device.xp-v-no-devices{border-left-color:#6639ba}
.xp-device h3{font-size:15px;margin:6px 0}.xp-failure{margin:8px 0 4px}
.xp-reason{white-space:pre-wrap;margin:4px 0}.xp-blocks{color:#57606a;margin:4px 0}
details>summary{cursor:pointer;color:#0550ae}
@media (max-width:640px){.col-result{width:auto}.col-duration,.col-links,#results-table-head th:nth-child(n+3){
 display:none}.col-result:hover::after,.col-result.collapsed:hover::after{content:none}}
</style>"""

STYLE = """<style>
.xp-matrix{border-collapse:collapse;margin:8px 0;font-size:13px}
.xp-matrix th,.xp-matrix td{border:1px solid #c8ccd0;padding:3px 8px;text-align:left}
.xp-pass{background:#dafbe1}.xp-fail,.xp-error{background:#ffebe9}.xp-warn{background:#fff8c5}
.xp-blocked,.xp-skip{background:#eaeef2}
.xp-matrix .xp-fail,.xp-matrix .xp-error,.xp-matrix .xp-fail a,.xp-matrix .xp-error a{color:#82071e;font-weight:bold}
.xp-matrix .xp-blocked a{color:#1f2328}
.xp-evidence{background:#f6f8fa;border-left:3px solid #8c959f;padding:4px 8px;white-space:pre-wrap;font-size:12px;
 overflow-wrap:anywhere}
.xp-matrix,.xp-fix{color:#1f2328}
.xp-fix{border:1px solid #c8ccd0;border-left:5px solid #8c959f;padding:2px 12px 8px;margin:12px 0;max-width:1100px}
.xp-fix-applied{border-left-color:#1a7f37}.xp-fix-failed{border-left-color:#b42318}
.xp-fix-not-applied,.xp-fix-refused{border-left-color:#9a6700}
.xp-fix h3{margin:8px 0 4px;font-size:15px;color:#000}.xp-fix p,.xp-fix .xp-block{margin:8px 0 2px}
.xp-outcome{font-weight:normal}.xp-status{padding:0 4px}.xp-changed td{font-weight:bold}
.xp-step{font-family:monospace;font-size:12px;padding:2px 6px;margin:1px 0;white-space:pre-wrap}
.xp-step-applied{background:#dafbe1}.xp-step-FAILED{background:#ffebe9;font-weight:bold}
.xp-step-not-run{color:#57606a}.xp-step-planned{background:#f6f8fa}.xp-step-refused{background:#fff8c5}
.xp-why{font-family:sans-serif;color:#57606a}
.xp-undo{background:#fff8c5;border-left:3px solid #9a6700;padding:4px 8px;white-space:pre-wrap;font-size:12px}
</style>"""

# pytest-html draws its environment table first; a reader wants it last. Its script fills and binds it by id,
# so moving the two elements once the page is built keeps them working.
MOVE_ENVIRONMENT = ("<script>document.addEventListener('DOMContentLoaded',function(){var f=document.querySelector"
                    "('footer');['environment-header','environment'].forEach(function(i){var e=document."
                    "getElementById(i);if(e&&f)f.before(e)})})</script>")

CARDS_OPEN = 24  # hosts: past this the cards start folded (the verdict and the tally give the overview)
FAILURES_LISTED = 500  # devices with a failure listed in a compact report; the rest are in the JSON
PLAN_NOTE = "fix plan (apply with --fix):"  # how xenpass.plugin starts a failing test's plan note
VERDICT_ORDER = ("non-compliant", "unreachable", "error", "no-devices", "waived", "compliant")


def shown(text: str, quote: bool = False) -> str:
    """Host text as HTML text: controls and undecodable bytes made visible first, then escaped (never markup)."""
    return escape(visible(text), quote=quote)


def host_key(host: str) -> str:
    """A fragment id for a host: a digest, since a host name may hold anything."""
    return hashlib.sha256(host.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def device_anchor(host: str, bdf: Bdf | None) -> str:
    return f"xp-dev-{host_key(host)}-{bdf if bdf is not None else 'host'}"


def blocker(verdict: Verdict) -> str | None:
    """The rule a blocked verdict waits for ("blocked by RULE: its reason")."""
    if verdict.status != Status.BLOCKED or not verdict.reason.startswith("blocked by "):
        return None
    return verdict.reason[len("blocked by "):].split(":", 1)[0]


def badge(verdict: str) -> str:
    return f"<span class='xp-badge xp-v-{verdict}'>{escape(verdict)}</span>"


# -- one test's row in pytest-html's table ------------------------------------------------------------------------

def verdict_extras(verdict: Verdict, fix: DeviceFix | None = None, where: tuple[str, Bdf] | None = None,
                   label: str | None = None) -> list:
    """A test's extras. A failure's reason, evidence and plan are said once, under "What failed": its row links
    there (`where` is its host and device); a blocked rule names the rule it waits for; anything else shows its
    reason with the evidence folded. After --fix (`fix`): what the fix did to the device."""
    label = label or verdict.status.value
    state = f" ({shown(verdict.state)})" if verdict.state else ""
    head = f"<b>{shown(verdict.rule)}: {escape(label.upper())}</b>{state}"
    link = f"<a href='#{device_anchor(*where)}'>" if where else ""
    close = "</a>" if where else ""
    if verdict.status in (Status.FAIL, Status.ERROR):
        what = ("accepted by a waiver" if label == "waived" else "the reason and evidence"
                if verdict.status == Status.ERROR else "the reason, evidence and fix plan")
        parts = [f"<p>{head} — {what}: see {link}What failed{close} above.</p>"]
    elif verdict.status == Status.BLOCKED and blocker(verdict):
        parts = [f"<p>{head} — not judged: it needs <b>{shown(blocker(verdict) or '')}</b>, which did not pass on "
                 f"this device ({link}why{close}).</p>"]
    else:
        parts = [f"<p>{head} — {shown(verdict.reason)}</p>", evidence_html(verdict)]
    if fix is not None:
        parts.append(fix_extras(fix, verdict.rule))
    return [extras.html("".join(parts))]


def not_checked_extras(host: str) -> list:
    """The row of a test whose host could not be checked (unreachable, no device): the reason is said once."""
    return [extras.html(f"<p><b>not checked</b> — this host could not be checked: see <a href='#"
                        f"{device_anchor(host, None)}'>What failed</a> above.</p>")]


def evidence_html(verdict: Verdict) -> str:
    if not verdict.evidence:
        return ""
    items = "".join(f"<div><i>{shown(item.source)}</i><pre class='xp-evidence'>{shown(item.text)}</pre></div>"
                    for item in verdict.evidence)
    return folded(f"Evidence ({len(verdict.evidence)})", items)


def folded(title: str, body: str) -> str:
    return f"<details><summary>{title}</summary>{body}</details>"


# -- the page: verdict, host cards, matrix, failures, fix history, catalogue ----------------------------------------

def report_html(run: RunResults, fixing: bool = False, compact_note: str = "") -> str:
    """Everything xenpass puts above pytest-html's table of tests, in reading order."""
    verdicts = run.host_verdicts()
    parts = [PAGE_STYLE, STYLE, verdict_html(run, verdicts), cards_html(run, verdicts),
             matrix_html(run, catalogue=False), failures_html(run, verdicts)]
    if fixing:
        parts.append(fix_history_html(run, fixing=True))
    parts += [html_section(), "<h2 id='xp-tests'>Every test</h2>", compact_note, MOVE_ENVIRONMENT]
    return "".join(parts)


def failing_rules(run: RunResults) -> tuple[Counter[str], Counter[str]]:
    """Per rule, the devices where it failed (no active waiver) and where it could not be judged."""
    failed, errors = Counter[str](), Counter[str]()
    for host, devices in run.reported.items():
        for bdf, rules in devices.items():
            for rule, verdict in rules.items():
                if verdict.status == Status.ERROR:
                    errors[rule] += 1
                elif verdict.status == Status.FAIL and run.status_label(host, bdf, verdict) != "waived":
                    failed[rule] += 1
    return failed, errors


def headline(counts: Counter[str], total: int) -> str:
    """The verdict in one line: "1 of 2 hosts non-compliant", "2 of 2 hosts compliant"."""
    hosts = f"host{plural(total)}"
    if counts["non-compliant"]:
        return f"{counts['non-compliant']} of {total} {hosts} non-compliant"
    unchecked = counts["unreachable"] + counts["error"] + counts["no-devices"]
    if unchecked:
        return f"{unchecked} of {total} {hosts} could not be checked"
    waived = f" ({counts['waived']} by waiver)" if counts["waived"] else ""
    return f"{total} of {total} {hosts} compliant{waived}"


def verdict_html(run: RunResults, verdicts: dict[str, tuple[str, dict[Bdf, str]]]) -> str:
    counts = Counter(v for v, _ in verdicts.values())
    total = len(verdicts)
    overall = run_verdict([{"verdict": v} for v, _ in verdicts.values()])
    tally = " · ".join(f"{counts[v]} {v}" for v in VERDICT_ORDER if counts[v])
    failed, errors = failing_rules(run)
    lines = [f"<p class='xp-headline'>{escape(headline(counts, total))}</p>", f"<p>{tally}</p>"]
    if failed:
        lines.append("<p>Failing rules: " + ", ".join(
            f"<a href='#{anchor(rule)}'>{escape(rule)}</a> ({n} device{plural(n)})" for rule, n in failed.items())
            + " — <a href='#xp-failures'>why</a></p>")
    if errors:
        lines.append("<p>Could not be judged: " + ", ".join(
            f"<a href='#{anchor(rule)}'>{escape(rule)}</a> ({n} device{plural(n)})" for rule, n in errors.items())
            + "</p>")
    devices = sum(len(d) for _, d in verdicts.values())
    took = f" · collected in {run.collect_seconds:.2f} s" if run.collect_seconds is not None else ""
    lines.append(f"<p>{total} host{plural(total)}, {devices} device{plural(devices)}, "
                 f"{len(run.rule_ids())} rules{took}</p>")
    return f"<section id='xp-verdict' class='xp-verdict xp-v-{overall}'>{''.join(lines)}</section>"


def when(collected_at: str) -> str:
    """An ISO time as "2026-11-24 00:00:00 UTC" (as it came when it does not parse)."""
    try:
        moment = datetime.fromisoformat(collected_at)
    except ValueError:
        return collected_at
    zone = " UTC" if moment.utcoffset() is not None and not moment.utcoffset() else moment.strftime(" %z")
    return moment.strftime("%Y-%m-%d %H:%M:%S") + zone


def cards_html(run: RunResults, verdicts: dict[str, tuple[str, dict[Bdf, str]]]) -> str:
    hosts = sorted(run.hosts or [], key=lambda h: VERDICT_ORDER.index(verdicts[h.name][0]))
    cards = "".join(card_html(run, host, *verdicts[host.name]) for host in hosts)
    grid = f"<div class='xp-cards'>{cards}</div>"
    if len(hosts) > CARDS_OPEN:
        grid = folded(f"{len(hosts)} hosts, the ones that need attention first", grid)
    return f"<h2 id='xp-hosts'>Hosts</h2>{grid}"


def card_html(run: RunResults, host: HostResult, verdict: str, devices: dict[Bdf, str]) -> str:
    facts = host.facts
    rows: list[tuple[str, str]] = []
    if facts is not None:
        source = " (snapshot)" if host.target.snapshot else ""
        rows += [("distro", shown(facts.distro_name)), ("kernel", shown(facts.kernel or "unknown")),
                 ("collected at", shown(when(facts.raw.collected_at) or "unknown") + source),
                 ("remote commands", f"{facts.raw.remote_commands}" + (" (when recorded)" if source else ""))]
    rows.append(("seconds", f"{host.seconds:.2f}"))
    facts_list = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    body = f"<dl class='xp-facts'>{facts_list}</dl>"
    if host.error or not devices:  # the reason is said once, under "What failed"
        what = "could not be checked" if host.error else "no device checked"
        body += f"<p><a href='#{device_anchor(host.name, None)}'>{what}: why</a></p>"
    else:
        body += "<ul class='xp-devices'>" + "".join(
            f"<li>{escape(str(bdf))} {badge(v)}{device_failures(run, host.name, bdf)}"
            f"{next_boot_html(run, host, bdf)}</li>"
            for bdf, v in devices.items()) + "</ul>"
    return (f"<article class='xp-card xp-v-{verdict}' id='xp-host-{host_key(host.name)}'>"
            f"<h3>{shown(host.name)} {badge(verdict)}</h3>{body}</article>")


def next_boot_html(run: RunResults, host: HostResult, bdf: Bdf) -> str:
    """The device's driver now and after the next boot (the boot model), its reasons folded."""
    states = run.next_boot(host, bdf)
    if states is None:
        return ""
    after = states["after_reboot"]
    label = "unknown" if not after["known"] else after["driver"] or "no driver"
    pending = " <b>(pending reboot)</b>" if states["pending_reboot"] else ""
    steps = "".join(f"<li>{shown(step)}</li>" for step in after["chain"])
    return (f"<div class='xp-boot'>now {shown(states['now'] or 'no driver')} · after reboot {shown(label)}{pending}"
            f"{folded('The next boot, step by step', f'<ol>{steps}</ol>')}</div>")


def device_failures(run: RunResults, host: str, bdf: Bdf) -> str:
    wrong = [r for r, v in run.reported.get(host, {}).get(bdf, {}).items()
             if v.status in (Status.FAIL, Status.ERROR) and run.status_label(host, bdf, v) != "waived"]
    if not wrong:
        return ""
    return f" — <a href='#{device_anchor(host, bdf)}'>{escape(', '.join(wrong))}</a>"


def failures_html(run: RunResults, verdicts: dict[str, tuple[str, dict[Bdf, str]]]) -> str:
    """Each failure's reason once, per device; what it blocks under it; evidence and fix plan folded."""
    blocks: list[str] = []
    waived: list[str] = []
    for host in run.hosts or []:
        verdict, devices = verdicts[host.name]
        if host.error or not devices:
            reason = host.error or ("no device to check: the host declares none for passthrough (no hide= entry, "
                                    "xen-pci DEVICES, domU pci line or pciback binding); name one with --device")
            blocks.append(f"<section class='xp-device xp-v-{verdict}' id='{device_anchor(host.name, None)}'>"
                          f"<h3>{shown(host.name)} {badge(verdict)}</h3><p class='xp-reason'>{shown(reason)}</p>"
                          "</section>")
            continue
        for bdf, device_verdict in devices.items():
            rules = run.reported[host.name][bdf]
            entries = failure_entries(run, host.name, bdf, rules, accepted=False)
            if entries:
                blocks.append(f"<section class='xp-device xp-v-{device_verdict}' id='{device_anchor(host.name, bdf)}'>"
                              f"<h3>{shown(host.name)} · {escape(str(bdf))} {badge(device_verdict)}</h3>{entries}"
                              "</section>")
            accepted = failure_entries(run, host.name, bdf, rules, accepted=True)
            if accepted:  # the rows link to the device: here, when nothing else of it is listed above
                anchor_id = "" if entries else f" id='{device_anchor(host.name, bdf)}'"
                waived.append(f"<section class='xp-device xp-v-waived'{anchor_id}><h3>{shown(host.name)} · "
                              f"{escape(str(bdf))}</h3>{accepted}</section>")
    if not blocks and not waived:
        return "<h2 id='xp-failures'>What failed, and why</h2><p>Nothing failed.</p>"
    more = ""
    if run.compact and len(blocks) > FAILURES_LISTED:
        more = (f"<p>… and {len(blocks) - FAILURES_LISTED:,} more: every reason is in the compliance JSON and in "
                "the table of tests below.</p>")
        blocks = blocks[:FAILURES_LISTED]
    intro = "<p>Each reason is said once; the rules it keeps from being judged are named under it.</p>"
    accepted_part = (f"<h3 id='xp-waived'>Accepted by a waiver</h3>{''.join(waived)}" if waived else "")
    return f"<h2 id='xp-failures'>What failed, and why</h2>{intro}{''.join(blocks)}{more}{accepted_part}"


def failure_entries(run: RunResults, host: str, bdf: Bdf, rules: dict[str, Verdict], accepted: bool) -> str:
    """The failing (or, `accepted`, the waived) rules of one device: rules with the same reason are one entry."""
    groups: dict[str, list[Verdict]] = {}
    for verdict in rules.values():
        if verdict.status not in (Status.FAIL, Status.ERROR):
            continue
        if (run.status_label(host, bdf, verdict) == "waived") == accepted:
            groups.setdefault(verdict.reason, []).append(verdict)
    entries = []
    for reason, group in groups.items():
        names = {v.rule for v in group}
        blocked = [r for r, v in rules.items() if blocker(v) in names]
        entries.append(failure_entry(run, host, bdf, group, reason, blocked))
    return "".join(entries)


def failure_entry(run: RunResults, host: str, bdf: Bdf, group: list[Verdict], reason: str, blocked: list[str]) -> str:
    first = group[0]
    heads = ", ".join(f"<a href='#{anchor(v.rule)}'>{escape(v.rule)}</a>" for v in group)
    label = run.status_label(host, bdf, first)
    parts = [f"<p><b>{heads}</b> <span class='xp-status xp-{first.status.value}'>{escape(label)}</span></p>"]
    waiver = run.waiver(host, bdf, first)
    if waiver is not None:
        if waiver.expired(run.today):
            days = (run.today - waiver.expires).days
            parts.append(f"<p class='xp-reason'><b>{shown(waiver.describe())} expired on {waiver.expires} ({days} "
                         f"day{plural(days)} ago)</b>: {shown(waiver.reason)}</p>")
        else:
            parts.append(f"<p class='xp-reason'><b>waived until {waiver.expires} by {shown(waiver.owner)}</b>: "
                         f"{shown(waiver.reason)}</p>")
    parts.append(f"<p class='xp-reason'>{shown(reason)}</p>")
    if blocked:
        parts.append(f"<p class='xp-blocks'>Also not judged until this passes: {escape(', '.join(blocked))}.</p>")
    if not run.compact:
        parts.append(evidence_html(first))
        note = next((run.notes[(host, bdf, v.rule)] for v in group if (host, bdf, v.rule) in run.notes), None)
        if note:
            plan = note.startswith(PLAN_NOTE)
            title = "Fix plan (apply with --fix)" if plan else "What --fix did"
            body = note.removeprefix(PLAN_NOTE + "\n")
            parts.append(folded(title, f"<pre class='xp-evidence'>{shown(body)}</pre>"))
    return f"<div class='xp-failure'>{''.join(parts)}</div>"


# -- after --fix ---------------------------------------------------------------------------------------------

def status_span(value: str | None) -> str:
    return f"<span class='xp-{value} xp-status'>{value}</span>" if value else "<i>not judged</i>"


MARKS = {"applied": "✓", "FAILED": "✗", "not run": "–", "planned": "○", "refused": "!"}


def fix_steps_html(fix: DeviceFix, why: bool = True) -> str:
    """The plan's steps with what became of each (applied, FAILED, not run, planned, refused), in order."""
    rows = []
    for step in fix.steps():
        number = f"{step.number}. " if step.number is not None else ""
        because = f" <span class='xp-why'>— {shown(step.why)}</span>" if why and step.why else ""
        rows.append(f"<div class='xp-step xp-step-{step.state.replace(' ', '-')}'>{MARKS.get(step.state, '')} "
                    f"{number}{step.state} — {shown(step.text)}{because}</div>")
    if fix.plan.reboot_required and fix.outcome == APPLIED:  # a failed or unapplied plan needs its steps first
        rows.append("<p><b>reboot required</b> for the boot-time configuration to take effect</p>")
    rows += [f"<p><i>note: {shown(note)}</i></p>" for note in fix.plan.notes]
    return "".join(rows)


def fix_undo_html(fix: DeviceFix) -> str:
    """Every backup, and the rollback commands in the order to run them (only when something was applied)."""
    if fix.outcome not in (APPLIED, FAILED):
        return ""
    backups = (f"<pre class='xp-evidence'>{shown(chr(10).join(fix.backups))}</pre>" if fix.backups
               else " <i>none recorded</i>")
    rollback = (f" — run these, in this order, to undo what was applied:"
                f"<pre class='xp-undo'>{shown(chr(10).join(fix.rollback))}</pre>" if fix.rollback
                else " <i>no command recorded: nothing applied has an undo</i>")
    return f"<div class='xp-block'><b>Backups</b>{backups}</div><div class='xp-block'><b>Rollback</b>{rollback}</div>"


def fix_extras(fix: DeviceFix, rule: str) -> str:
    """In a test's extras after --fix: its rule before → after, and what --fix did to the device."""
    before = fix.before.get(rule)
    after = fix.after.get(rule)
    return (f"<div class='xp-fix xp-fix-{fix.outcome.replace(' ', '-')}'>"
            f"<p><b>--fix</b> — {shown(rule)}: {status_span(before.status.value if before else None)} → "
            f"{status_span(after.status.value if after else None)}</p>"
            f"<p><b>{shown(fix.host)} {shown(str(fix.bdf))}: {shown(fix.headline())}</b></p>"
            f"{fix_steps_html(fix)}{fix_undo_html(fix)}</div>")


def fix_history_html(run: RunResults, fixing: bool | None = None, compact: bool | None = None) -> str:
    """The "Fix history" section after the matrix: one entry per host × device that had a plan."""
    history = fix_history(run)
    if not (history if fixing is None else fixing):
        return ""
    compact = run.compact if compact is None else compact
    planned = [f for f in history if f.outcome != NOTHING]
    nothing = [f for f in history if f.outcome == NOTHING]
    if not planned:
        checked = f" ({len(history)} device{plural(len(history))} checked)" if history else ""
        return f"{STYLE}<h2 id='xp-fix-history'>Fix history</h2><p>--fix: nothing to fix{checked}.</p>"
    counts = Counter(f.outcome for f in planned)
    tally = f"{len(planned)} device{plural(len(planned))} had a fix plan — " + " · ".join(
        f"{outcome}: {counts[outcome]}" for outcome in (APPLIED, FAILED, NOT_APPLIED, REFUSED) if counts[outcome])
    if nothing:
        tally += f"; nothing to fix on {len(nothing)} other device{plural(len(nothing))}"
    entries = [fix_entry_html(fix, compact) for fix in planned]
    rest = (f"<p>nothing to fix: {shown(', '.join(f'{f.host} {f.bdf}' for f in nothing))}</p>" if nothing else "")
    return f"{STYLE}<h2 id='xp-fix-history'>Fix history</h2><p>{tally}.</p>{''.join(entries)}{rest}"


def fix_entry_html(fix: DeviceFix, compact: bool) -> str:
    changed = " class='xp-changed'"
    changes = "".join(f"<tr{'' if b == a else changed}><td>{shown(rule)}</td>"
                      f"<td class='xp-{b}'>{b or '—'}</td><td>→</td><td class='xp-{a}'>{a or '—'}</td></tr>"
                      for rule, b, a in fix.changes())
    after = "now (nothing applied)" if fix.outcome in (NOT_APPLIED, REFUSED) else "after --fix"
    table = (f"<table class='xp-matrix'><tr><th>rule</th><th>before --fix</th><th></th><th>{after}</th></tr>"
             f"{changes}</table>")
    plan = ""
    if not compact:  # the plan itself, with its diffs: open where it is all there is (a snapshot)
        opened = " open" if fix.outcome == NOT_APPLIED else ""
        plan = (f"<details{opened}><summary>the plan{' (not applied)' if opened else ''}, with its diffs</summary>"
                f"<pre class='xp-evidence'>{shown(fix.plan.render())}</pre></details>")
    return (f"<div class='xp-fix xp-fix-{fix.outcome.replace(' ', '-')}'>"
            f"<h3>{shown(fix.host)} · {shown(str(fix.bdf))} — <span class='xp-outcome'>{shown(fix.headline())}"
            f"</span></h3>{table}<p><b>Steps</b></p>{fix_steps_html(fix, why=compact)}{fix_undo_html(fix)}{plan}</div>")


class CompactTable:
    """Compact reports list only the tests that did not pass; the matrix above still shows every verdict.

    pytest-html puts a ~700-byte JSON row per test into the page: at 14,000 tests that alone passes 10 MB.
    """

    def __init__(self, run: RunResults, config: pytest.Config) -> None:
        self.run, self.config = run, config
        self.unlisted_passes = 0
        self._html_counts: object | None = None  # pytest-html's report data, found on the first left-out row

    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list) -> None:
        if not self.run.compact or report.when != "call" or ("status", "pass") not in report.user_properties:
            return
        cells.clear()  # pytest-html leaves a row out when its cells are emptied
        self.unlisted_passes += 1
        if self._html_counts is None:
            self._html_counts = next((getattr(p, "_report", None) for p in self.config.pluginmanager.get_plugins()
                                      if type(p).__module__.startswith("pytest_html")), None)
        if self._html_counts is not None:  # a left-out row is not counted: keep the header's "N Passed" true
            self._html_counts.outcomes = "passed"  # type: ignore[attr-defined]

    def pytest_html_results_table_html(self, report: pytest.TestReport, data: list) -> None:
        if self.run.compact and report.passed and data == ["No log output captured."]:
            data.clear()

    def note(self) -> str:
        return (f"<p><i>Compact report: the matrix shows every verdict; the table below lists only the tests that "
                f"did not pass ({self.unlisted_passes:,} passing tests are counted, not listed). Evidence and fix "
                "plans are in the compliance JSON (--report-detail=full puts them here).</i></p>")


def matrix_html(run: RunResults, catalogue: bool = True) -> str:
    rules = run.rule_ids()
    head = "".join(f"<th><a href='#{anchor(r)}'>{escape(r)}</a></th>" for r in rules)  # to the catalogue
    matrix_rows = run.rows()
    rows = []
    for host, bdf, verdicts in matrix_rows:
        if bdf is None:  # a full report says why once, under "What failed"; a compact one may not list it
            reason = shown(host.error or "no device checked")
            if not run.compact:
                reason = (f"<a href='#{device_anchor(host.name, None)}'>"
                          f"{'could not be checked' if host.error else 'no device checked'}: why</a>")
            rows.append(f"<tr><td>{shown(host.name)}</td><td colspan='{len(rules) + 1}' class='xp-error'>"
                        f"{reason}</td></tr>")
            continue
        link = None if run.compact else device_anchor(host.name, bdf)
        cells = "".join(cell(verdicts.get(r), run.compact, run.status_label(host.name, bdf, verdicts[r])
                             if r in verdicts else None, link) for r in rules)
        rows.append(f"<tr><td>{shown(host.name)}</td><td>{shown(str(bdf))}</td>{cells}</tr>")
    table = f"<table class='xp-matrix'><tr><th>host</th><th>device</th>{head}</tr>{''.join(rows)}</table>"
    unreachable = sum(1 for host in run.hosts or [] if host.error)
    return (f"{STYLE}<h2 id='xp-matrix'>Compliance matrix</h2>"
            f"<details{'' if run.compact else ' open'}><summary>host × device × rule ({len(rows)} rows"
            f"{', click to open' if run.compact else ''})</summary><div class='xp-scroll'>{table}</div></details>"
            f"{tally_html(matrix_rows, rules, len(run.hosts or []), unreachable, opened=run.compact)}"
            f"{html_section() if catalogue else ''}")


def tally_html(rows: list[tuple[HostResult, Bdf | None, dict[str, Verdict]]], rules: list[str], hosts: int,
               unreachable: int, opened: bool = False) -> str:
    """Per rule, how many devices came to each status: a fleet's overview before its 2,000 matrix rows."""
    statuses = [s.value for s in Status]
    counts = {rule: Counter[str]() for rule in rules}
    for _, _, verdicts in rows:
        for rule, verdict in verdicts.items():
            counts[rule][verdict.status.value] += 1
    head = "".join(f"<th>{s}</th>" for s in statuses)
    body = "".join(f"<tr><td><a href='#{anchor(rule)}'>{escape(rule)}</a></td>"
                   + "".join(f"<td class='xp-{s}'>{counts[rule][s]}</td>" if counts[rule][s] else "<td></td>"
                             for s in statuses) + "</tr>" for rule in rules)
    summary = f"Per rule, over {hosts} host{plural(hosts)}" + (
        f" ({unreachable} could not be checked)" if unreachable else "")
    table = f"<table class='xp-matrix'><tr><th>rule</th>{head}</tr>{body}</table>"
    return (f"<details{' open' if opened else ''}><summary>{summary}</summary>"
            f"<div class='xp-scroll'>{table}</div></details>")


def cell(verdict: Verdict | None, compact: bool = False, status: str | None = None, link: str | None = None) -> str:
    """A matrix cell; where something is wrong in a full report it links to the reason (said once, below)."""
    if verdict is None:
        return "<td>—</td>"
    status = status or verdict.status.value
    label = status + (f" ({verdict.state})" if verdict.state and verdict.state != "assignable" else "")
    css = "skip" if status == "waived" else verdict.status.value
    if link is not None and status != "waived" and verdict.status in (Status.FAIL, Status.ERROR, Status.BLOCKED):
        return f"<td class='xp-{css}'><a href='#{link}'>{shown(label)}</a></td>"
    return f"<td class='xp-{css}'{cell_title(verdict, compact)}>{shown(label)}</td>"


def cell_title(verdict: Verdict, compact: bool) -> str:
    """The reason on hover; a compact report keeps it only where something is wrong, blocked cells name the rule."""
    reason = verdict.reason
    if compact:
        if verdict.status in (Status.PASS, Status.SKIP):
            return ""
        if verdict.status == Status.BLOCKED:
            reason = reason.split(":", 1)[0]
    return f" title='{shown(reason, quote=True)}'"
