"""Debian's busybox-static `modprobe` as the oracle for Alpine hosts, on a fake root the collector reads too.

The root is a fake Alpine dom0 (tests/support/fakehost.py) whose /lib/modules is named after this machine's
`uname -r` (busybox modprobe takes the release from uname(2), which chroot does not change), with a
modules.dep and modules.alias. Each case rewrites /etc/modprobe.d, /etc/modprobe.conf and /proc/cmdline (a
plain file in the root: busybox reads `/proc/cmdline` by path), then asks
`busybox modprobe -b -D MODALIAS` (what mdev and hwdrivers run, as a dry run printing its insmod lines)
and runs the real collector in the same root for the product's verdict.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tests.support.chroot import ChrootHost
from tests.support.fakehost import FakeDevice, FakeHost, build
from tests.support.scenarios import ALPINE_OS
from xenpass.facts.collector import collect
from xenpass.facts.host import HostFacts
from xenpass.parse.bdf import parse_bdf
from xenpass.parse.cmdline import parse_cmdline
from xenpass.rules.base import Context, Status
from xenpass.rules.hide_sources import decide
from xenpass.rules.native_driver_blacklisted import RULE as NATIVE_RULE

RELEASE = os.uname().release

DEVICES = (
    FakeDevice("0000:01:00.0", "1000", "0072", "010700", "Serial Attached SCSI controller: LSI SAS2008",
               ("1000", "3020"), modules=("mpt3sas",)),
    FakeDevice("0000:02:00.0", "1000", "005b", "010400", "RAID bus controller: LSI MegaRAID SAS 2208",
               ("1000", "9265"), modules=("megaraid_sas",)),
    FakeDevice("0000:03:00.0", "8086", "10d3", "020000", "Ethernet controller: Intel 82574L",
               ("8086", "0000"), modules=("e1000e",)),
)
NATIVE = {"0000:01:00.0": "mpt3sas", "0000:02:00.0": "megaraid_sas", "0000:03:00.0": "e1000e"}

MODULES_ALIAS = """alias pci:v00001000d00000072sv*sd*bc*sc*i* mpt3sas
alias mpt2sas mpt3sas
alias pci:v00001000d0000005Bsv*sd*bc*sc*i* megaraid_sas
alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e
alias net-pf-10 ipv6
"""
# Alpine ships gzip-compressed modules: busybox keys `mpt3sas.ko.gz` as mpt3sas.
MODULES_DEP = """kernel/drivers/scsi/mpt3sas/mpt3sas.ko.gz: kernel/drivers/scsi/raid_class.ko.gz \
kernel/drivers/scsi/scsi_transport_sas.ko.gz
kernel/drivers/scsi/raid_class.ko.gz:
kernel/drivers/scsi/scsi_transport_sas.ko.gz:
kernel/drivers/scsi/megaraid/megaraid_sas.ko.gz:
kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko.gz:
kernel/drivers/xen/xen-pciback/xen-pciback.ko.gz:
kernel/net/ipv6/ipv6.ko.gz:
"""


@dataclass(frozen=True)
class Case:
    """One host configuration: modprobe.d files in creation order, /etc/modprobe.conf, the kernel command line,
    /etc/modules."""

    files: tuple[tuple[str, str], ...]
    modprobe_conf: str | None
    cmdline: str
    modules: str = "xen_pciback\n"


# Alpine's OpenRC modules service (aports main/openrc/modules.initd) for /etc/modules, with modprobe as a dry
# run: the first insmod of xen-pciback is the load that counts (later lines find it loaded and do nothing).
MODULES_SERVICE = """modprobe() { /bin/busybox modprobe -D "$@"; }
sed 's/\\#.*//g' < /etc/modules | while read module args; do modprobe -q $module $args; done
"""
NOT_LOADED = "not loaded"


@dataclass(frozen=True)
class Answer:
    bdf: str
    oracle_loads_native: bool
    product_status: str
    product_reason: str
    insmod: str

    @property
    def agrees(self) -> bool:
        """The product passes exactly when busybox would not load the native driver."""
        return self.oracle_loads_native == (self.product_status == Status.FAIL.value)


def build_root(root: Path) -> Path:
    host = FakeHost(
        name="busybox-oracle", distro="alpine", release=RELEASE, devices=list(DEVICES),
        files={"/etc/os-release": ALPINE_OS, "/etc/modules": "xen_pciback\n",
               f"/lib/modules/{RELEASE}/modules.dep": MODULES_DEP},
        modules_alias=MODULES_ALIAS, pciback="module", xl_info=None,
        runlevels={"modules": "boot", "hwdrivers": "sysinit", "mdev": "sysinit"},
    )
    return build(host, root)


def write_case(root: Path, case: Case) -> None:
    directory = root / "etc/modprobe.d"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for name, text in case.files:  # a fresh directory, files created in this order ("d/x.conf": in a subdirectory)
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    conf = root / "etc/modprobe.conf"
    conf.unlink(missing_ok=True)
    if case.modprobe_conf is not None:
        conf.write_text(case.modprobe_conf)
    (root / "proc/cmdline").write_text(case.cmdline)
    (root / "etc/modules").write_text(case.modules)


def oracle_insmods(root: Path, modalias: str) -> list[str]:
    """Module names `busybox modprobe -b -D MODALIAS` would insmod (deps included)."""
    return insmods(["/bin/busybox", "modprobe", "-b", "-D", modalias], root)


def modules_service_insmods(root: Path) -> list[str]:
    """Module names Alpine's modules service would insmod from /etc/modules (by name: no blacklist)."""
    return insmods(["/bin/busybox", "sh", "-c", MODULES_SERVICE], root)


