"""driver-pciback — seed step 3: `lspci -k` shows `Kernel driver in use: pciback`."""

from __future__ import annotations

from xenpass.facts.host import HostFacts
from xenpass.parse.bdf import Bdf
from xenpass.rules.base import Context, Evidence, Rule, Status, Verdict, command_evidence
from xenpass.rules.boot_outcome import predict


def check(facts: HostFacts, bdf: Bdf, ctx: Context) -> Verdict:
    dev = facts.pci.get(bdf)
    evidence = [command_evidence(facts, "lspci -k", facts.lspci[bdf].raw)] if bdf in facts.lspci else []
    kernel_log = [ln for ln in (facts.raw.output("dmesg") or "").splitlines() if ln.strip()]
    if kernel_log:
        evidence.append(Evidence("dmesg (pciback lines)", "\n".join(kernel_log[-12:])))
    if dev is None:
        return RULE.verdict(Status.FAIL, f"{bdf} is not on this host (no /sys/bus/pci/devices/{bdf})", *evidence)
    evidence.insert(0, Evidence(f"/sys/bus/pci/devices/{bdf}/driver", dev.driver or "(no driver bound)"))
    after = predict(facts, bdf)
    if dev.driver == "pciback":
        if after.known and after.driver != "pciback":  # live only (xl pci-assignable-add): the boot undoes it
            return RULE.verdict(Status.PASS, f"{bdf} is bound to pciback now; after the next boot it will be on "
                                             f"{after.label}", *evidence, after.evidence())
        return RULE.verdict(Status.PASS, f"{bdf} is bound to pciback", *evidence)
    if after.known and after.driver == "pciback":  # done, but only a reboot makes it so: not compliant yet
        return RULE.verdict(Status.FAIL, f"pending reboot: {bdf} is on {dev.driver or 'no driver'} now, and the "
                                         f"next boot gives it to pciback: {after.why}", *evidence, after.evidence(),
                            state="pending-reboot")
    if not facts.pciback_loaded:
        why = "xen-pciback is not loaded"
        parse_errors = [ln for ln in kernel_log if "Error parsing" in ln]
        if parse_errors:
            why += f" (the kernel rejected its hide= value: {parse_errors[-1].strip()})"
        return RULE.verdict(Status.FAIL, f"{why}; {bdf} is bound to {dev.driver or 'no driver'}", *evidence)
    if dev.driver:
        return RULE.verdict(Status.FAIL, f"{bdf} is bound to {dev.driver}, not pciback: the native driver claimed "
                                         "it first (reboot with the fixed configuration, or "
                                         f"`xl pci-assignable-add {bdf}`)", *evidence)
    return RULE.verdict(Status.FAIL, f"{bdf} is bound to no driver; pciback is loaded but did not seize it",
                        *evidence)


RULE = Rule(
    id="driver-pciback",
    title="driver in use is pciback",
    severity="critical",
    step="3: lspci -k shows Kernel driver in use: pciback",
    requires=(),
    check=check,
    reads=("sysfs", "kernel-modules"),
    passes='`/sys/bus/pci/devices/BDF/driver` is `pciback`.',
    why='only a device bound to pciback can be handed to a domU; any other driver means dom0 is using it now.',
    references=('Linux Documentation/ABI/testing/sysfs-bus-pci', 'lspci(8) -k'),
)
