from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xenpass.parse.bdf import Bdf
from xenpass.parse.xl import (
    AssignableEntry,
    PciListEntry,
    XlDomain,
    parse_assignable_list,
    parse_pci_list,
    parse_xl_info,
    parse_xl_list,
)


def test_assignable_xen_414() -> None:
    # DOMAIN.md sample, and node03 in the seed
    assert parse_assignable_list("0000:01:0a.0\n0000:01:0a.1\n") == [
        AssignableEntry(Bdf(0, 1, 0xA, 0), None, "0000:01:0a.0"),
        AssignableEntry(Bdf(0, 1, 0xA, 1), None, "0000:01:0a.1"),
    ]
    assert [e.bdf for e in parse_assignable_list("0000:01:00.0\n")] == [Bdf(0, 1, 0, 0)]


def test_assignable_xen_415_trailing_space_and_names() -> None:
    text = "0000:00:05.0 \n0000:00:06.0 sas-hba\n"
    assert [(e.bdf, e.name) for e in parse_assignable_list(text)] == [
        (Bdf(0, 0, 5, 0), None), (Bdf(0, 0, 6, 0), "sas-hba")]


def test_assignable_ignores_libxl_errors() -> None:
    text = ("libxl: error: libxl_pci.c:826:libxl__device_pci_assignable_list: "
            "Looks like pciback driver not loaded\n")
    assert parse_assignable_list(text) == []
    assert parse_assignable_list("") == []


def test_pci_list() -> None:
    text = "Vdev Device\n00.0 0000:01:00.0\n05.0 0000:02:00.1\n"
    assert parse_pci_list(text) == [
        PciListEntry("00.0", Bdf(0, 1, 0, 0), "00.0 0000:01:00.0"),
        PciListEntry("05.0", Bdf(0, 2, 0, 1), "05.0 0000:02:00.1"),
    ]
    assert parse_pci_list("Vdev Device\n") == []


XL_INFO = """host                   : node03
release                : 6.1.0-18-amd64
version                : #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)
machine                : x86_64
virt_caps              : pv hvm hvm_directio pv_directio hap shadow
xen_version            : 4.17.3-pre
xen_commandline        : placeholder dom0_mem=2048M,max:2048M iommu=verbose,debug console=com1 com1=115200,8n1
cc_compiler            : x86_64-linux-gnu-gcc (Debian 12.2.0-14) 12.2.0
cc_compile_date        : Fri Feb  2 11:08:50 UTC 2024
build_id               : 6a7dd6d9b3ed1b0d0d9b1d0f1b66e3f84c4c87e1
xend_config_format     : 4
"""


def test_xl_info() -> None:
    info = parse_xl_info(XL_INFO)
    assert info["virt_caps"].split() == ["pv", "hvm", "hvm_directio", "pv_directio", "hap", "shadow"]
    assert info["xen_commandline"].endswith("com1=115200,8n1")
    assert info["cc_compile_date"] == "Fri Feb  2 11:08:50 UTC 2024"
    assert info["host"] == "node03"


def test_xl_info_skips_log_lines() -> None:
    info = parse_xl_info("libxl: error: libxl.c:1: oops\nhost : x\n")
    assert info == {"host": "x"}


def test_xl_list() -> None:
    text = (
        "Name                                        ID   Mem VCPUs\tState\tTime(s)\n"
        "Domain-0                                     0  2048     4     r-----     123.4\n"
        "sas vm                                       3  4096     2     -b----      10.0\n"
        "(null)                                       5     0     1     --p--d       0.0\n"
    )
    assert parse_xl_list(text) == [XlDomain("Domain-0", 0), XlDomain("sas vm", 3), XlDomain("(null)", 5)]


def test_xl_list_verbose() -> None:
    text = ("Name                                        ID   Mem VCPUs\tState\tTime(s)   UUID                  "
            "Reason-Code\tSecurity Label\n"
            "Domain-0                                     0  2048     4     r-----     12.5 "
            "00000000-0000-0000-0000-000000000000        -                -\n")
    assert parse_xl_list(text) == [XlDomain("Domain-0", 0)]


@settings(max_examples=200)
@given(st.text())
def test_never_raises(text: str) -> None:
    parse_assignable_list(text)
    parse_pci_list(text)
    parse_xl_info(text)
    parse_xl_list(text)
