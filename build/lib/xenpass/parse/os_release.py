"""`/etc/os-release`: shell-style `KEY=value` assignments (os-release(5))."""

from __future__ import annotations

import re

__all__ = ["parse_os_release"]

_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)")
_DQUOTE_ESCAPES = '$`"\\'


def parse_os_release(text: str) -> dict[str, str]:
    """Quotes and backslash escapes as sh reads them; a line with an open quote keeps its raw value."""
    info: dict[str, str] = {}
    for line in text.splitlines():
        match = _ASSIGNMENT.fullmatch(line.strip())
        if match:
            value = _unquote(match[2])
            info[match[1]] = value if value is not None else match[2].strip().strip("\"'")
    return info


def _unquote(value: str) -> str | None:
    """sh word rules on one line: '...' literal, "..." with \\$ \\` \\" \\\\ escapes, \\c outside."""
    out: list[str] = []
    quote = ""
    i = 0
    while i < len(value):
        c = value[i]
        if quote == "'":
            quote = "" if c == "'" else quote
            out.append(c if c != "'" else "")
        elif c == "\\" and i + 1 < len(value) and (not quote or value[i + 1] in _DQUOTE_ESCAPES):
            i += 1
            out.append(value[i])
        elif c == quote or (not quote and c in "'\""):
            quote = "" if quote else c
        elif not quote and c == "#" and (not out or out[-1] == " "):
            break
        else:
            out.append(" " if not quote and c in " \t" else c)
        i += 1
    return None if quote else "".join(out).strip()
