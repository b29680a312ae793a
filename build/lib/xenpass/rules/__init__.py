"""The rules, in the order of the seed's steps. One file per rule; this list is the registry."""

from __future__ import annotations

from xenpass.rules import (
    assignable,
    domu_config,
    driver_pciback,
    hide_entry,
    initramfs_current,
    native_driver_blacklisted,
    xen_iommu,
)
from xenpass.rules.base import Rule

RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        hide_entry.RULE,
        native_driver_blacklisted.RULE,
        initramfs_current.RULE,
        driver_pciback.RULE,
        assignable.RULE,
        domu_config.RULE,
        xen_iommu.RULE,
    )
}
