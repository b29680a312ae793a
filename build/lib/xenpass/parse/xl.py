"""Outputs of `xl pci-assignable-list`, `xl pci-list`, `xl info` and `xl list`.

Formats from tools/xl (verified for pci-list: `printf("%02x.%01x %04x:%02x:%02x.%01x\\n", ...)`
under a `Vdev Device` header). Lines that are not data (libxl log lines on a merged stderr,
headers, blank lines) are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from xenpass.parse.bdf import Bdf, parse_bdf

__all__ = [
    "AssignableEntry",
    "PciListEntry",
    "XlDomain",
    "parse_assignable_list",
    "parse_pci_list",
    "parse_xl_info",
    "parse_xl_list",
]

_ASSIGNABLE = re.compile(r"(?P<bdf>[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])(?:[ \t]+(?P<name>.*?))?\s*")
_PCI_LIST = re.compile(r"(?P<vdev>[0-9a-fA-F]{2}\.[0-7])[ \t]+(?P<bdf>\S+)\s*")
_INFO = re.compile(r"(?P<key>[a-z][a-z0-9_]*)[ \t]*:[ \t]?(?P<value>.*)")
_LIST = re.compile(r"(?P<name>\S.*?)\s+(?P<id>[0-9]+)\s+[0-9]+\s+[0-9]+\s+[-rbpscd]{6}\s+[0-9]+(?:\.[0-9]+)?(?:\s.*)?")
_LOG_PREFIXES = ("libxl", "xc", "xl", "xencall", "xenforeignmemory", "xentoollog", "libxl_pci")


@dataclass(frozen=True)
class AssignableEntry:
    bdf: Bdf
    name: str | None  # `-n` form only
    raw: str


@dataclass(frozen=True)
class PciListEntry:
    vdev: str
    bdf: Bdf
    raw: str


@dataclass(frozen=True)
class XlDomain:
    name: str
    domid: int


def parse_assignable_list(text: str) -> list[AssignableEntry]:
    """`0000:01:00.0` (Xen <= 4.14), `0000:01:00.0 ` (>= 4.15), `0000:01:00.0 NAME` (`-n`)."""
    out: list[AssignableEntry] = []
    for line in text.splitlines():
        match = _ASSIGNABLE.fullmatch(line)
        bdf = _bdf(match["bdf"]) if match else None
        if match and bdf is not None:
            out.append(AssignableEntry(bdf, match["name"] or None, line))
    return out


def parse_pci_list(text: str) -> list[PciListEntry]:
    out: list[PciListEntry] = []
    for line in text.splitlines():
        match = _PCI_LIST.fullmatch(line)
        bdf = _bdf(match["bdf"]) if match else None
        if match and bdf is not None:
            out.append(PciListEntry(match["vdev"], bdf, line))
    return out


def parse_xl_info(text: str) -> dict[str, str]:
    """`key   : value` lines; the value keeps any further ':' (xen_commandline, cc_compiler)."""
    info: dict[str, str] = {}
    for line in text.splitlines():
        match = _INFO.fullmatch(line.rstrip("\r"))
        if match and match["key"] not in _LOG_PREFIXES:
            info[match["key"]] = match["value"].strip()
    return info


def parse_xl_list(text: str) -> list[XlDomain]:
    """`Name ID Mem VCPUs State Time(s)` rows; names may hold spaces, so columns are read from the right."""
    out: list[XlDomain] = []
    for line in text.splitlines():
        match = _LIST.fullmatch(line.strip())
        if match:
            out.append(XlDomain(match["name"], int(match["id"])))
    return out


def _bdf(text: str) -> Bdf | None:
    try:
        return parse_bdf(text)
    except ValueError:
        return None
