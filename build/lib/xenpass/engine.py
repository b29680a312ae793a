"""Judge every rule for one device on one host, with prerequisites turned into 'blocked'.

Before a rule is judged: a host whose output was cut short, a host that is not a Xen dom0 and a device
that is not on the host are one verdict for every rule; a rule whose facts the collector could not read
(Rule.reads) is an error saying what to do, never a pass or a failure.
"""

from __future__ import annotations

from xenpass.facts.host import HostFacts, Unknown
from xenpass.parse.bdf import Bdf
from xenpass.rules import RULES
from xenpass.rules.base import Context, Evidence, Rule, Status, Verdict, command_evidence, file_evidence


def evaluate(facts: HostFacts, bdf: Bdf, ctx: Context) -> dict[str, Verdict]:
    """All rules, in order. A rule whose prerequisite did not pass is blocked, not failed twice."""
    verdicts: dict[str, Verdict] = {}
    whole = host_verdict(facts, bdf)
    for rule in RULES.values():
        if whole is not None:
            if whole.status is Status.FAIL and verdicts:  # said once; the other rules are blocked by it
                first = next(iter(verdicts.values()))
                verdicts[rule.id] = Verdict(rule.id, Status.BLOCKED, f"blocked by {first.rule}: {first.reason}")
            else:
                verdicts[rule.id] = Verdict(rule.id, whole.status, whole.reason, whole.evidence)
            continue
        unknown = facts.unknown(rule.reads, ctx.domus)
        blockers = [r for r in rule.requires if not verdicts[r].status.ok]
        if unknown:
            verdicts[rule.id] = unknown_verdict(rule, unknown, facts.user)
        elif blockers:
            first = verdicts[blockers[0]]
            verdicts[rule.id] = Verdict(rule.id, Status.BLOCKED, f"blocked by {first.rule}: {first.reason}")
        else:
            verdicts[rule.id] = judge(rule.id, facts, bdf, ctx)
    return verdicts


def host_verdict(facts: HostFacts, bdf: Bdf) -> Verdict | None:
    """One verdict that stands for every rule of this device, or None when the rules are to be judged."""
    if facts.raw.truncated:
        return Verdict("", Status.ERROR, "the host's output was cut short: facts incomplete")
    if facts.not_dom0_reason:
        evidence = (file_evidence(facts, "/proc/xen/capabilities"), command_evidence(facts, "xl info"),
                    file_evidence(facts, "/sys/hypervisor/type"))
        return Verdict("", Status.ERROR, facts.not_dom0_reason, tuple(e for e in evidence if e.text))
    absent = facts.absent_reason(bdf)
    if absent:
        listing = "\n".join(str(b) for b in sorted(facts.pci))
        return Verdict("", Status.FAIL, absent, (Evidence("/sys/bus/pci/devices", listing),))
    return None


def unknown_verdict(rule: Rule, unknown: list[Unknown], user: str | None) -> Verdict:
    """'cannot read /etc/modprobe.d/x.conf as user deploy: run with --sudo', with each unknown as evidence."""
    as_user = f" as user {user}" if user else ""
    parts = []
    for kind, verb in (("file", "cannot read"), ("dir", "cannot list"), ("image", "cannot read")):
        paths = [u.what for u in unknown if u.kind == kind]
        if paths:
            parts.append(f"{verb} {', '.join(paths)}{as_user}")
    failed: dict[str, list[str]] = {}  # xl fails the same way for every subcommand: say it once
    for u in unknown:
        if u.kind == "command":
            failed.setdefault(u.summary, []).append(f"`{u.what}`")
    parts += [f"{', '.join(names)} failed {said}" for said, names in failed.items()]
    hint = ": run with --sudo" if any(u.permission for u in unknown) else ""
    evidence = [Evidence(u.what, u.detail) for u in unknown]
    return rule.verdict(Status.ERROR, "; ".join(parts) + hint, *evidence)


def judge(rule_id: str, facts: HostFacts, bdf: Bdf, ctx: Context) -> Verdict:
    try:
        return RULES[rule_id].check(facts, bdf, ctx)
    except Exception as exc:
        return Verdict(rule_id, Status.ERROR, f"could not judge from this host's facts: {type(exc).__name__}: {exc}")
