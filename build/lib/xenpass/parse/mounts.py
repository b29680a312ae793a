"""/proc/mounts and /proc/swaps: which block devices hold a filesystem or swap (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_OCTAL = re.compile(r"\\([0-7]{3})")


def unescape(field: str) -> str:
    """The kernel writes space, tab, newline and backslash in mount fields as octal escapes (\\040)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


@dataclass(frozen=True)
class Use:
    """A block device in use: `what` is the mount point, or `swap`."""

    source: str
    what: str

    def __str__(self) -> str:
        return f"swap on {self.source}" if self.what == "swap" else f"{self.what} (on {self.source})"


def parse_mounts(text: str) -> list[Use]:
    """Mounts whose source is a device node (`/dev/...`): the ones a disk controller holds up."""
    uses = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].startswith("/dev/"):
            uses.append(Use(unescape(fields[0]), unescape(fields[1])))
    return uses


def parse_swaps(text: str) -> list[Use]:
    """Swap areas on device nodes (swap files live on a mounted filesystem, which is counted there)."""
    uses = []
    for line in text.splitlines()[1:]:  # header: Filename Type Size Used Priority
        fields = line.split()
        if len(fields) >= 2 and fields[0].startswith("/dev/") and fields[1] == "partition":
            uses.append(Use(unescape(fields[0]), "swap"))
    return uses
