from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from xenpass.parse.bdf import Bdf
from xenpass.parse.lspci import LspciDevice, parse_lspci_k

SEED = Path("/work/shared/seed/alpine-xen-pci-passthrough.zh.txt")

# node03 after the reboot (seed, `lspci -k | grep -A2 '01:00.0'`), with its indentation restored to a tab
NODE03_HIDDEN = (
    "01:00.0 Serial Attached SCSI controller: LSI Logic / Symbios Logic SAS2008 PCI-Express Fusion-MPT SAS-2 "
    "[Falcon] (rev 03)\n"
    "\tSubsystem: LSI Logic / Symbios Logic Device 3020\n"
    "\tKernel driver in use: pciback\n"
)

# DOMAIN.md sample, a hidden NIC
DOMAIN_SAMPLE = (
    "01:0a.0 Ethernet controller: Intel Corporation 82546EB Gigabit Ethernet Controller (Copper) (rev 01)\n"
    "\tSubsystem: Compaq Computer Corporation NC7170 Gigabit Server Adapter\n"
    "\tKernel driver in use: pciback\n"
)


def node03_listing() -> str:
    if SEED.exists():
        lines = SEED.read_text().splitlines()
        start = lines.index("node03:~# lspci") + 1
        return "\n".join(lines[start : start + 13]) + "\n"
    return "00:00.0 Host bridge: Intel Corporation Xeon E3-1200 Processor Family DRAM Controller (rev 09)\n"


def test_node03_plain_listing() -> None:
    devices = parse_lspci_k(node03_listing())
    if SEED.exists():
        assert len(devices) == 13
        sas = devices[Bdf(0, 1, 0, 0)]
        assert sas.description.startswith("Serial Attached SCSI controller: LSI Logic")
        assert devices[Bdf(0, 3, 3, 0)].description.startswith("VGA compatible controller: Matrox")
    assert all(d.driver is None and d.modules == () for d in devices.values())


def test_node03_hidden() -> None:
    (device,) = parse_lspci_k(NODE03_HIDDEN).values()
    assert device.bdf == Bdf(0, 1, 0, 0)
    assert device.driver == "pciback"
    assert device.modules == ()  # pciback has no device table: never listed as a module
    assert device.raw == NODE03_HIDDEN.rstrip("\n")


def test_domain_sample() -> None:
    assert parse_lspci_k(DOMAIN_SAMPLE)[Bdf(0, 1, 0xA, 0)].driver == "pciback"


def test_pciutils_with_modules_and_domain() -> None:
    text = (
        "0000:00:05.0 Serial Attached SCSI controller: Broadcom / LSI SAS1068 PCI-X Fusion-MPT SAS (rev 01)\n"
        "\tSubsystem: Red Hat, Inc. Device 1100\n"
        "\tKernel driver in use: pciback\n"
        "\tKernel modules: mptsas\n"
        "0000:00:06.0 RAID bus controller: Broadcom / LSI MegaRAID SAS 1078\n"
        "\tKernel driver in use: megaraid_sas\n"
        "\tKernel modules: megaraid_sas, megaraid\n"
        "0001:00:00.0 Non-Volatile memory controller: Samsung Electronics Co Ltd Device a808\n"
    )
    devices = parse_lspci_k(text)
    assert devices[Bdf(0, 0, 5, 0)].modules == ("mptsas",)
    assert devices[Bdf(0, 0, 6, 0)] == LspciDevice(
        Bdf(0, 0, 6, 0), "RAID bus controller: Broadcom / LSI MegaRAID SAS 1078", "megaraid_sas",
        ("megaraid_sas", "megaraid"),
        "0000:00:06.0 RAID bus controller: Broadcom / LSI MegaRAID SAS 1078\n"
        "\tKernel driver in use: megaraid_sas\n\tKernel modules: megaraid_sas, megaraid")
    assert devices[Bdf(1, 0, 0, 0)].driver is None


def test_busybox() -> None:
    text = "0000:00:00.0 Class 0600: 8086:0100\n0000:01:00.0 Class 0107: 1000:0072 pciback\n"
    devices = parse_lspci_k(text)
    assert devices[Bdf(0, 1, 0, 0)] == LspciDevice(
        Bdf(0, 1, 0, 0), "Class 0107: 1000:0072", "pciback", (), "0000:01:00.0 Class 0107: 1000:0072 pciback")
    assert devices[Bdf(0, 0, 0, 0)].driver is None


def test_busybox_machine_readable() -> None:
    text = '0000:01:00.0 "Class 0107" "1000" "0072" "1000" "3020" "pciback"\n'
    device = parse_lspci_k(text)[Bdf(0, 1, 0, 0)]
    assert (device.description, device.driver) == ("Class 0107: 1000:0072", "pciback")


def test_noise_is_ignored() -> None:
    text = "pcilib: Cannot open /proc/bus/pci\n\tstray detail\nlspci: Cannot find any working access method.\n"
    assert parse_lspci_k(text) == {}


@settings(max_examples=300)
@given(st.text())
def test_never_raises(text: str) -> None:
    for bdf, device in parse_lspci_k(text).items():
        assert device.bdf == bdf