def insmods(argv: list[str], root: Path) -> list[str]:
    done = subprocess.run(["chroot", str(root), *argv], capture_output=True, text=True, timeout=30)
    files = [PurePosixPath(line.split()[1]).name for line in done.stdout.splitlines() if line.startswith("insmod ")]
    return [name.split(".", 1)[0].replace("-", "_") for name in files]  # mpt3sas.ko.gz -> mpt3sas


def run_case(root: Path, case: Case) -> list[Answer]:
    """Per device: does coldplug (`modprobe -b MODALIAS`) or the modules service (by name) load its native driver."""
    write_case(root, case)
    facts = HostFacts(collect(ChrootHost(root), "busybox-oracle"))
    assert facts.modprobe_impl == "busybox" and not facts.unknown(NATIVE_RULE.reads)
    by_name = modules_service_insmods(root)
    answers = []
    for dev in DEVICES:
        loaded = oracle_insmods(root, dev.modalias) + by_name
        verdict = NATIVE_RULE.check(facts, parse_bdf(dev.bdf), Context())
        answers.append(Answer(dev.bdf, NATIVE[dev.bdf] in loaded, verdict.status.value, verdict.reason,
                              " ".join(loaded)))
    return answers


def oracle_hide(root: Path) -> str | None:
    """The hide= xen-pciback gets at boot: the last one in the options of its first insmod (the kernel's
    parse_args keeps the last), None without one, NOT_LOADED when the modules service never loads it."""
    done = subprocess.run(["chroot", str(root), "/bin/busybox", "sh", "-c", MODULES_SERVICE],
                          capture_output=True, text=True, timeout=30)
    for line in done.stdout.splitlines():
        words = line.split(" ", 2)
        if words[0] == "insmod" and PurePosixPath(words[1]).name.startswith("xen-pciback.ko"):
            hides = [value for name, value in parse_cmdline(words[2] if len(words) > 2 else "") if name == "hide"]
            return hides[-1] if hides else None
    return NOT_LOADED


def product_hide(facts: HostFacts) -> str | None:
    decision = decide(facts)
    if decision.loader is None or decision.fatal:
        return NOT_LOADED
    return decision.value.value.raw if decision.value else None


def run_hide_case(root: Path, case: Case) -> tuple[str | None, str | None]:
    """(busybox's answer, the product's) for the hide= value xen-pciback gets."""
    write_case(root, case)
    facts = HostFacts(collect(ChrootHost(root), "busybox-oracle"))
    return oracle_hide(root), product_hide(facts)
