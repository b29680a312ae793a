"""Unknown is not a verdict: facts the collector could not read, hosts that are not a dom0, absent devices.

Each test edits one thing of a fixture snapshot (or loads the fixture recorded for it) and checks that the
rules say what is unknown instead of judging it, and that the planner plans nothing on an unknown.
"""

from __future__ import annotations

import pytest

from tests.conftest import load_fixture
from xenpass.engine import evaluate
from xenpass.facts.host import HostFacts
from xenpass.facts.raw import CommandFact, FileFact
from xenpass.fix import plan_device
from xenpass.parse.bdf import parse_bdf
from xenpass.rules import RULES
from xenpass.rules.base import Context, Status

NODE03 = parse_bdf("01:00.0")
BLACKLIST = "/etc/modprobe.d/blacklist.conf"
XL_DENIED = ("xencall: error: Could not obtain handle on privileged command interface: Permission denied\n"
             "libxl: error: libxl.c:102:libxl_ctx_alloc: cannot open libxc handle: Permission denied\n"
             "cannot init xl context\n")


def statuses(facts: HostFacts, bdf=NODE03, ctx: Context | None = None) -> dict[str, str]:
    return {r: v.status.value for r, v in evaluate(facts, bdf, ctx or Context()).items()}


def unreadable_blacklist(name: str = "node03-broken-mpt2sas-alias") -> HostFacts:
    """The file that holds the blacklist is mode 600 and the collector ran as `deploy`."""
    raw = load_fixture(name).raw
    old = raw.files[BLACKLIST]
    raw.files[BLACKLIST] = FileFact(BLACKLIST, mtime=old.mtime, size=old.size, mode="600", uid=0, gid=0,
                                    unreadable=True)
    raw.flags["user"] = ["deploy"]
    return HostFacts(raw)


def unlistable_modprobe_dir() -> HostFacts:
    raw = load_fixture("node03-broken-mpt2sas-alias").raw
    for path in [p for p in raw.files if p.startswith("/etc/modprobe.d/")]:
        del raw.files[path]
    raw.flags["unreadable_dirs"] = ["/etc/modprobe.d/"]
    raw.flags["user"] = ["deploy"]
    return HostFacts(raw)


def xl_denied(name: str = "node03-fixed") -> HostFacts:
    raw = load_fixture(name).raw
    for cmd in ("xl info", "xl pci-assignable-list", "xl list"):
        raw.commands[cmd] = CommandFact(cmd, XL_DENIED, 1)
    return HostFacts(raw)


def not_a_dom0(name: str = "node03-broken-mpt2sas-alias") -> HostFacts:
    """A host without xl and without /proc/xen: an ordinary machine (its PCI devices are real)."""
    raw = load_fixture(name).raw
    for cmd in [c for c in raw.commands if c.startswith("xl")]:
        del raw.commands[cmd]
    raw.files.pop("/proc/xen/capabilities", None)
    raw.files.pop("/sys/hypervisor/type", None)
    return HostFacts(raw)


# -- unreadable files and directories ---------------------------------------------------------------
@pytest.mark.parametrize("make", [unreadable_blacklist, unlistable_modprobe_dir])
def test_unreadable_modprobe_config_is_an_error_naming_path_user_and_sudo(make):
    verdicts = evaluate(make(), NODE03, Context())
    for rule in ("native-driver-blacklisted", "initramfs-current"):
        v = verdicts[rule]
        assert v.status is Status.ERROR, (rule, v.status, v.reason)
        assert "/etc/modprobe.d/" in v.reason and "deploy" in v.reason and "--sudo" in v.reason, v.reason
        assert any("/etc/modprobe.d/" in e.source for e in v.evidence), v.evidence


def test_unreadable_file_is_named_exactly():
    v = evaluate(unreadable_blacklist(), NODE03, Context())["native-driver-blacklisted"]
    assert v.reason.startswith(f"cannot read {BLACKLIST} as user deploy"), v.reason


def test_unreadable_file_does_not_touch_rules_that_do_not_read_it():
    got = statuses(unreadable_blacklist("node03-fixed"))
    assert got["driver-pciback"] == "pass" and got["domu-config"] == "pass" and got["assignable"] == "pass"


