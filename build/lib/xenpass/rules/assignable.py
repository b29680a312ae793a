"""assignable — seed step 3: `xl pci-assignable-list` lists the device (or a domU already has it)."""

from __future__ import annotations

from xenpass.facts.host import HostFacts
from xenpass.parse.bdf import Bdf
from xenpass.rules.base import Context, Evidence, Rule, Status, Verdict, command_evidence

NAME = "xl pci-assignable-list"


def check(facts: HostFacts, bdf: Bdf, ctx: Context) -> Verdict:
    if facts.raw.output(NAME) is None:
        return RULE.verdict(Status.FAIL, "xl is not installed: this dom0 has no Xen toolstack to hand devices "
                                         "to pciback and domUs", command_evidence(facts, NAME))
    evidence = [command_evidence(facts, NAME)]
    for domain, entries in facts.attached.items():
        evidence.append(command_evidence(facts, f"xl pci-list {domain}"))
        for entry in entries:
            if entry.bdf == bdf:
                return RULE.verdict(Status.PASS, f"{bdf} is attached to the running domain {domain} "
                                                 f"(vdev {entry.vdev}), so it is in use, not idle",
                                    *evidence, state="attached")
    if any(entry.bdf == bdf for entry in facts.assignable):
        return RULE.verdict(Status.PASS, f"{bdf} is listed by xl pci-assignable-list", *evidence,
                            state="assignable")
    output = facts.raw.output(NAME) or ""
    if "pciback driver not loaded" in output:
        return RULE.verdict(Status.FAIL, "xl reports that the pciback driver is not loaded", *evidence)
    if not facts.xl_info:
        evidence.append(Evidence("xl info", (facts.raw.output("xl info") or "").strip() or "(no output)"))
        return RULE.verdict(Status.FAIL, f"{bdf} is not listed, and xl cannot talk to Xen "
                                         "(is this dom0, are xenstored/xenconsoled running?)", *evidence)
    return RULE.verdict(Status.FAIL, f"{bdf} is bound to pciback but not listed by xl pci-assignable-list", *evidence)


RULE = Rule(
    id="assignable",
    title="device shows up as assignable",
    severity="critical",
    step="3: xl pci-assignable-list lists the device",
    requires=("driver-pciback",),
    check=check,
    reads=("xl",),
    passes=(
        '`xl pci-assignable-list` lists the device, or it is attached to a running domU (`xl pci-list`, '
        'reported as *attached*).'
    ),
    why='xl refuses to attach a device that the toolstack does not consider assignable.',
    references=('xl(1): pci-assignable-list, pci-assignable-add, pci-list',),
)
