"""modprobe configuration and coldplug, the way busybox `modprobe` reads and resolves them.

Verified in busybox 1.35.0 (modutils/modprobe.c, modutils/modutils.c, libbb/parse_config.c,
libbb/recursive_action.c), unchanged through 1.36.1 and the mid-2024 tree, and run against Debian's
busybox-static 1.35 (tests/differential/test_busybox_oracle.py):
- /etc/modprobe.conf, then /etc/modprobe.d in readdir order (not sorted); in the directory only names
  ending in `.conf` and not starting with `.`, no subdirectories;
- `config_read(tokens=3, min=2, "# \\t", PARSE_NORMAL)`: a trailing backslash joins the next line (and is
  dropped), any other backslash is kept; `#` ends the line anywhere; the third token is the rest of the line;
- names go through `filename2modname`: cut at the first `.` (so `.ko` goes), `-` becomes `_`, 63 chars;
- only `alias`, `options`, `include`, `blacklist` mean something; config aliases are matched (fnmatch) against
  the requested name only, and modules.alias is read only when something is still unresolved afterwards;
- `modprobe.blacklist=a,b` on /proc/cmdline blacklists too (names normalised like the rest).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from posixpath import basename

from xenpass.parse.modprobe import ModprobeDirective

__all__ = [
    "BUSYBOX_MODPROBE",
    "BusyboxProbe",
    "busybox_by_name",
    "busybox_cmdline_blacklist",
    "busybox_coldplug",
    "busybox_dep_modules",
    "busybox_modname",
    "busybox_reads",
    "parse_busybox_conf",
]

BUSYBOX_MODPROBE = "busybox modprobe (1.35-1.36)"
MODULE_NAME_LEN = 64
_DELIMS = " \t"
_KEYWORDS = {"alias", "options", "include", "blacklist", "install", "remove", "softdep"}
_NEEDS_REST = {"alias", "options"}


def busybox_modname(name: str) -> str:
    """`filename2modname`: up to the first '.', '-' read as '_', at most 63 characters."""
    out: list[str] = []
    for c in name.split("\0", 1)[0][: MODULE_NAME_LEN - 1]:
        if c == ".":
            break
        out.append("_" if c == "-" else c)
    return "".join(out)


def busybox_reads(path: str) -> bool:
    """Whether busybox modprobe reads this file of /etc/modprobe.d (`config_file_action` at depth 1)."""
    name = basename(path)
    return not name.startswith(".") and name.endswith(".conf")


def parse_busybox_conf(text: str, source: str) -> list[ModprobeDirective]:
    """Directives as busybox's config_read splits them. For alias/options `args` is the third token (the rest
    of the line up to `#`); install/remove/softdep are kept so the rules can say they are ignored."""
    out: list[ModprobeDirective] = []
    for lineno, raw, line in _continued_lines(text):
        tokens = _tokens(line)
        if len(tokens) < 2 or tokens[0] not in _KEYWORDS:
            continue
        rest = tokens[2] if len(tokens) > 2 else ""
        if tokens[0] in _NEEDS_REST and not rest:
            continue
        out.append(ModprobeDirective(source, lineno, raw, tokens[0], tokens[1], rest))
    return out


def _continued_lines(text: str) -> list[tuple[int, str, str]]:
    """`get_line_with_continuation`: (first line number, raw lines, joined line)."""
    physical = [ln + "\n" for ln in text.split("\n")]
    physical[-1] = physical[-1][:-1]  # getline: the last line may lack its newline
    if not physical[-1]:
        physical.pop()
    out: list[tuple[int, str, str]] = []
    i = 0
    while i < len(physical):
        first = i + 1
        line = physical[i]
        i += 1
        raw = [line]
        while True:
            if line.endswith("\n"):
                line = line[:-1]
            if not line or not line.endswith("\\"):
                break
            line = line[:-1]
            if i >= len(physical):
                break
            line += physical[i]
            raw.append(physical[i])
            i += 1
        out.append((first, "".join(raw).rstrip("\n"), line.split("\0", 1)[0]))
    return out


def _tokens(line: str) -> list[str]:
    """`config_read` with 3 tokens, "# \\t" delimiters, PARSE_NORMAL (collapse, trim, greedy, `#` comments)."""
    pos = _skip(line, 0)
    if pos >= len(line) or line[pos] == "#":
        return []
    tokens: list[str] = []
    while pos < len(line) and line[pos] != "#" and len(tokens) < 3:
        if len(tokens) < 2:
            end = pos
            while end < len(line) and line[end] not in "# \t":
                end += 1
            tokens.append(line[pos:end])
        else:
            end = line.find("#", pos)
            end = len(line) if end < 0 else end
            tokens.append(line[pos:end].rstrip(_DELIMS))
        if end < len(line) and line[end] == "#":
            break
        pos = _skip(line, end + 1)
    return tokens


def _skip(line: str, pos: int) -> int:
    while pos < len(line) and line[pos] in _DELIMS:
        pos += 1
    return pos


def busybox_cmdline_blacklist(cmdline: str) -> list[str]:
    """Names from `modprobe.blacklist=` on /proc/cmdline, split like busybox does (`strsep_quotes`, then
    spaces, then commas), normalised with `filename2modname`. Quotes are not removed."""
    options = [word[len("modprobe.") :] for word in _strsep_quotes(cmdline)
               if word.startswith("modprobe.") and "=" in word[len("modprobe.") :]]
    names: list[str] = []
    for part in " ".join(options).split(" "):
        if part.startswith("blacklist="):
            names += [busybox_modname(n) for n in part[len("blacklist=") :].split(",")]
    return names


def _strsep_quotes(text: str) -> list[str]:
    """busybox `strsep_quotes`: split on space/tab/newline; a quoted part keeps its blanks, and the character
    right after its closing quote ends the word whatever it is."""
    words: list[str] = []
    start = i = 0
    while True:
        if i >= len(text):
            words.append(text[start:])
            return words
        c = text[i]
        if c == '"':
            close = text.find('"', i + 1)
            if close < 0:
                words.append(text[start:])
                return words
            i = close + 1
            words.append(text[start:i])
            if i >= len(text):
                return words
            start = i = i + 1
            continue
        if c in " \t\n":
            words.append(text[start:i])
            start = i + 1
        i += 1


def busybox_dep_modules(text: str) -> frozenset[str]:
    """Module names of modules.dep lines (`kernel/.../xen-pciback.ko.gz: deps`), as busybox keys them."""
    names = set()
    for line in text.split("\n"):
        words = line.split("#", 1)[0].split()
        if words and words[0].endswith(":"):
            names.add(busybox_modname(basename(words[0][:-1])))
    return frozenset(names)


@dataclass(frozen=True)
class AliasHit:
    module: str  # the target, as busybox keys it
    directive: ModprobeDirective | None  # the config line; None for modules.alias


@dataclass
class BusyboxProbe:
    """What `modprobe -b MODALIAS` (mdev, hwdrivers) resolves and loads."""

    modalias: str
    config_hits: list[AliasHit] = field(default_factory=list)
    unresolved_targets: list[str] = field(default_factory=list)  # config targets missing from modules.dep
    reads_modules_alias: bool = True
    alias_hits: list[AliasHit] = field(default_factory=list)  # from modules.alias
    blacklist: dict[str, str] = field(default_factory=dict)  # module -> where ("file:line" or "/proc/cmdline")

    @property
    def realnames(self) -> list[str]:
        return list(dict.fromkeys(h.module for h in self.config_hits + self.alias_hits))

    @property
    def loads(self) -> list[str]:
        return [m for m in self.realnames if m not in self.blacklist]


def busybox_coldplug(
    modalias: str,
    directives: Iterable[ModprobeDirective],
    modules_alias: Sequence[tuple[str, str]],
    dep_modules: frozenset[str] | None,
    cmdline: str,
    name_is_module: bool = False,
) -> BusyboxProbe:
    """Resolve a modalias like busybox `modprobe -b`: config aliases first; modules.alias only when the
    requested name matched no config alias, or a target is not in modules.dep (`dep_modules`; None: unknown,
    taken as missing, the side that does not hide a native driver). `name_is_module`: the requested name is a
    module in modules.dep (a load by name), so it resolves without modules.alias."""
    probe = BusyboxProbe(modalias)
    wanted = busybox_modname(modalias)
    for d in directives:
        if d.keyword == "alias" and _fnmatch(busybox_modname(d.module), wanted):
            probe.config_hits.append(AliasHit(busybox_modname(d.args), d))
        elif d.keyword == "blacklist":
            probe.blacklist.setdefault(busybox_modname(d.module), f"{d.source}:{d.lineno}")
    targets = list(dict.fromkeys(h.module for h in probe.config_hits))
    probe.unresolved_targets = [t for t in targets if dep_modules is None or t not in dep_modules]
    probe.reads_modules_alias = (not targets and not name_is_module) or bool(probe.unresolved_targets)
    if probe.reads_modules_alias:
        probe.alias_hits = [AliasHit(busybox_modname(target), None) for pattern, target in modules_alias
                            if _fnmatch(busybox_modname(pattern), wanted)]
    for name in busybox_cmdline_blacklist(cmdline):
        probe.blacklist.setdefault(name, "/proc/cmdline")
    return probe


def _fnmatch(pattern: str, name: str) -> bool:
    """fnmatch(3) without flags: `*`, `?`, `[...]`/`[!...]`, and a backslash quoting the next character."""
    return re.fullmatch(_glob_regex(pattern), name, re.DOTALL) is not None


def _glob_regex(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        i += 1
        if c == "\\" and i < len(pattern):
            out.append(re.escape(pattern[i]))
            i += 1
        elif c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            end = i + (1 if pattern[i : i + 1] in ("!", "^") else 0)
            end += 1 if pattern[end : end + 1] == "]" else 0
            end = pattern.find("]", end)
            if end < 0:
                out.append(re.escape(c))
                continue
            body = pattern[i:end]
            negate = body[:1] in ("!", "^")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\").replace("[", "\\[") + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
    return "".join(out)


def busybox_by_name(
    name: str,
    directives: Sequence[ModprobeDirective],
    modules_alias: Sequence[tuple[str, str]],
    dep_modules: frozenset[str] | None,
    cmdline: str,
    known_modules: frozenset[str],
) -> list[str]:
    """Modules `modprobe NAME` (no -b: Alpine's modules service) loads. A name with no alias is loaded as
    itself, blacklisted or not; an alias loads its real names that are not blacklisted."""
    key = busybox_modname(name)
    probe = busybox_coldplug(name, directives, modules_alias, dep_modules, cmdline, key in known_modules)
    if not probe.realnames:
        return [key] if key in known_modules else []
    return probe.loads
