"""Rules at the edges DOMAIN.md describes, by editing one fact of a compliant snapshot at a time."""

from __future__ import annotations

import pytest

from tests.conftest import load_fixture
from xenpass.engine import evaluate
from xenpass.facts.host import HostFacts
from xenpass.facts.raw import FileFact
from xenpass.parse.bdf import parse_bdf
from xenpass.rules.base import Context

NODE03 = parse_bdf("01:00.0")
LAB = parse_bdf("00:05.0")


def edited(name: str, files: dict[str, str | None] | None = None, cmdline: str | None = None) -> HostFacts:
    raw = load_fixture(name).raw
    for path, text in (files or {}).items():
        if text is None:
            raw.files.pop(path, None)
        else:
            raw.files[path] = FileFact(path=path, content=text, mtime=1_760_000_000)
    if cmdline is not None:
        raw.files["/proc/cmdline"] = FileFact(path="/proc/cmdline", content=cmdline)
    return HostFacts(raw)


def verdict(facts: HostFacts, bdf, rule: str, ctx: Context | None = None):
    return evaluate(facts, bdf, ctx or Context())[rule]


def test_hide_slot_on_the_upstream_bridge_covers_the_device():
    facts = edited("node03-fixed", {"/etc/modules": "xen_pciback hide=(00:1c.0)\n"})
    v = verdict(facts, NODE03, "hide-entry")
    assert v.status.value == "pass" and "upstream bridge (0000:00:1c.0)" in v.reason


def test_wildcard_slot_covers_the_device():
    facts = edited("node03-fixed", {"/etc/modules": "xen_pciback hide=(0000:01:*.*)\n"})
    assert verdict(facts, NODE03, "hide-entry").status.value == "pass"


def test_space_inside_the_value_is_named():
    facts = edited("node03-fixed", {"/etc/modules": "xen_pciback hide=(02:00.0) (01:00.0)\n"})
    v = verdict(facts, NODE03, "hide-entry")
    assert v.status.value == "fail" and "space inside the hide= value" in v.reason


def test_modules_service_outside_every_runlevel_is_a_failure():
    facts = edited("node03-fixed")
    facts.raw.flags["runlevel"] = ["sysinit/hwdrivers", "default/xenstored"]
    v = verdict(facts, NODE03, "hide-entry")
    assert v.status.value == "fail" and "'modules' service is in no runlevel" in v.reason


def test_options_line_counts_on_alpine_too():
    facts = edited("node03-fixed", {"/etc/modules": "xen_pciback\n",
                                    "/etc/modprobe.d/xen.conf": "options xen_pciback hide=(01:00.0)\n"})
    assert verdict(facts, NODE03, "hide-entry").status.value == "pass"


def test_debian_without_a_loader_fails_even_with_options():
    facts = edited("debian12-kmod-compliant", {"/etc/modules": "# nothing\n"})
    v = verdict(facts, LAB, "hide-entry")
    assert v.status.value == "fail" and "nothing loads xen-pciback at boot" in v.reason


def test_debian_kmod_honours_cmdline_hide_with_a_dash():
    facts = edited("debian12-kmod-compliant", {"/etc/modprobe.d/xen-pciback.conf": None},
                   cmdline="root=/dev/vda xen-pciback.hide=(0000:00:05.0)")
    assert verdict(facts, LAB, "hide-entry").status.value == "pass"


def test_busybox_ignores_the_dashed_cmdline_spelling():
    facts = edited("node03-fixed", {"/etc/modules": "xen_pciback\n"}, cmdline="quiet xen-pciback.hide=(01:00.0)")
    assert verdict(facts, NODE03, "hide-entry").status.value == "fail"
    facts = edited("node03-fixed", {"/etc/modules": "xen_pciback\n"}, cmdline="quiet xen_pciback.hide=(01:00.0)")
    assert verdict(facts, NODE03, "hide-entry").status.value == "pass"


def test_builtin_pciback_reads_only_the_cmdline():
    facts = edited("debian12-kmod-compliant")
    facts.raw.flags["pciback_module"] = ["builtin"]
    v = verdict(facts, LAB, "hide-entry")
    assert v.status.value == "fail" and "built into the kernel" in v.reason


