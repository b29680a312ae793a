"""Boot safety as a rule of the planner: nothing dom0's storage needs is hidden, seized, assigned or unloaded.

The scenario: the root disk on the MegaRAID at 00:06.0, the MegaRAID 2108 to pass through at 01:00.0 behind
root port 00:07.0, both driven by megaraid_sas, which the initramfs force-loads (as on a host whose root disk
needs it at boot).
"""

from __future__ import annotations

import copy

from tests.conftest import load_fixture
from xenpass.engine import evaluate
from xenpass.facts.host import HostFacts
from xenpass.facts.raw import FileFact
from xenpass.fix import plan_device, simulate
from xenpass.fix.base import FileEdit
from xenpass.parse.bdf import parse_bdf
from xenpass.rules.base import Context, Status

SHARED = "debian12-root-on-shared-driver"
PASSTHROUGH, ROOT_CONTROLLER, BRIDGE = parse_bdf("01:00.0"), parse_bdf("00:06.0"), parse_bdf("00:07.0")


def edits(plan) -> dict[str, str]:
    return {s.path: s.after for s in plan.steps if isinstance(s, FileEdit)}


def test_the_shared_driver_stays_in_the_initramfs_and_pciback_is_ordered_ahead_of_it():
    """Before: the plan commented megaraid_sas out of /etc/initramfs-tools/modules: no root at the next boot."""
    plan = plan_device(load_fixture(SHARED), PASSTHROUGH, Context())
    after = edits(plan)
    modules = [ln for ln in after["/etc/initramfs-tools/modules"].splitlines() if not ln.startswith("#")]
    assert modules == ["xen-pciback", "megaraid_sas", "ext4"]
    assert "softdep megaraid_sas pre: xen-pciback" in after["/etc/modprobe.d/xen-passthrough.conf"]
    assert not any("blacklist megaraid_sas" in text for text in after.values())
    assert any("0000:00:06.0" in r.reason for r in plan.refusals)  # says why it did not blacklist


def test_after_the_plan_the_rules_pass_and_the_root_disk_keeps_its_driver():
    facts = load_fixture(SHARED)
    after = simulate(facts, list(plan_device(facts, PASSTHROUGH, Context()).steps))
    verdicts = evaluate(after, PASSTHROUGH, Context())
    assert verdicts["native-driver-blacklisted"].status is Status.PASS
    assert "softdep megaraid_sas pre: xen-pciback" in verdicts["native-driver-blacklisted"].reason
    assert after.raw.pci["0000:00:06.0"].driver == "megaraid_sas"


def test_the_root_disk_controller_is_never_planned_for():
    plan = plan_device(load_fixture(SHARED), ROOT_CONTROLLER, Context())
    assert not plan.steps
    assert plan.refusals and all("holds / (on /dev/sda1)" in r.reason for r in plan.refusals)


def with_root_behind(facts: HostFacts, disk_path: str, mounts: str, flags: dict[str, list[str]] | None = None,
                     swaps: str | None = None) -> HostFacts:
    raw = copy.deepcopy(facts.raw)
    raw.block = {"sda": disk_path}
    raw.files["/proc/mounts"] = FileFact("/proc/mounts", mounts)
    if swaps is not None:
        raw.files["/proc/swaps"] = FileFact("/proc/swaps", swaps)
    raw.flags.update(flags or {})
    return HostFacts(raw)


BEHIND_BRIDGE = "/sys/devices/pci0000:00/0000:00:07.0/0000:01:00.0/host0/target0:0:0/0:0:0:0/block/sda"


def test_a_bridge_above_the_root_disk_is_never_planned_for():
    facts = with_root_behind(load_fixture(SHARED), BEHIND_BRIDGE, "/dev/sda1 / ext4 rw 0 0\n")
    for device in (BRIDGE, PASSTHROUGH):
        plan = plan_device(facts, device, Context())
        assert not plan.steps, device
        assert all("/ (on /dev/sda1)" in r.reason for r in plan.refusals)


def test_root_on_lvm_is_traced_through_device_mapper_to_its_disk():
    facts = with_root_behind(load_fixture(SHARED), BEHIND_BRIDGE, "/dev/mapper/vg-root / ext4 rw 0 0\n",
                             {"dmname": ["dm-0|vg-root"], "slave": ["dm-0|sda2"], "partition": ["sda|sda2"]})
    assert facts.storage_behind(PASSTHROUGH) == ["/ (on /dev/mapper/vg-root)"]
    assert not plan_device(facts, PASSTHROUGH, Context()).steps


def test_swap_counts_as_storage_and_sdaa_is_not_sda():
    swaps = "Filename\tType\tSize\tUsed\tPriority\n/dev/sda2\tpartition\t1048572\t0\t-2\n"
    facts = with_root_behind(load_fixture(SHARED), BEHIND_BRIDGE, "/dev/sdaa1 /srv ext4 rw 0 0\n", swaps=swaps)
    assert facts.storage_behind(PASSTHROUGH) == ["swap on /dev/sda2"]


def test_a_mount_that_cannot_be_traced_refuses_storage_controllers_only():
    facts = with_root_behind(load_fixture(SHARED), "/sys/devices/pci0000:00/0000:00:06.0/host0/block/sda",
                             "/dev/root / ext4 rw 0 0\n")
    assert facts.untraced_storage == ["/ (on /dev/root)"]
    refused = plan_device(facts, PASSTHROUGH, Context())
    assert not refused.steps and "cannot tell which disk holds / (on /dev/root)" in refused.refusals[0].reason
    node03 = load_fixture("node03-broken-mpt2sas-alias")
    nic = parse_bdf("02:00.0")  # an Ethernet controller is no storage controller: its plan goes ahead
    raw = copy.deepcopy(node03.raw)
    raw.files["/proc/mounts"] = FileFact("/proc/mounts", "/dev/root / ext4 rw 0 0\n")
    assert not any("cannot tell" in r.reason for r in plan_device(HostFacts(raw), nic, Context()).refusals)
