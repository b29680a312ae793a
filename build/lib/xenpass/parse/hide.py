"""xen-pciback's `hide=` parameter, accepted and rejected exactly as the kernel does.

Emulates `pcistub_init` and `pcistub_device_id_add` in drivers/xen/xen-pciback/pci_stub.c, and the
kernel's `vsscanf` (lib/vsprintf.c) for the formats used there. Verified in the sources:
- whitespace in a format skips any run of input whitespace; `%x` also skips whitespace before the
  number, needs a hex digit first, and swallows a `0x`/`0X` prefix even with no digit after it;
- `%x` stores into an `int`: the value wraps modulo 2**32 and reads back signed, so
  `ffffffff` is -1, which `pcistub_device_id_add` treats like `*` for slot and function;
- a group that no format accepts stops parsing with `Error parsing pci_devs_to_hide at "<rest>"`
  and the module fails to load; an out-of-range value fails it with -EINVAL and no message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from xenpass.parse.bdf import Bdf

__all__ = ["HideSlot", "HideValue", "format_hide", "parse_hide", "slot_for"]

# The kernel's isspace() on the bytes of UTF-8 text: 0xA0 (Latin-1 NBSP) only ever appears
# there as a continuation byte, which never follows whitespace, so ASCII is enough.
_SPACE = " \t\n\v\f\r"
_HEX = "0123456789abcdefABCDEF"


@dataclass(frozen=True)
class HideSlot:
    domain: int
    bus: int
    slot: int | None  # None = '*'
    func: int | None  # None = '*'

    def matches(self, bdf: Bdf) -> bool:
        return (
            self.domain == bdf.domain
            and self.bus == bdf.bus
            and self.slot in (None, bdf.slot)
            and self.func in (None, bdf.func)
        )

    def __str__(self) -> str:
        if self.slot is None and self.func is not None:
            # Only reachable through a wrapped -1 slot; this text parses back to the same slot.
            return f"({self.domain:04x}:{self.bus:02x}:ffffffff.{self.func:x})"
        slot = "*" if self.slot is None else f"{self.slot:02x}"
        func = "*" if self.func is None else f"{self.func:x}"
        return f"({self.domain:04x}:{self.bus:02x}:{slot}.{func})"


@dataclass(frozen=True)
class HideValue:
    raw: str
    slots: tuple[HideSlot, ...]  # the groups accepted before any error
    error: str | None  # any error makes the whole module fail to load

    def covering_slot(self, chain: Sequence[Bdf]) -> HideSlot | None:
        """The first slot matching the device or an upstream bridge (`pcistub_match` order)."""
        for slot in self.slots:
            if any(slot.matches(dev) for dev in chain):
                return slot
        return None


def slot_for(bdf: Bdf) -> HideSlot:
    return HideSlot(bdf.domain, bdf.bus, bdf.slot, bdf.func)


def format_hide(slots: Iterable[HideSlot]) -> str:
    return "".join(str(s) for s in slots)


def parse_hide(value: str) -> HideValue:
    """Never raises: whatever the text, the answer is the kernel's."""
    text = value.split("\0", 1)[0]  # the kernel sees a C string
    slots: list[HideSlot] = []
    pos = 0
    while pos < len(text):  # `if (*pci_devs_to_hide)` then `do { } while (pci_devs_to_hide[pos])`
        rest = text[pos:]
        parsed, fields = _scan_group(rest)
        if parsed <= 0:
            return HideValue(value, tuple(slots), f'Error parsing pci_devs_to_hide at "{rest}"')
        slot = _checked_slot(*fields)
        if slot is None:
            group = rest[:parsed].strip(_SPACE)
            return HideValue(value, tuple(slots), f"out-of-range PCI slot {group!r} in pci_devs_to_hide: "
                                                  "xen-pciback fails to load with EINVAL (the kernel logs no message)")
        slots.append(slot)
        pos += parsed
    return HideValue(value, tuple(slots), None)


def _scan_group(s: str) -> tuple[int, tuple[int, int, int, int]]:
    """One iteration of `pcistub_init`'s loop: (chars parsed, (domain, bus, slot, func)); -1 = '*'."""
    count, vals, n = _sscanf(s, " (%x:%x:%x.%x) %n")
    if count == 4 and n:
        return n, (vals[0], vals[1], vals[2], vals[3])
    if count == 3:
        _, vals, n = _sscanf(s, " (%x:%x:%x.*) %n")
        if n:
            return n, (vals[0], vals[1], vals[2], -1)
    elif count == 2:
        _, vals, n = _sscanf(s, " (%x:%x:*.*) %n")
        if n:
            return n, (vals[0], vals[1], -1, -1)
    # "try again without domain"
    count, vals, n = _sscanf(s, " (%x:%x.%x) %n")
    if count == 3 and n:
        return n, (0, vals[0], vals[1], vals[2])
    if count == 2:
        _, vals, n = _sscanf(s, " (%x:%x.*) %n")
        if n:
            return n, (0, vals[0], vals[1], -1)
    elif count == 1:
        _, vals, n = _sscanf(s, " (%x:*.*) %n")
        if n:
            return n, (0, vals[0], -1, -1)
    return 0, (0, 0, 0, 0)


def _checked_slot(domain: int, bus: int, slot: int, func: int) -> HideSlot | None:
    """`pcistub_device_id_add` (module build): negative slot/func expand to all; else range-checked."""
    if not 0 <= domain <= 0xFFFF or not 0 <= bus <= 0xFF:
        return None
    if slot > 0x1F or func > 7:  # PCI_SLOT(PCI_DEVFN(slot, func)) != slot, same for func
        return None
    return HideSlot(domain, bus, None if slot < 0 else slot, None if func < 0 else func)


def _sscanf(s: str, fmt: str) -> tuple[int, list[int], int]:
    """The kernel's vsscanf for formats made of whitespace, literals, %x and %n.

    Returns (conversions, values, %n result or 0 when %n was not reached).
    """
    values: list[int] = []
    i = f = 0
    consumed = 0
    while f < len(fmt):
        if fmt[f] in _SPACE:
            f = _skip(fmt, f)
            i = _skip(s, i)
            if f == len(fmt):
                break
        if fmt[f] != "%":
            if i >= len(s) or s[i] != fmt[f]:
                break
            i += 1
            f += 1
            continue
        conv = fmt[f + 1]
        f += 2
        if conv == "n":
            consumed = i
            continue
        if i >= len(s):
            break
        i = _skip(s, i)
        if i >= len(s) or s[i] not in _HEX:
            break
        value, i = _strtoul16(s, i)
        values.append(_as_int32(value))
    return len(values), values, consumed


def _skip(s: str, i: int) -> int:
    while i < len(s) and s[i] in _SPACE:
        i += 1
    return i


def _strtoul16(s: str, i: int) -> tuple[int, int]:
    """simple_strtoul(s, &end, 16): optional 0x prefix, then hex digits; wraps like a u64."""
    if s.startswith(("0x", "0X"), i):
        i += 2
    value = 0
    while i < len(s) and s[i] in _HEX:
        value = (value * 16 + int(s[i], 16)) & 0xFFFFFFFFFFFFFFFF
        i += 1
    return value, i


def _as_int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value
