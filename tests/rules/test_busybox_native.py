"""native-driver-blacklisted on a busybox-modprobe host (Alpine): the reason names the busybox behaviour used."""

from __future__ import annotations

from tests.rules.test_rule_edges import NODE03, edited, verdict
from xenpass.facts.raw import CommandFact

BROKEN = "node03-broken-mpt2sas-alias"  # blacklist.conf says `blacklist mpt2sas`: only an alias of mpt3sas


def test_cmdline_blacklist_with_ko_counts():
    v = verdict(edited(BROKEN, cmdline="root=/dev/sda1 modprobe.blacklist=mpt3sas.ko\n"), NODE03,
                "native-driver-blacklisted")
    assert v.status.value == "pass" and "/proc/cmdline" in v.reason and "busybox modprobe" in v.reason


def test_a_backup_file_is_not_read():
    facts = edited(BROKEN, {"/etc/modprobe.d/blacklist.conf.bak": "blacklist mpt3sas\n"})
    v = verdict(facts, NODE03, "native-driver-blacklisted")
    assert v.status.value == "fail" and "blacklist.conf.bak is not read" in v.reason


def test_config_alias_to_pciback_found_in_modules_dep_keeps_the_native_driver_out():
    facts = edited(BROKEN, {"/etc/modprobe.d/xen.conf": "alias pci:v00001000d00000072* xen-pciback\n"})
    facts.raw.commands["modules.dep"] = CommandFact("modules.dep", "kernel/drivers/xen/xen-pciback.ko.gz:\n", 0)
    v = verdict(facts, NODE03, "native-driver-blacklisted")
    assert v.status.value == "pass" and "never reads modules.alias" in v.reason


def test_config_alias_to_a_name_not_in_modules_dep_does_not():
    facts = edited(BROKEN, {"/etc/modprobe.d/xen.conf": "alias pci:v00001000d00000072* off\n"})
    facts.raw.commands["modules.dep"] = CommandFact("modules.dep", "kernel/drivers/xen/xen-pciback.ko.gz:\n", 0)
    v = verdict(facts, NODE03, "native-driver-blacklisted")
    assert v.status.value == "fail" and "off are not in modules.dep" in v.reason


def test_fix_disables_a_load_by_name_with_ko_suffix():
    from xenpass.fix.native_driver_blacklisted import plan
    from xenpass.rules.base import Context

    facts = edited(BROKEN, {"/etc/modprobe.d/blacklist.conf": "blacklist mpt3sas\n",
                            "/etc/modules": "mpt3sas.ko\nxen_pciback hide=(01:00.0)\n"})  # mpt3sas first
    assert verdict(facts, NODE03, "native-driver-blacklisted").status.value == "fail"
    edits = {step.path: step for step in plan(facts, NODE03, Context()).steps}
    assert "# mpt3sas.ko  # disabled by xenpass" in edits["/etc/modules"].after