@pytest.mark.parametrize(("line", "status"), [
    ("install mptsas /bin/false\n", "pass"),
    ("softdep mptsas pre: xen-pciback\n", "pass"),
    ("install mptsas /sbin/modprobe xen-pciback; /sbin/modprobe --ignore-install mptsas\n", "pass"),
    ("install mptsas /sbin/modprobe --ignore-install mptsas\n", "fail"),
    ("blacklist mpt-sas\n", "fail"),
])
def test_kmod_alternatives_to_blacklisting(line, status):
    facts = edited("debian12-kmod-compliant", {"/etc/modprobe.d/xen-passthrough.conf": line})
    assert verdict(facts, LAB, "native-driver-blacklisted").status.value == status


def test_busybox_ignores_install_and_says_so():
    facts = edited("node03-fixed", {"/etc/modprobe.d/blacklist.conf": "install mpt3sas /bin/false\n"})
    v = verdict(facts, NODE03, "native-driver-blacklisted")
    assert v.status.value == "fail" and "busybox modprobe understands only" in v.reason


def test_blacklist_does_not_stop_a_module_named_in_etc_modules():
    facts = edited("node03-fixed", {"/etc/modules": "mpt3sas\nxen_pciback hide=(01:00.0)\n"})
    v = verdict(facts, NODE03, "native-driver-blacklisted")
    assert v.status.value == "fail" and "loaded by name at /etc/modules:1" in v.reason


def test_native_driver_built_in_cannot_be_blacklisted():
    facts = edited("node03-fixed", {"/lib/modules/6.6.31-0-lts/modules.builtin":
                                    "kernel/drivers/scsi/mpt3sas/mpt3sas.ko\n"})
    v = verdict(facts, NODE03, "native-driver-blacklisted")
    assert v.status.value == "fail" and "built into kernel" in v.reason


def test_cmdline_blacklist_counts_on_kmod():
    facts = edited("debian12-kmod-compliant", {"/etc/modprobe.d/xen-passthrough.conf": None},
                   cmdline="root=/dev/vda modprobe.blacklist=foo,mptsas")
    assert verdict(facts, LAB, "native-driver-blacklisted").status.value == "pass"


def test_initramfs_keeps_a_removed_blacklist():
    facts = edited("debian12-kmod-compliant", {"/etc/modprobe.d/xen-passthrough.conf": "install mptsas /bin/false\n"})
    v = verdict(facts, LAB, "initramfs-current")
    assert v.status.value == "fail" and "still has `blacklist mptsas`" in v.reason


def test_missing_initramfs_is_named():
    facts = edited("debian12-kmod-compliant")
    facts.raw.boot.clear()
    facts.raw.initramfs.clear()
    v = verdict(facts, LAB, "initramfs-current")
    assert v.status.value == "fail" and "no initramfs for the running kernel" in v.reason


def test_given_domu_config_must_name_the_device():
    facts = edited("node03-fixed", {"/etc/xen/web.cfg": "name = 'web'\npci = [ '02:00.0' ]\n"})
    v = verdict(facts, NODE03, "domu-config", Context(domus=("/etc/xen/web.cfg",)))
    assert v.status.value == "fail" and "does not name 0000:01:00.0" in v.reason
    v = verdict(facts, NODE03, "domu-config", Context(domus=("/etc/xen/none.cfg",)))
    assert v.status.value == "fail" and "does not exist" in v.reason


def test_no_iommu_is_a_warning_not_a_failure():
    facts = edited("node03-fixed")
    facts.raw.commands["xl info"].output = facts.raw.commands["xl info"].output.replace(
        "hvm_directio pv_directio ", "")
    assert verdict(facts, NODE03, "xen-iommu").status.value == "warn"


def test_xl_without_pciback_blocks_assignable_with_the_reason():
    facts = load_fixture("node03-hide-typo")
    v = verdict(facts, NODE03, "assignable")
    assert v.status.value == "blocked" and v.reason.startswith("blocked by driver-pciback: xen-pciback is not loaded")


def test_garbage_from_a_host_is_a_verdict_not_a_crash():
    facts = edited("node03-fixed", {"/etc/modules": "\x00\x01((((hide=\n", "/proc/cmdline": "\"unterminated"})
    facts.raw.commands["lspci -k"].output = "\x1b[31m garbage \n\t\tKernel driver in use:\n"
    statuses = {v.status.value for v in evaluate(facts, NODE03, Context()).values()}
    assert statuses <= {"pass", "fail", "blocked", "warn", "skip", "error"}
