"""Which devices a host itself declares for passthrough (used when no --device is given)."""

from __future__ import annotations

from xenpass.facts.host import HostFacts, xen_pci_devices
from xenpass.parse.bdf import Bdf
from xenpass.parse.hide import HideSlot
from xenpass.rules.hide_sources import hide_sources


def devices_named_by(facts: HostFacts, slot: HideSlot) -> list[Bdf]:
    """Present devices a hide slot names; an exact slot names its device even when absent."""
    present = [b for b in facts.pci if slot.matches(b)]
    if present or slot.slot is None or slot.func is None:
        return present
    return [Bdf(slot.domain, slot.bus, slot.slot, slot.func)]


def declared_devices(facts: HostFacts) -> list[Bdf]:
    """Hide entries anywhere, xen-pci DEVICES, domU pci lines, and devices bound to pciback now."""
    found: list[Bdf] = []
    for source in hide_sources(facts):
        for slot in source.value.slots:
            found += devices_named_by(facts, slot)
    found += xen_pci_devices(facts)
    for cfg in facts.domu_configs.values():
        found += [s.bdf for s in cfg.pci or () if s.bdf is not None]
    found += facts.pciback_slots
    found += [b for b, dev in facts.pci.items() if dev.driver == "pciback"]
    return sorted(dict.fromkeys(found))
