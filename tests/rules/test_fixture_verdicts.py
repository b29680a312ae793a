"""Every rule over every fixture snapshot: the verdict a sysadmin would expect, and why."""

from __future__ import annotations

import pytest

from tests.conftest import fixture_names, load_fixture
from xenpass.engine import evaluate
from xenpass.parse.bdf import parse_bdf
from xenpass.rules import RULES
from xenpass.rules.base import Context
from xenpass.rules.declared import declared_devices

ALL_PASS = dict.fromkeys(RULES, "pass")
BROKEN_BLACKLIST = {**ALL_PASS, "native-driver-blacklisted": "fail", "initramfs-current": "blocked",
                    "driver-pciback": "fail", "assignable": "blocked"}
STALE = {**ALL_PASS, "initramfs-current": "fail", "driver-pciback": "fail", "assignable": "blocked"}
NOT_HIDDEN = {**ALL_PASS, "hide-entry": "fail", "driver-pciback": "fail", "assignable": "blocked"}

EXPECTED: dict[str, tuple[str, dict[str, str]]] = {
    "node03-broken-mpt2sas-alias": ("01:00.0", BROKEN_BLACKLIST),
    "node03-fixed": ("01:00.0", ALL_PASS),
    "node03-stale-initramfs": ("01:00.0", STALE),
    "node03-initramfs-lacks-blacklist": ("01:00.0", STALE),
    "node03-hide-typo": ("01:00.0", NOT_HIDDEN),
    "node03-plain-line-first": ("01:00.0", NOT_HIDDEN),
    "node03-attached-to-domu": ("01:00.0", ALL_PASS),
    "alpine-busybox-lspci": ("01:00.0", ALL_PASS),
    "debian12-kmod-compliant": ("00:05.0", {**ALL_PASS, "domu-config": "skip"}),
    "debian12-modules-args-ignored": ("00:05.0", {**NOT_HIDDEN, "domu-config": "skip"}),
    # the root disk on the MegaRAID at 00:06.0, the MegaRAID 2108 at 01:00.0 to pass through: nothing set up yet
    "debian12-root-on-shared-driver": ("01:00.0", {
        "hide-entry": "fail", "native-driver-blacklisted": "fail", "initramfs-current": "blocked",
        "driver-pciback": "fail", "assignable": "blocked", "domu-config": "skip", "xen-iommu": "pass"}),
    # recorded from the QEMU lab (real Xen 4.17 + Debian 12 dom0) with --record, before any configuration
    "lab-debian12-pristine": ("00:05.0", {**BROKEN_BLACKLIST, "hide-entry": "fail", "domu-config": "skip"}),
    # recorded from the second lab (real Xen 4.20 + Debian 13 dom0, dracut hostonly image), before any configuration
    "lab-debian13-dracut-pristine": ("00:05.0", {**BROKEN_BLACKLIST, "hide-entry": "fail", "domu-config": "skip"}),
    # ... and after `modprobe xen-pciback; xl pci-assignable-add 00:05.0; xl create -p tiny.cfg` (a PV domU)
    "lab-debian12-attached-to-pv-domu": ("00:05.0", {**ALL_PASS, "hide-entry": "fail",
                                                     "native-driver-blacklisted": "fail",
                                                     "initramfs-current": "blocked"}),
    # collected as a non-root user: the real blacklist is in a mode-600 file and xl refuses; unknown, not judged
    "node03-nonroot-blacklist-unreadable": ("01:00.0", {**ALL_PASS, "hide-entry": "error",
                                                        "native-driver-blacklisted": "error",
                                                        "initramfs-current": "error", "assignable": "error",
                                                        "xen-iommu": "error"}),
    # a KVM guest asked about its own root disk's controller: not a Xen dom0, for every rule
    "ordinary-vm-not-dom0": ("00:02.0", dict.fromkeys(RULES, "error")),
}
DECLARES_NOTHING = {"lab-debian12-pristine", "lab-debian13-dracut-pristine", "ordinary-vm-not-dom0",
                    "debian12-root-on-shared-driver"}

# Key phrases of the reasons: the explanation is the product, not only the status.
REASONS = {
    ("node03-broken-mpt2sas-alias", "native-driver-blacklisted"): "mpt2sas is only an alias of mpt3sas",
    ("node03-broken-mpt2sas-alias", "initramfs-current"): "blocked by native-driver-blacklisted",
    ("node03-broken-mpt2sas-alias", "driver-pciback"): "bound to mpt3sas",
    ("node03-stale-initramfs", "initramfs-current"): "is newer than /boot/initramfs-lts",
    ("node03-initramfs-lacks-blacklist", "initramfs-current"): "lacks `blacklist mpt3sas`",
    ("node03-hide-typo", "hide-entry"): 'Error parsing pci_devs_to_hide at "(0000:82.0.0)"',
    ("node03-hide-typo", "driver-pciback"): "xen-pciback is not loaded",
    ("node03-plain-line-first", "hide-entry"): "already loaded xen_pciback",
    ("node03-attached-to-domu", "assignable"): "attached to the running domain nas",
    ("debian12-modules-args-ignored", "hide-entry"): "systemd-modules-load takes module names only",
    ("lab-debian12-pristine", "hide-entry"): "nothing loads xen-pciback at boot",
    ("lab-debian12-pristine", "driver-pciback"): "xen-pciback is not loaded; 0000:00:05.0 is bound to mptsas",
    ("lab-debian13-dracut-pristine", "driver-pciback"): "xen-pciback is not loaded; 0000:00:05.0 is bound to mptsas",
    ("lab-debian12-attached-to-pv-domu", "assignable"): "attached to the running domain tiny (vdev 00.0)",
    ("lab-debian12-attached-to-pv-domu", "domu-config"): "named by the pci list of /etc/xen/tiny.cfg",
    ("node03-nonroot-blacklist-unreadable", "native-driver-blacklisted"):
        "cannot read /etc/modprobe.d/xen-passthrough.conf as user deploy: run with --sudo",
    ("node03-nonroot-blacklist-unreadable", "assignable"): "Permission denied",
    ("ordinary-vm-not-dom0", "driver-pciback"): "not a Xen dom0: /proc/xen/capabilities does not exist",
}


def test_every_fixture_has_expectations():
    assert sorted(EXPECTED) == fixture_names()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_verdicts(name):
    device, expected = EXPECTED[name]
    facts = load_fixture(name)
    verdicts = evaluate(facts, parse_bdf(device), Context())
    got = {rule: v.status.value for rule, v in verdicts.items()}
    assert got == expected, {r: verdicts[r].reason for r in got if got[r] != expected[r]}
    for (scenario, rule), phrase in REASONS.items():
        if scenario == name:
            assert phrase in verdicts[rule].reason


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_declares_its_device(name):
    device, _ = EXPECTED[name]
    expected = [] if name in DECLARES_NOTHING else [parse_bdf(device)]
    assert declared_devices(load_fixture(name)) == expected


def test_attached_is_a_distinct_passing_state():
    verdicts = evaluate(load_fixture("node03-attached-to-domu"), parse_bdf("01:00.0"), Context())
    assert verdicts["assignable"].state == "attached"


def test_every_failure_carries_evidence():
    for name, (device, _) in EXPECTED.items():
        for verdict in evaluate(load_fixture(name), parse_bdf(device), Context()).values():
            if verdict.status.value in ("fail", "error"):
                assert verdict.evidence, (name, verdict.rule)
