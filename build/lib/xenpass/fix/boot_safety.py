"""Boot safety, a rule of the planner: never hide, seize or assign a device that dom0's storage needs.

A device that holds a mounted filesystem or swap (the root filesystem above all), or a bridge above one, is
never planned for: hiding it makes the next boot lose that disk, `xl pci-assignable-add` takes it away now.
Where a mount cannot be traced to its disk (e.g. `/dev/root`), storage controllers and bridges are refused too.
"""

from __future__ import annotations

from xenpass.facts.host import HostFacts
from xenpass.fix.base import Refusal
from xenpass.parse.bdf import Bdf

STORAGE_CLASS = "0x01"  # PCI base class 01: mass storage controllers
BRIDGE_CLASS = "0x0604"  # PCI-to-PCI bridges: hiding one seizes everything behind it


def storage_refusal(facts: HostFacts, bdf: Bdf, rule: str) -> Refusal | None:
    held = facts.storage_behind(bdf)
    if held:
        return Refusal(rule, f"{bdf} holds {', '.join(held)}: hiding, seizing or assigning it would take that "
                             "storage away from dom0 (at the next boot, or now)",
                       "pass through a device that holds no filesystem or swap, or move them off it first")
    device = facts.pci.get(bdf)
    kind = device.pci_class if device else ""
    if facts.untraced_storage and kind.startswith((STORAGE_CLASS, BRIDGE_CLASS)):
        return Refusal(rule, f"cannot tell which disk holds {', '.join(facts.untraced_storage)}, and {bdf} is a "
                             "storage controller or bridge that may hold it: not planning to take it from dom0",
                       "check `lsblk -s` on the host; with the root disk elsewhere, hide the device by hand")
    return None