def test_unreadable_modprobe_config_hides_the_hide_options_too():
    """hide= may sit in an `options` line of the unreadable file: hide-entry cannot pass or fail on Debian."""
    raw = load_fixture("debian12-kmod-compliant").raw
    raw.files["/etc/modprobe.d/xen-pciback.conf"] = FileFact("/etc/modprobe.d/xen-pciback.conf", unreadable=True)
    v = evaluate(HostFacts(raw), parse_bdf("00:05.0"), Context())["hide-entry"]
    assert v.status is Status.ERROR and "/etc/modprobe.d/xen-pciback.conf" in v.reason


@pytest.mark.parametrize("make", [unreadable_blacklist, unlistable_modprobe_dir])
def test_nothing_is_planned_on_an_unreadable_file(make):
    facts = make()
    plan = plan_device(facts, NODE03, Context(), only={"native-driver-blacklisted", "initramfs-current"})
    assert plan.empty and not plan.steps, plan.render()
    assert not any(s.path.startswith("/etc/modprobe.d/") for s in plan_device(facts, NODE03, Context()).steps
                   if hasattr(s, "path"))


def test_unreadable_domu_config_given_by_the_user_is_an_error():
    raw = load_fixture("node03-fixed").raw
    raw.files["/etc/xen/nas.cfg"] = FileFact("/etc/xen/nas.cfg", unreadable=True)
    v = evaluate(HostFacts(raw), NODE03, Context(("/etc/xen/nas.cfg",)))["domu-config"]
    assert v.status is Status.ERROR and "/etc/xen/nas.cfg" in v.reason
    assert plan_device(HostFacts(raw), NODE03, Context(("/etc/xen/nas.cfg",))).empty


def test_unreadable_unrelated_domu_config_does_not_matter_when_one_is_given():
    raw = load_fixture("node03-fixed").raw
    raw.files["/etc/xen/other.cfg"] = FileFact("/etc/xen/other.cfg", unreadable=True)
    v = evaluate(HostFacts(raw), NODE03, Context(("/etc/xen/nas.cfg",)))["domu-config"]
    assert v.status is Status.PASS, v.reason


def test_initramfs_not_collected_is_an_error_not_a_failure():
    raw = load_fixture("node03-fixed").raw
    raw.initramfs.clear()  # /boot/initramfs-lts is listed by stat, but its bytes never came
    v = evaluate(HostFacts(raw), NODE03, Context())["initramfs-current"]
    assert v.status is Status.ERROR and "/boot/initramfs-lts" in v.reason
    assert plan_device(HostFacts(raw), NODE03, Context()).empty


# -- xl that fails -----------------------------------------------------------------------------------
def test_xl_denied_makes_the_xl_rules_errors_with_xls_own_words():
    verdicts = evaluate(xl_denied(), NODE03, Context())
    for rule in ("assignable", "xen-iommu"):
        v = verdicts[rule]
        assert v.status is Status.ERROR, (rule, v.reason)
        assert "Permission denied" in v.reason and "--sudo" in v.reason and "xl" in v.reason
    assert verdicts["driver-pciback"].status is Status.PASS


def test_xl_denied_on_a_device_not_yet_bound_plans_no_xl_step_for_assignable():
    facts = xl_denied("node03-broken-mpt2sas-alias")
    assert statuses(facts)["assignable"] == "error"
    plan = plan_device(facts, NODE03, Context())
    assert "assignable" not in plan.rules


# -- not a dom0 --------------------------------------------------------------------------------------
def test_a_host_without_xl_or_proc_xen_is_not_a_dom0():
    facts = not_a_dom0()
    assert facts.not_dom0_reason is not None
    assert "/proc/xen/capabilities" in facts.not_dom0_reason and "xl" in facts.not_dom0_reason
    verdicts = evaluate(facts, NODE03, Context())
    assert {v.status for v in verdicts.values()} == {Status.ERROR}
    assert all(v.reason.startswith("not a Xen dom0: ") for v in verdicts.values())
    assert plan_device(facts, NODE03, Context()).empty


def test_a_domu_with_xl_installed_is_not_a_dom0_either():
    raw = not_a_dom0().raw
    raw.files["/proc/xen/capabilities"] = FileFact("/proc/xen/capabilities", "")
    raw.files["/sys/hypervisor/type"] = FileFact("/sys/hypervisor/type", "xen\n")
    raw.commands["xl info"] = CommandFact("xl info", XL_DENIED, 1)
    reason = HostFacts(raw).not_dom0_reason
    assert reason is not None and "no control_d" in reason and "Xen guest" in reason


