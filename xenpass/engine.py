"""Judge every rule for one device on one host, with prerequisites turned into 'blocked'."""

from __future__ import annotations

from xenpass.facts.host import HostFacts
from xenpass.parse.bdf import Bdf
from xenpass.rules import RULES
from xenpass.rules.base import Context, Status, Verdict


def evaluate(facts: HostFacts, bdf: Bdf, ctx: Context) -> dict[str, Verdict]:
    """All rules, in order. A rule whose prerequisite did not pass is blocked, not failed twice."""
    verdicts: dict[str, Verdict] = {}
    for rule in RULES.values():
        blockers = [r for r in rule.requires if not verdicts[r].status.ok]
        if blockers:
            first = verdicts[blockers[0]]
            verdicts[rule.id] = Verdict(rule.id, Status.BLOCKED, f"blocked by {first.rule}: {first.reason}")
        elif facts.raw.truncated:
            verdicts[rule.id] = Verdict(rule.id, Status.ERROR, "the host's output was cut short: facts incomplete")
        else:
            verdicts[rule.id] = judge(rule.id, facts, bdf, ctx)
    return verdicts


def judge(rule_id: str, facts: HostFacts, bdf: Bdf, ctx: Context) -> Verdict:
    try:
        return RULES[rule_id].check(facts, bdf, ctx)
    except Exception as exc:
        return Verdict(rule_id, Status.ERROR, f"could not judge from this host's facts: {type(exc).__name__}: {exc}")
