"""Fix driver-pciback and assignable live: `xl pci-assignable-add`, unless dom0 is using the device."""

from __future__ import annotations

from xenpass.facts.host import HostFacts
from xenpass.fix.base import Command, Part
from xenpass.parse.bdf import Bdf
from xenpass.rules.base import Context


def plan_for(rule: str):
    def plan(facts: HostFacts, bdf: Bdf, ctx: Context) -> Part:
        part = Part()
        if bdf not in facts.pci:
            part.notes.append(f"{bdf} is not on this host: nothing to bind")
            return part
        busy = facts.storage_behind(bdf)  # plan_device refuses these; kept for a direct call
        if busy:
            part.notes.append(f"{bdf} holds mounted filesystems ({', '.join(busy)}): not rebinding it live")
            part.reboot_required = True
            return part
        if facts.xl_present:
            if not facts.pciback_loaded:
                part.steps.append(Command(rule, ("modprobe", "xen-pciback"), "xl hands devices to pciback, "
                                          "which must be loaded first"))
            part.steps.append(Command(rule, ("xl", "pci-assignable-add", str(bdf)),
                                      "unbind the current driver and hand the device to pciback now"))
        else:
            part.reboot_required = True
        return part

    return plan
