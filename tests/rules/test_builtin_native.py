"""A native driver built into the kernel: its alias is only in modules.builtin.modinfo, never in modules.alias.

The blacklist in the snapshot cannot stop it; the device is claimed at every boot, before any xen-pciback module.
"""

from __future__ import annotations

import pytest

from tests.conftest import load_fixture
from xenpass.facts.host import HostFacts
from xenpass.facts.raw import CommandFact
from xenpass.fix.native_driver_blacklisted import plan
from xenpass.parse.bdf import parse_bdf
from xenpass.rules.base import Context, Status
from xenpass.rules.native_driver_blacklisted import check

# fixture, device, native module, its modinfo alias record
CASES = {
    "busybox": ("node03-fixed", "01:00.0", "mpt3sas", "mpt3sas.alias=pci:v00001000d00000072sv*sd*bc*sc*i*"),
    "kmod": ("debian12-kmod-compliant", "00:05.0", "mptsas", "mptsas.alias=pci:v00001000d00000054sv*sd*bc*sc*i*"),
}


def built_in(fixture: str, module: str, record: str) -> HostFacts:
    """The fixture with `module` moved from modules.alias (and lspci's list) into the kernel image."""
    raw = load_fixture(fixture).raw
    aliases = raw.commands["modules.alias"]
    aliases.output = "".join(line for line in (aliases.output or "").splitlines(keepends=True)
                             if not line.rstrip().endswith(f" {module}"))
    lspci = raw.commands["lspci -k"]
    lspci.output = (lspci.output or "").replace(f"\tKernel modules: {module}\n", "")
    raw.commands["modules.builtin.modinfo"] = CommandFact("modules.builtin.modinfo", f"{record}\n", 0)
    return HostFacts(raw)


@pytest.mark.parametrize("impl", sorted(CASES))
def test_builtin_native_driver_fails(impl: str) -> None:
    fixture, slot, module, record = CASES[impl]
    facts = built_in(fixture, module, record)
    assert facts.modprobe_impl == impl
    v = check(facts, parse_bdf(slot), Context())
    assert v.status == Status.FAIL
    assert f"{module} is built into kernel {facts.kernel}: no blacklist can stop it" in v.reason


@pytest.mark.parametrize("impl", sorted(CASES))
def test_fix_refuses_a_builtin_native_driver(impl: str) -> None:
    fixture, slot, module, record = CASES[impl]
    part = plan(built_in(fixture, module, record), parse_bdf(slot), Context())
    assert not part.steps
    assert [r.reason for r in part.refusals] == [f"{module} is built into the kernel; no modprobe setting stops it"]


def test_a_builtin_driver_for_other_devices_changes_nothing() -> None:
    fixture, slot, module, _ = CASES["busybox"]
    facts = built_in(fixture, "none", "ahci.alias=pci:v*d*sv*sd*bc01sc06i01*")
    assert facts.native_modules(parse_bdf(slot)) == (module,)
    assert check(facts, parse_bdf(slot), Context()).status == Status.PASS
