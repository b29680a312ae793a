"""`/etc/modules` and `modules-load.d/*.conf`, read the way Alpine's OpenRC `modules` service reads them.

aports main/openrc/modules.initd (verified):

    sed 's/\\#.*//g' < "$f" | while read module args; do
        modprobe -q $module $args
    done

So: everything from the first `#` on a line is dropped; `read` (no -r) joins a line ending in a
backslash with the next one and turns `\\c` into `c`; the line is split on IFS whitespace
(space, tab, newline; not CR); `$module $args` unquoted are word-split again, so `module`/`args`
here are exactly the argv modprobe gets. Pathname expansion of unquoted words is not emulated.
A last line without a newline makes `read` fail, so the loop never runs it: `eof_without_newline`.
systemd-modules-load reads lines differently (whole line = one module name, `#`/`;` comments at
line start only); `raw` keeps the text so the rules can judge that case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ModuleLoadLine", "parse_modules_load"]


@dataclass(frozen=True)
class ModuleLoadLine:
    source: str
    lineno: int  # first physical line
    raw: str  # the physical line(s) as written, without the final newline
    module: str
    args: tuple[str, ...]
    eof_without_newline: bool = False  # Alpine's `while read` loop skips such a last line


def parse_modules_load(text: str, source: str) -> list[ModuleLoadLine]:
    physical = text.split("\n")
    terminated = [True] * (len(physical) - 1) + [False]
    if physical[-1] == "":  # text ended with a newline (or was empty)
        physical.pop()
        terminated.pop()
    out: list[ModuleLoadLine] = []
    i = 0
    while i < len(physical):
        start = i
        logical, continued = _unescape(_strip_comment(physical[i]))
        while continued and terminated[i] and i + 1 < len(physical):
            i += 1
            part, continued = _unescape(_strip_comment(physical[i]))
            logical += part
        # `read` hit end of file before a newline: it fails and the loop body never runs.
        at_eof = not terminated[i] or continued
        # `read module args` then unquoted `$module $args`: the words modprobe gets.
        words = [w for w in re.split(r"[ \t\n]+", logical) if w]
        if words:
            raw = "\n".join(physical[start : i + 1])
            out.append(ModuleLoadLine(source, start + 1, raw, words[0], tuple(words[1:]), at_eof))
        i += 1
    return out


def _strip_comment(line: str) -> str:
    return line.split("#", 1)[0]


def _unescape(line: str) -> tuple[str, bool]:
    """`read` without -r: `\\c` -> `c`; a trailing backslash continues the line (returns True)."""
    out: list[str] = []
    j = 0
    while j < len(line):
        if line[j] == "\\":
            if j + 1 == len(line):
                return "".join(out), True
            j += 1
        out.append(line[j])
        j += 1
    return "".join(out), False
