"""xen-iommu — Xen itself reports an IOMMU (dom0 Linux cannot see it: ask Xen, not /sys/kernel/iommu_groups)."""

from __future__ import annotations

from xenpass.facts.host import HostFacts
from xenpass.parse.bdf import Bdf
from xenpass.rules.base import Context, Evidence, Rule, Status, Verdict, command_evidence

DIRECTIO = ("hvm_directio", "pv_directio")


def check(facts: HostFacts, bdf: Bdf, ctx: Context) -> Verdict:
    info = facts.xl_info
    if not info:
        return RULE.verdict(Status.WARN, "xl info gave nothing: cannot tell whether Xen has an IOMMU",
                            command_evidence(facts, "xl info"))
    caps = info.get("virt_caps", "")
    evidence = [Evidence("xl info", f"virt_caps              : {caps}\n"
                                    f"xen_commandline        : {info.get('xen_commandline', '')}")]
    found = [c for c in DIRECTIO if c in caps.split()]
    if found:
        return RULE.verdict(Status.PASS, f"Xen has an IOMMU enabled (virt_caps: {' '.join(found)})", *evidence)
    return RULE.verdict(Status.WARN, "Xen reports no IOMMU (no hvm_directio/pv_directio in virt_caps): HVM "
                                     "passthrough is impossible and PV passthrough gives the guest DMA to all "
                                     "memory; enable VT-d/AMD-Vi in firmware and check iommu= on Xen's command line",
                        *evidence)


RULE = Rule(
    id="xen-iommu",
    title="Xen reports an IOMMU",
    severity="warning",
    step="(implied) Xen needs an IOMMU for safe passthrough",
    requires=(),
    check=check,
    reads=("xl",),
    passes="*warning level*: Xen's `xl info` `virt_caps` has `hvm_directio`/`pv_directio`.",
    why="without an IOMMU, passthrough is either refused (HVM) or unsafe (PV): the guest's device can DMA anywhere.",
    references=('xl(1): info (virt_caps)', 'Xen command line: iommu='),
)
