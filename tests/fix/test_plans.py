"""Fix plans over every fixture snapshot, compared with golden files (XENPASS_UPDATE_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import fixture_names, load_fixture
from tests.rules.test_fixture_verdicts import EXPECTED
from xenpass.engine import evaluate
from xenpass.facts.raw import FileFact
from xenpass.fix import plan_device, simulate
from xenpass.fix.base import Command, FileEdit
from xenpass.parse.bdf import parse_bdf
from xenpass.rules.base import Context

GOLDEN = Path(__file__).parent / "golden"
DOMUS = {"/etc/xen/nas.cfg"}
# Hosts whose facts are unknown or that are not a dom0: nothing is planned, and nothing can reach compliance.
UNPLANNABLE = {"node03-nonroot-blacklist-unreadable", "ordinary-vm-not-dom0"}


def context_for(name: str) -> Context:
    facts = load_fixture(name)
    return Context(tuple(p for p in DOMUS if facts.raw.file(p) is not None))


@pytest.mark.parametrize("name", fixture_names())
def test_plan_matches_golden(name):
    device = parse_bdf(EXPECTED[name][0])
    text = plan_device(load_fixture(name), device, context_for(name)).render() + "\n"
    golden = GOLDEN / f"{name}.txt"
    if os.environ.get("XENPASS_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("name", fixture_names())
def test_plan_reaches_compliance_and_a_second_plan_is_empty(name):
    """Idempotent by construction: after the planned steps, every fixable rule passes and nothing is left."""
    facts, device, ctx = load_fixture(name), parse_bdf(EXPECTED[name][0]), context_for(name)
    plan = plan_device(facts, device, ctx)
    if name in UNPLANNABLE:
        assert plan.empty and not plan.notes, plan.render()
        return
    after = simulate(facts, list(plan.steps))
    statuses = {r: v.status.value for r, v in evaluate(after, device, ctx).items()}
    assert set(statuses.values()) <= {"pass", "skip"}, statuses
    assert plan_device(after, device, ctx).empty


def test_compliant_hosts_plan_nothing():
    for name in ("node03-fixed", "node03-attached-to-domu", "debian12-kmod-compliant"):
        assert plan_device(load_fixture(name), parse_bdf(EXPECTED[name][0]), context_for(name)).empty


def test_node03_plan_blacklists_mpt3sas_not_the_alias_and_rebuilds():
    plan = plan_device(load_fixture("node03-broken-mpt2sas-alias"), parse_bdf("01:00.0"), Context())
    edit = next(s for s in plan.steps if isinstance(s, FileEdit))
    assert edit.path == "/etc/modprobe.d/xen-passthrough.conf" and edit.after == "blacklist mpt3sas\n"
    assert "names an alias" in edit.why
    rebuild = next(s for s in plan.steps if isinstance(s, Command) and s.argv[0] == "mkinitfs")
    assert rebuild.argv == ("mkinitfs", "-o", "/boot/initramfs-lts", "6.6.31-0-lts")
    assert rebuild.backup == "/boot/initramfs-lts"
    assert plan.reboot_required


def test_never_blacklists_a_module_another_present_device_uses():
    facts = load_fixture("node03-broken-mpt2sas-alias")
    facts.raw.pci["0000:02:00.0"].driver = "e1000e"  # the host NIC 00:19.0 uses e1000e too
    plan = plan_device(facts, parse_bdf("02:00.0"), Context(), only={"native-driver-blacklisted"})
    assert not plan.steps
    assert "0000:00:19.0" in plan.refusals[0].reason and "busybox" in plan.refusals[0].alternative


def test_kmod_host_gets_softdep_instead_of_a_blacklist_others_need():
    facts = load_fixture("debian12-kmod-compliant")
    facts.raw.files["/etc/modprobe.d/xen-passthrough.conf"] = FileFact("/etc/modprobe.d/xen-passthrough.conf", "")
    facts.raw.pci["0000:00:05.0"].driver = "mptsas"
    facts.raw.pci["0000:00:06.0"].modalias = facts.raw.pci["0000:00:05.0"].modalias
    facts.raw.pci["0000:00:06.0"].driver = "mptsas"
    plan = plan_device(facts, parse_bdf("00:05.0"), Context(), only={"native-driver-blacklisted"})
    assert plan.steps[0].after == "softdep mptsas pre: xen-pciback\n"
    assert "0000:00:06.0" in plan.refusals[0].reason


def test_domu_config_keeps_the_rest_of_the_file():
    facts = load_fixture("node03-fixed")
    text = "# nas\nname = 'nas'\npci = [ '02:00.0' ]  # the NIC\nmemory = 1024\n"
    facts.raw.files["/etc/xen/nas.cfg"] = FileFact("/etc/xen/nas.cfg", text)
    plan = plan_device(facts, parse_bdf("01:00.0"), Context(("/etc/xen/nas.cfg",)), only={"domu-config"})
    after = plan.steps[0].after
    assert after.startswith("# nas\nname = 'nas'\n") and after.endswith("  # the NIC\nmemory = 1024\n")
    assert "'02:00.0'" in after and "'01:00.0'" in after


def test_only_limits_the_plan():
    plan = plan_device(load_fixture("node03-broken-mpt2sas-alias"), parse_bdf("01:00.0"), Context(),
                       only={"driver-pciback"})
    assert plan.rules == ("driver-pciback",)


def debian_with_dracut(name: str = "lab-debian12-pristine"):
    """A Debian host whose initramfs builder is dracut (Debian 13 installs it instead of initramfs-tools, and
    its images keep Debian's name, /boot/initrd.img-RELEASE): initramfs-tools' files are gone."""
    facts = load_fixture(name)
    for path in [p for p in facts.raw.files if p.startswith("/etc/initramfs-tools/")]:
        del facts.raw.files[path]
    facts.raw.files["/etc/dracut.conf"] = FileFact("/etc/dracut.conf", "# PUT YOUR CONFIG IN separate files\n")
    return facts


def test_debian_with_dracut_rebuilds_with_dracut_and_leaves_initramfs_tools_alone():
    facts = debian_with_dracut()
    assert facts.distro == "dracut"
    assert facts.boot_image is not None and facts.boot_image.path.startswith("/boot/initrd.img-")
    plan = plan_device(facts, parse_bdf("00:05.0"), Context())
    commands = [s.argv for s in plan.steps if isinstance(s, Command)]
    assert ("dracut", "-f", "--kver", facts.kernel) in commands
    assert not any(argv[0] == "update-initramfs" for argv in commands)
    assert not any(isinstance(s, FileEdit) and s.path.startswith("/etc/initramfs-tools/") for s in plan.steps)


def test_debian_keeps_initramfs_tools_while_its_configuration_is_there():
    facts = load_fixture("lab-debian12-pristine")
    facts.raw.files["/etc/dracut.conf"] = FileFact("/etc/dracut.conf", "")  # dracut-core beside initramfs-tools
    assert facts.distro == "debian"


def test_real_debian13_dracut_dom0_is_the_dracut_family():
    """Recorded from the trixie lab: Debian's os-release, dracut's configuration, Debian's image name."""
    facts = load_fixture("lab-debian13-dracut-pristine")
    assert facts.os_release["ID"] == "debian" and facts.distro == "dracut"
    assert facts.boot_image is not None and facts.boot_image.path == f"/boot/initrd.img-{facts.kernel}"
    assert facts.xl_info["xen_version"].startswith("4.20")
