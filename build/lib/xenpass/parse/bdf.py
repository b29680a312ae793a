"""PCI addresses (domain:bus:slot.function), as xl, lspci and sysfs print them."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Bdf", "parse_bdf"]

# ASCII-only classes: str.isdigit/int() would also take non-ASCII digits.
_BDF_RE = re.compile(r"(?:([0-9a-fA-F]+):)?([0-9a-fA-F]+):([0-9a-fA-F]+)\.([0-9a-fA-F]+)")
_LIMITS = (("domain", 0xFFFF), ("bus", 0xFF), ("slot", 0x1F), ("function", 7))


@dataclass(frozen=True, order=True)
class Bdf:
    domain: int
    bus: int
    slot: int
    func: int

    def __str__(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.func:x}"

    @property
    def short(self) -> str:
        return f"{self.bus:02x}:{self.slot:02x}.{self.func:x}"


def parse_bdf(text: str) -> Bdf:
    """Parse `[DDDD:]BB:SS.F`; raises ValueError, since user input goes through here too."""
    stripped = text.strip()
    match = _BDF_RE.fullmatch(stripped)
    if match is None:
        raise ValueError(f"malformed PCI address {text!r}: expected [DDDD:]BB:SS.F")
    values = [int(g, 16) if g is not None else 0 for g in match.groups()]
    for (name, limit), value in zip(_LIMITS, values, strict=True):
        if value > limit:
            raise ValueError(f"PCI address {text!r} out of range: {name} {value:#x} > {limit:#x}")
    return Bdf(*values)
