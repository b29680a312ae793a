"""What udev's coldplug makes kmod load for one device, in order: libkmod's own steps, as pure functions.

udev runs its builtin `kmod load $MODALIAS` (= `modprobe -b MODALIAS`) for every device at boot. Verified in
kmod 30's source (libkmod-module.c, libkmod.c, libkmod-config.c) and against the real kmod 30 by
tests/differential/test_kmod_oracle.py:
- lookup: `alias` lines of modprobe.d come first (fnmatch, every match, in file order); only when none
  matches does kmod try module names, install commands of that exact name, then modules.alias;
- `-b`: a module found by the lookup is dropped when a `blacklist` entry equals its real name; blacklist
  entries from `modprobe.blacklist=` on the command line are taken as written (no '-' to '_');
- softdep: the first `softdep` whose name (a glob) matches; pre modules are looked up like names and loaded
  first, never blacklisted; a module with softdeps loads with insmod, its install command is ignored;
- install: the first `install` whose name (a glob) matches runs through the shell instead of insmod;
  `modprobe -i`/`--ignore-install` inside it loads the module itself, without its install and softdeps;
- a failed install command ends that module's probe (its post softdeps are not loaded).
Install commands are modelled as `;`/`&&`/`||` lists of `modprobe ...`, `true` and `false`; any other command
is taken to load nothing and succeed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from xenpass.facts.host import PCIBACK, HostFacts
from xenpass.parse.cmdline import kmod_cmdline
from xenpass.parse.modprobe import ModprobeDirective, kmod_softdep, kmod_underscores
from xenpass.parse.modules_alias import resolve_alias
from xenpass.rules.base import where

MAX_DEPTH = 8  # install commands that call modprobe that runs install commands...


@dataclass(frozen=True)
class Load:
    """One module kmod inserts (or finds built in), and the configuration line that made it do so."""

    module: str
    via: str  # "" for a plain coldplug load, else e.g. "`softdep mptsas pre: xen-pciback` (/etc/...:1)"


@dataclass
class Trace:
    loads: list[Load] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # why something that could have loaded did not


@dataclass(frozen=True)
class KmodRule:
    pattern: str  # module name after kmod's underscores(); a glob for install/softdep
    directive: ModprobeDirective

    @property
    def at(self) -> str:
        return f"`{self.directive.raw.strip()}` ({where(self.directive.source, self.directive.lineno)})"


class KmodConfig:
    """modprobe.d and the command line as libkmod holds them (kmod_config_new)."""

    def __init__(self, facts: HostFacts) -> None:
        self.facts = facts
        self.aliases: list[tuple[str, str, KmodRule]] = []
        self.blacklist: list[tuple[str, str]] = []  # (name, where)
        self.installs: list[KmodRule] = []
        self.softdeps: list[KmodRule] = []
        for d in facts.modprobe:
            self.add(d)
        for module, param in kmod_cmdline(facts.raw.file("/proc/cmdline") or ""):
            if module == "modprobe" and param.startswith("blacklist="):
                for name in param[len("blacklist="):].split(","):
                    self.blacklist.append((name, f"modprobe.blacklist= on the kernel command line (`{param}`)"))

    def add(self, d: ModprobeDirective) -> None:
        name = kmod_underscores(d.module)
        if name is None:
            return  # kmod: "ignoring bad line"
        rule = KmodRule(name, d)
        if d.keyword == "alias":
            target = kmod_underscores(d.args)
            if target is not None:
                self.aliases.append((name, target, rule))
        elif d.keyword == "blacklist":
            self.blacklist.append((name, where(d.source, d.lineno)))
        elif d.keyword == "install":
            self.installs.append(rule)
        elif d.keyword == "softdep":
            self.softdeps.append(rule)

    def first(self, rules: list[KmodRule], module: str) -> KmodRule | None:
        return next((r for r in rules if fnmatchcase(module, r.pattern)), None)

    def blacklisted(self, module: str) -> str | None:
        return next((at for name, at in self.blacklist if name == module), None)


class KmodColdplug:
    """Runs kmod's probe for a device's modalias over the collected configuration."""

    def __init__(self, facts: HostFacts) -> None:
        self.facts = facts
        self.config = KmodConfig(facts)
        # modules the collector saw exist: what modules.alias names, xen-pciback, the built-in ones
        self.known = {normalize(a.module) for a in facts.aliases} | {PCIBACK} | set(facts.builtin_modules)
        self.trace = Trace()

    def coldplug(self, modalias: str) -> Trace:
        self.trace = Trace()
        for module, via in self.lookup(modalias):
            if via:
                exists = "" if module in self.known else ", a module this host does not have"
                self.trace.notes.append(f"{via} overrides modules.alias: kmod looks up modprobe.d aliases first, "
                                        f"so the device's modalias resolves to {module}{exists}")
            at = self.config.blacklisted(module)
            if at:
                self.trace.notes.append(f"{module} is blacklisted at {at}")
                continue
            self.probe(module, via, ignore_install=False, depth=0)
        return self.trace

    def load_by_name(self, name: str) -> Trace:
        """`modprobe NAME` (systemd-modules-load, initramfs-tools' conf/modules): no blacklist, softdep and
        install still apply."""
        self.trace = Trace()
        for module, via in self.lookup(name):
            self.probe(module, via, ignore_install=False, depth=0)
        return self.trace

    def lookup(self, name: str) -> list[tuple[str, str]]:
        """kmod_module_new_from_lookup: config aliases, module names, install names, modules.alias, builtin."""
        wanted = alias_normalize(name)
        hits = [(target, rule.at) for pattern, target, rule in self.config.aliases if fnmatchcase(wanted, pattern)]
        if hits:
            return hits
        if wanted in self.known:
            return [(wanted, "")]
        if any(r.pattern == wanted for r in self.config.installs):
            return [(wanted, "")]
        return [(normalize(m), "") for m in resolve_alias(wanted, self.facts.aliases)]

    def probe(self, module: str, via: str, ignore_install: bool, depth: int) -> bool:
        """kmod_module_probe_insert_module; False when the module itself could not be loaded."""
        steps: list[tuple[str, str, bool, bool]] = []  # (module, via, ignore its install, required)
        visited: set[str] = set()
        self.probe_list(module, via, ignore_install, steps, visited, required=True)
        for name, why, ignorecmd, required in steps:
            rule = None if ignorecmd else self.config.first(self.config.installs, name)
            ok = self.run_install(name, rule, depth) if rule else self.insert(name, why)
            if required and not ok:
                return False
        return True

    def probe_list(self, module: str, via: str, ignorecmd: bool, steps: list, visited: set[str],
                   required: bool) -> None:
        if module in visited:
            return
        visited.add(module)
        if ignorecmd:
            steps.append((module, via, True, required))
            return
        rule = self.config.first(self.config.softdeps, module)
        softdep = kmod_softdep(rule.directive.kmod_rest) if rule else None
        pre = [m for n in (softdep.pre if softdep else ()) for m, _ in self.lookup(n)]
        post = [m for n in (softdep.post if softdep else ()) for m, _ in self.lookup(n)]
        for m in pre:
            self.probe_list(m, f"{rule.at}, before {module}" if rule else "", False, steps, visited, False)
        steps.append((module, via, bool(pre or post), required))
        for m in post:
            self.probe_list(m, f"{rule.at}, after {module}" if rule else "", False, steps, visited, False)

    def insert(self, module: str, via: str) -> bool:
        if module not in self.known:
            return False  # kmod: "could not find module by name"
        self.trace.loads.append(Load(module, via))
        return True

    def run_install(self, module: str, rule: KmodRule, depth: int) -> bool:
        """system(install command): `;`, `&&`, `||` between simple commands, left to right."""
        if depth >= MAX_DEPTH:
            self.trace.notes.append(f"{rule.at} calls itself again and again")
            return False
        status, skip = True, False
        for op, words in shell_list(rule.directive.args.replace("$MODPROBE_MODULE", module)
                                    .replace("${MODPROBE_MODULE}", module)):
            skip = (op == "&&" and not status) or (op == "||" and status)
            if not skip:
                status = self.simple_command(words, module, rule, depth)
        return status

    def simple_command(self, words: list[str], module: str, rule: KmodRule, depth: int) -> bool:
        if not words:
            return True
        program = words[0].rsplit("/", 1)[-1]
        if program in ("true", ":"):
            return True
        if program == "false":
            return False
        if program != "modprobe":
            return True  # an unknown command: it loads nothing we can see
        ignore_install, blacklist, names = False, False, []
        for word in words[1:]:
            if word in ("-i", "--ignore-install"):
                ignore_install = True
            elif word in ("-b", "--use-blacklist"):
                blacklist = True
            elif word in ("-n", "--dry-run", "-r", "--remove", "-R", "--resolve-alias", "-c", "--showconfig"):
                return True
            elif not word.startswith("-"):
                names.append(word)
        if not names:
            return True
        found = self.lookup(names[0])
        if not found:
            return False
        ok = True
        for target, _ in found:
            if blacklist and self.config.blacklisted(target):
                continue
            ok = self.probe(target, f"{rule.at}, for {module}", ignore_install, depth + 1) and ok
        return ok


def shell_list(command: str) -> list[tuple[str, list[str]]]:
    """`a; b && c || d` -> [(";", a), (";", b), ("&&", c), ("||", d)]: the operator before each command."""
    parts = re.split(r"(;|&&|\|\|)", command)
    out: list[tuple[str, list[str]]] = []
    op = ";"
    for part in parts:
        if part in (";", "&&", "||"):
            op = part
        else:
            out.append((op, part.split()))
    return out


def normalize(name: str) -> str:
    return name.replace("-", "_")


def alias_normalize(name: str) -> str:
    """kmod's alias_normalize: '-' to '_' outside `[...]`."""
    return kmod_underscores(name) or name


def first_binding(trace: Trace, natives: tuple[str, ...]) -> Load | None:
    """The first load that binds the device: xen-pciback, or one of its native drivers."""
    return next((load for load in trace.loads if load.module == PCIBACK or load.module in natives), None)