def test_control_d_alone_makes_a_dom0_even_without_xl():
    raw = not_a_dom0().raw
    raw.files["/proc/xen/capabilities"] = FileFact("/proc/xen/capabilities", "control_d\n")
    facts = HostFacts(raw)
    assert facts.not_dom0_reason is None
    v = evaluate(facts, NODE03, Context())["assignable"]
    assert v.status is not Status.ERROR or "not a Xen dom0" not in v.reason


def test_working_xl_alone_makes_a_dom0():
    """The lab snapshots were recorded before /proc/xen/capabilities was collected."""
    for name in ("lab-debian12-pristine", "lab-debian12-attached-to-pv-domu"):
        assert load_fixture(name).not_dom0_reason is None


def test_unreadable_capabilities_and_denied_xl_are_unknown_not_not_dom0():
    raw = xl_denied().raw
    raw.files["/proc/xen/capabilities"] = FileFact("/proc/xen/capabilities", unreadable=True)
    assert HostFacts(raw).not_dom0_reason is None


def test_ordinary_vm_fixture_every_rule_says_not_a_dom0_and_nothing_is_planned():
    facts = load_fixture("ordinary-vm-not-dom0")
    root_controller = parse_bdf("00:02.0")
    assert facts.storage_behind(root_controller) == ["/ (on /dev/vda1)"]  # the root disk hangs off it
    verdicts = evaluate(facts, root_controller, Context())
    assert {v.status for v in verdicts.values()} == {Status.ERROR}
    assert all("not a Xen dom0" in v.reason for v in verdicts.values())
    assert plan_device(facts, root_controller, Context()).empty


# -- a device that is not on the host ----------------------------------------------------------------
def test_absent_device_is_one_failure_and_the_rest_blocked():
    facts = load_fixture("node03-fixed")
    absent = parse_bdf("05:00.0")
    verdicts = evaluate(facts, absent, Context())
    got = [v.status for v in verdicts.values()]
    assert got[0] is Status.FAIL and set(got[1:]) == {Status.BLOCKED}, got
    first = next(iter(verdicts.values()))
    assert first.reason.startswith("0000:05:00.0 is not on this host: no such PCI device in /sys/bus/pci/devices")
    assert first.evidence
    assert all(v.reason.startswith(f"blocked by {first.rule}: 0000:05:00.0 is not on this host")
               for v in list(verdicts.values())[1:])
    assert plan_device(facts, absent, Context()).empty


def test_absent_device_on_a_host_whose_pci_listing_was_not_collected_is_not_called_absent():
    raw = load_fixture("node03-fixed").raw
    raw.pci.clear()
    raw.commands.pop("lspci -k", None)
    verdicts = evaluate(HostFacts(raw), parse_bdf("05:00.0"), Context())
    assert not any("is not on this host: no such PCI device" in v.reason for v in verdicts.values())


# -- the recorded non-root fixture -------------------------------------------------------------------
def test_nonroot_fixture_says_what_it_could_not_read_and_plans_nothing_for_it():
    facts = load_fixture("node03-nonroot-blacklist-unreadable")
    fact = facts.raw.files["/etc/modprobe.d/xen-passthrough.conf"]
    assert fact.unreadable and fact.content is None and fact.mtime is not None and fact.mode == "600"
    assert facts.raw.flag_values("user") == ["deploy"]
    verdicts = evaluate(facts, NODE03, Context())
    for rule in ("native-driver-blacklisted", "initramfs-current"):
        assert verdicts[rule].status is Status.ERROR
        assert "cannot read /etc/modprobe.d/xen-passthrough.conf as user deploy" in verdicts[rule].reason
    for rule in ("assignable", "xen-iommu"):
        assert verdicts[rule].status is Status.ERROR and "Permission denied" in verdicts[rule].reason
    plan = plan_device(facts, NODE03, Context())
    assert plan.empty, plan.render()


def test_every_rule_declares_what_it_reads():
    from xenpass.facts.host import SOURCES

    for rule in RULES.values():
        assert rule.reads, rule.id
        assert set(rule.reads) <= set(SOURCES), (rule.id, rule.reads)


def test_unresolvable_native_driver_is_an_error_not_a_failure():
    raw = load_fixture("node03-broken-mpt2sas-alias").raw
    del raw.commands["modules.alias"]  # modules.alias unreadable: the collector skips it
    del raw.commands["lspci -k"]
    facts = HostFacts(raw)
    v = evaluate(facts, NODE03, Context())["native-driver-blacklisted"]
    assert v.status is Status.ERROR and "cannot resolve the native driver" in v.reason
    assert "native-driver-blacklisted" not in plan_device(facts, NODE03, Context()).rules
