"""`lspci -k` from pciutils or busybox.

pciutils: one line `[DDDD:]BB:SS.F DESCRIPTION`, then tab-indented detail lines, among them
`Kernel driver in use: NAME` and `Kernel modules: A, B` (comma-separated).
busybox (modutils/lspci.c, verified): one line per device, `printf("%s Class %04x: %04x:%04x", ...)`
then ` DRIVER` when bound; with -m: `SLOT "Class 0107" "1000" "0072" "1000" "3020" "DRIVER"`.
busybox never prints kernel modules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from xenpass.parse.bdf import Bdf, parse_bdf

__all__ = ["LspciDevice", "parse_lspci_k"]

_HEAD = re.compile(r"(?P<bdf>(?:[0-9a-fA-F]{4,}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])\s+(?P<rest>.*)")
_BUSYBOX = re.compile(r"(?P<desc>Class [0-9a-f]{4}: [0-9a-f]{4}:[0-9a-f]{4})(?: (?P<driver>\S+))?")
_BUSYBOX_M = re.compile(r'"(?P<cls>Class [0-9a-f]{4})" "(?P<v>[0-9a-f]{4})" "(?P<d>[0-9a-f]{4})"'
                        r' "[0-9a-f]{4}" "[0-9a-f]{4}"(?: "(?P<driver>[^"]*)")?')
_DRIVER = "Kernel driver in use:"
_MODULES = "Kernel modules:"


@dataclass(frozen=True)
class LspciDevice:
    bdf: Bdf
    description: str
    driver: str | None
    modules: tuple[str, ...]
    raw: str  # the device's block of lines as printed


def parse_lspci_k(text: str) -> dict[Bdf, LspciDevice]:
    devices: dict[Bdf, LspciDevice] = {}
    for head, details in _blocks(text.splitlines()):
        device = _device(head, details)
        if device is not None:
            devices.setdefault(device.bdf, device)
    return devices


def _blocks(lines: list[str]) -> list[tuple[str, list[str]]]:
    """Each unindented line with the indented lines under it; other lines are dropped."""
    blocks: list[tuple[str, list[str]]] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            if blocks:
                blocks[-1][1].append(line)
        elif line.strip():
            blocks.append((line, []))
    return blocks


def _device(head: str, details: list[str]) -> LspciDevice | None:
    match = _HEAD.fullmatch(head.rstrip())
    if match is None:
        return None
    try:
        bdf = parse_bdf(match["bdf"])
    except ValueError:
        return None
    rest, raw = match["rest"], "\n".join([head, *details])
    simple = _BUSYBOX.fullmatch(rest)
    if simple is not None and not details:
        return LspciDevice(bdf, simple["desc"], simple["driver"], (), raw)
    machine = _BUSYBOX_M.fullmatch(rest)
    if machine is not None:
        desc = f"{machine['cls']}: {machine['v']}:{machine['d']}"
        return LspciDevice(bdf, desc, machine["driver"] or None, (), raw)
    return LspciDevice(bdf, rest, _detail(details, _DRIVER), _modules(details), raw)


def _detail(details: list[str], key: str) -> str | None:
    for line in details:
        text = line.strip()
        if text.startswith(key):
            return text[len(key) :].strip() or None
    return None


def _modules(details: list[str]) -> tuple[str, ...]:
    listed = _detail(details, _MODULES)
    if listed is None:
        return ()
    return tuple(m for m in (part.strip() for part in listed.split(",")) if m)
