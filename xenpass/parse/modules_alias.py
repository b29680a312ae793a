"""`modules.alias`, `modules.builtin` and `modules.builtin.modinfo` of the running kernel.

modules.alias and modules.builtin are written by depmod; modules.builtin.modinfo by kbuild (Linux 5.2+):
the `.modinfo` section of vmlinux, NUL-separated `module.key=value` records. Aliases of built-in drivers
are only there (and in kmod's modules.builtin.alias.bin, built from it).
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from xenpass.parse.modprobe import normalize_module

__all__ = [
    "ModuleAlias",
    "parse_builtin_modinfo_aliases",
    "parse_modules_alias",
    "parse_modules_builtin",
    "resolve_alias",
]


@dataclass(frozen=True)
class ModuleAlias:
    pattern: str  # fnmatch pattern: "pci:v00001000d00000072sv*sd*bc*sc*i*", or a plain old name
    module: str


def parse_modules_alias(text: str) -> list[ModuleAlias]:
    """`alias PATTERN MODULE` lines; anything else (comments, garbage) is skipped."""
    aliases: list[ModuleAlias] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "alias":
            aliases.append(ModuleAlias(words[1], words[2]))
    return aliases


def parse_builtin_modinfo_aliases(text: str) -> list[ModuleAlias]:
    """`mpt3sas.alias=pci:v00001000d00000097sv*sd*bc*sc*i*` records (NUL or newline separated) -> aliases.

    Other keys (`.license=`, `.parm=`, ...) and records without a module name or a value are skipped.
    """
    aliases: list[ModuleAlias] = []
    for record in text.replace("\0", "\n").splitlines():
        head, sep, pattern = record.partition("=")
        module, dot, key = head.rpartition(".")
        if sep and dot and key == "alias" and module.strip() and pattern.strip():
            aliases.append(ModuleAlias(pattern.strip(), module.strip()))
    return aliases


def resolve_alias(name: str, aliases: Sequence[ModuleAlias]) -> tuple[str, ...]:
    """Real modules `name` is an alias of, in file order, without repeats; () if it is no alias.

    kmod matches with fnmatch(3) after turning '-' into '_' outside `[...]` (alias_normalize).
    """
    wanted = _normalize_alias(name)
    found = [a.module for a in aliases if fnmatchcase(wanted, _normalize_alias(a.pattern))]
    return tuple(dict.fromkeys(found))


def parse_modules_builtin(text: str) -> frozenset[str]:
    """`kernel/drivers/xen/xen-pciback/xen-pciback.ko` -> `xen_pciback`."""
    names = set()
    for line in text.splitlines():
        path = line.strip()
        if path:
            base = posixpath.basename(path)
            names.add(normalize_module(base.split(".ko", 1)[0]))
    return frozenset(names)


def _normalize_alias(alias: str) -> str:
    out: list[str] = []
    in_brackets = False
    for c in alias:
        if c == "[":
            in_brackets = True
        elif c == "]":
            in_brackets = False
        out.append("_" if c == "-" and not in_brackets else c)
    return "".join(out)
