"""The seed's steps as checks: one test per rule, per device, per host.

Each test asks its rule for a verdict (computed from facts collected once per host) and
asserts it; the failure message is the rule's reason, and the evidence is in the report.
"""

import pytest

from xenpass.plugin import assert_verdict


@pytest.mark.rule("hide-entry")
def test_hide_entry_present(verdict):
    """Step 2: `xen_pciback hide=(01:00.0)` is where this distro reads it, and will take effect."""
    assert_verdict(verdict)


@pytest.mark.rule("native-driver-blacklisted")
def test_conflicting_module_blacklisted(verdict):
    """Step 5: the device's real native module (mpt3sas, not the alias mpt2sas) cannot claim it first."""
    assert_verdict(verdict)


@pytest.mark.rule("initramfs-current")
def test_initramfs_newer_than_blacklist(verdict):
    """Step 5: the initramfs was rebuilt after the blacklist and carries it."""
    assert_verdict(verdict)


@pytest.mark.rule("driver-pciback")
def test_driver_in_use_is_pciback(verdict):
    """Step 3: `lspci -k` shows `Kernel driver in use: pciback`."""
    assert_verdict(verdict)


@pytest.mark.rule("assignable")
def test_device_is_assignable(verdict):
    """Step 3: `xl pci-assignable-list` lists the device (or a running domU has it)."""
    assert_verdict(verdict)


@pytest.mark.rule("domu-config")
def test_domu_config_names_device(verdict):
    """Step 4: the domU configuration has `pci = [ '01:00.0' ]`."""
    assert_verdict(verdict)


@pytest.mark.rule("xen-iommu")
def test_xen_reports_iommu(verdict):
    """Xen has an IOMMU (asked of Xen: dom0 Linux cannot see it)."""
    assert_verdict(verdict)
