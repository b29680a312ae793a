"""The collector sends the PCI aliases of built-in drivers (modules.builtin.modinfo) that can match the host's
devices, and nothing else of that file; the rule then sees the built-in native driver."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.chroot import ChrootHost
from tests.support.fakehost import build, write
from tests.support.scenarios import ALPINE_RELEASE, SCENARIOS
from xenpass.facts.collector import collect
from xenpass.facts.host import HostFacts
from xenpass.parse.bdf import parse_bdf
from xenpass.rules.base import Context, Status
from xenpass.rules.native_driver_blacklisted import check

MATCHING = [
    "mpt3sas.alias=pci:v00001000d00000072sv*sd*bc*sc*i*",  # node03's SAS2008, by vendor and device
    "megaraid_sas.alias=pci:v00001000d*sv*sd*bc*sc*i*",  # the same vendor, any device
    "ahci.alias=pci:v*d*sv*sd*bc01sc06i01*",  # any vendor (by class)
]
OTHERS = [
    "mpt3sas.license=GPL",
    "mpt3sas.parm=max_queue_depth:int",
    "qla2xxx.alias=pci:v00001077d00002532sv*sd*bc*sc*i*",  # a vendor node03 does not have
    "mpt3sas.alias=pci:v00001000d00000097sv*sd*bc*sc*i*",  # its vendor, another device
    "usbcore.alias=usb:v*p*d*dc09dsc*dp*ic*isc*ip*in*",
    "xen_blkback.alias=xen-backend:vbd",
]


@pytest.fixture(scope="module")
def node03_root(tmp_path_factory) -> Path:
    root = build(SCENARIOS["node03-fixed"](), tmp_path_factory.mktemp("builtin") / "root")
    records = [r.encode() + b"\0" for pair in zip(OTHERS, MATCHING + [""] * 3, strict=True) for r in pair if r]
    write(root, f"/lib/modules/{ALPINE_RELEASE}/modules.builtin.modinfo", b"".join(records))
    return root


def test_only_aliases_that_can_match_a_device_are_sent(node03_root: Path) -> None:
    raw = collect(ChrootHost(node03_root), "node03", identity=f"chroot://{node03_root}")
    assert raw.output("modules.builtin.modinfo") == "\n".join(MATCHING) + "\n"
    facts = HostFacts(raw)
    assert "mpt3sas" in facts.native_modules(parse_bdf("01:00.0"))
    v = check(facts, parse_bdf("01:00.0"), Context())
    assert v.status == Status.FAIL and "mpt3sas is built into kernel" in v.reason


def test_a_kernel_without_the_file_sends_nothing(tmp_path: Path) -> None:
    root = build(SCENARIOS["node03-fixed"](), tmp_path / "root")
    raw = collect(ChrootHost(root), "node03", identity=f"chroot://{root}")
    assert raw.output("modules.builtin.modinfo") is None
    assert check(HostFacts(raw), parse_bdf("01:00.0"), Context()).status == Status.PASS
