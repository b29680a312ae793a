"""Where a xen-pciback `hide=` value can come from, and which one the module really gets at boot.

Shared by the hide-entry rule, its fix, and device discovery. Pure functions of HostFacts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from xenpass.facts.host import PCIBACK, HostFacts
from xenpass.parse.cmdline import kmod_cmdline
from xenpass.parse.hide import HideValue, parse_hide
from xenpass.parse.modprobe import kmod_underscores, normalize_module, parse_options
from xenpass.parse.modules_load import ModuleLoadLine


@dataclass(frozen=True)
class HideSource:
    where: str  # "/etc/modules:3", "/etc/modprobe.d/xen.conf:1", "/proc/cmdline"
    kind: str  # modules-line | options | cmdline | initramfs-modules
    raw: str
    value: HideValue
    stray: tuple[str, ...] = ()  # words a space split off the value: the kernel ignores them


@dataclass
class HideDecision:
    """The hide= value xen-pciback will get at the next boot, and why others will not count."""

    value: HideSource | None = None
    loader: str | None = None
    problems: list[str] = field(default_factory=list)
    fatal: list[str] = field(default_factory=list)  # reasons nothing at all will take effect
    ignored: list[HideSource] = field(default_factory=list)


def is_pciback(name: str) -> bool:
    return normalize_module(name) == PCIBACK


def loads_pciback(facts: HostFacts, name: str) -> bool:
    """Whether `modprobe NAME` loads xen-pciback on this host (busybox also cuts `.ko`: xen_pciback.ko)."""
    return facts.module_key(name) == PCIBACK


def looks_like_slot(word: str) -> bool:
    return word.startswith("(") and word.endswith(")")


def sources_from_line(line: ModuleLoadLine, kind: str) -> list[HideSource]:
    # modprobe joins the words with spaces and the kernel's parse_args splits them again (quotes removed)
    params = parse_options(" ".join(line.args))
    out = []
    for i, (name, value) in enumerate(params):
        if name == "hide" and value is not None:
            stray = tuple(n for n, v in params[i + 1 :] if v is None and looks_like_slot(n))
            out.append(HideSource(f"{line.source}:{line.lineno}", kind, line.raw, parse_hide(value), stray))
    return out


def hide_sources(facts: HostFacts) -> list[HideSource]:
    """Every hide= the host mentions, in any place, effective or not."""
    found: list[HideSource] = []
    for line in facts.module_load_lines:
        if loads_pciback(facts, line.module):
            found += sources_from_line(line, "modules-line")
    for line in facts.initramfs_modules:
        if is_pciback(line.module):
            found += sources_from_line(line, "initramfs-modules")
    for d in facts.directives("options", PCIBACK):
        params = parse_options(d.args)
        for i, (name, value) in enumerate(params):
            if name == "hide" and value is not None:
                stray = tuple(n for n, v in params[i + 1 :] if v is None and looks_like_slot(n))
                found.append(HideSource(f"{d.source}:{d.lineno}", "options", d.raw, parse_hide(value), stray))
    if kmod_reads_cmdline(facts):
        return found + kmod_cmdline_sources(facts)
    for name, value in facts.cmdline:
        module, dot, param = name.rpartition(".")
        if dot and param == "hide" and is_pciback(module) and value is not None:
            found.append(HideSource("/proc/cmdline", "cmdline", f"{name}={value}", parse_hide(value)))
    return found


def kmod_reads_cmdline(facts: HostFacts) -> bool:
    """A loadable xen-pciback gets `xen-pciback.hide=` from kmod, which parses /proc/cmdline its own way."""
    return facts.modprobe_impl == "kmod" and not facts.pciback_builtin


def kmod_cmdline_sources(facts: HostFacts) -> list[HideSource]:
    """hide= from the command line as kmod passes it: kmod's own split of /proc/cmdline (quotes kept in the
    value, for the kernel to strip), then the kernel's parse of the option text."""
    found = []
    for module, param in kmod_cmdline(facts.raw.file("/proc/cmdline") or ""):
        if kmod_underscores(module) != PCIBACK:
            continue
        for name, value in parse_options(param):
            if name == "hide" and value is not None:
                found.append(HideSource("/proc/cmdline", "cmdline", f"{module}.{param}", parse_hide(value)))
    return found


def kmod_option_order(sources: list[HideSource]) -> list[HideSource]:
    """The order kmod hands hide= to the module: modprobe.d options, then the command line's (both in
    kmod's config->options), then the arguments of the modprobe call itself; the kernel keeps the last."""
    rank = {"options": 0, "cmdline": 1}
    return sorted(sources, key=lambda s: rank.get(s.kind, 2))


def cmdline_counts(facts: HostFacts, source: HideSource) -> bool:
    """Who reads `MOD.hide=` from /proc/cmdline: the kernel if built in, else modprobe.

    kmod treats '-' and '_' alike; busybox modprobe only matches the underscored name.
    """
    if facts.pciback_builtin or facts.modprobe_impl == "kmod":
        return True
    return source.raw.startswith(PCIBACK + ".")


def decide(facts: HostFacts) -> HideDecision:
    sources = hide_sources(facts)
    if facts.pciback_builtin:
        return decide_builtin(sources)
    if facts.init_system == "openrc":
        return decide_openrc(facts, sources)
    return decide_modprobe_loader(facts, sources)


def decide_builtin(sources: list[HideSource]) -> HideDecision:
    decision = HideDecision(loader="built into the kernel")
    cmdline = [s for s in sources if s.kind == "cmdline"]
    decision.value = cmdline[-1] if cmdline else None
    for s in sources:
        if s.kind != "cmdline":
            decision.ignored.append(s)
            decision.problems.append(f"{s.where}: ignored, xen-pciback is built into the kernel "
                                     "(only the kernel command line counts)")
    return decision


def last_value(candidates: list[HideSource]) -> HideSource | None:
    """The kernel applies parameters in order, so the last hide= wins."""
    return candidates[-1] if candidates else None


def decide_openrc(facts: HostFacts, sources: list[HideSource]) -> HideDecision:
    """Alpine: /etc/init.d/modules runs `modprobe -q $module $args` per line; the first line loads it."""
    decision = HideDecision()
    loads = [ln for ln in facts.module_load_lines if loads_pciback(facts, ln.module)]
    if not loads:
        decision.problems.append("nothing loads xen-pciback at boot: no xen_pciback line in /etc/modules "
                                 "(it has no device table, so it is never autoloaded)")
        decision.ignored = sources
        return decision
    first = loads[0]
    decision.loader = f"{first.source}:{first.lineno} (OpenRC modules service)"
    level = facts.runlevel_services.get("modules")
    if facts.runlevel_services and level is None:
        decision.fatal.append("the OpenRC 'modules' service is in no runlevel, so /etc/modules is never read "
                              "(rc-update add modules boot)")
    first_where = f"{first.source}:{first.lineno}"
    cmdline = [s for s in sources if s.kind == "cmdline" and cmdline_counts(facts, s)]
    options = [s for s in sources if s.kind == "options"]
    # busybox modprobe.c do_modprobe passes config options, then /proc/cmdline's, then its own args
    candidates = options + cmdline if facts.modprobe_impl == "busybox" else cmdline + options
    candidates += [s for s in sources if s.kind == "modules-line" and s.where == first_where]
    decision.value = last_value(kmod_option_order(candidates) if kmod_reads_cmdline(facts) else candidates)
    for s in sources:
        if s not in candidates:
            decision.ignored.append(s)
            if s.kind == "modules-line":
                decision.problems.append(
                    f"{s.where}: `{s.raw.strip()}` is a no-op, because `{first.raw.strip()}` at {first_where} "
                    "already loaded xen_pciback (without these arguments)")
    return decision


def decide_modprobe_loader(facts: HostFacts, sources: list[HideSource]) -> HideDecision:
    """systemd/initramfs-tools/dracut: modules-load.d takes names only; parameters come from modprobe.d."""
    decision = HideDecision()
    for s in sources:
        if s.kind == "modules-line":
            decision.ignored.append(s)
            decision.problems.append(
                f"{s.where}: systemd-modules-load takes module names only: `{s.raw.strip()}` is read as a module "
                f"named '{s.raw.strip()}' and fails; put `options xen-pciback hide=...` in /etc/modprobe.d")
    decision.loader = pciback_loader(facts)
    if decision.loader is None:
        decision.problems.append("nothing loads xen-pciback at boot (it has no device table, so it is never "
                                 "autoloaded): add xen-pciback to /etc/modules")
    in_initramfs = [s for s in sources if s.kind == "initramfs-modules"]
    candidates = [s for s in sources if s.kind == "cmdline" and cmdline_counts(facts, s)]
    candidates += [s for s in sources if s.kind == "options"] + in_initramfs
    decision.value = last_value(kmod_option_order(candidates) if kmod_reads_cmdline(facts) else candidates)
    return decision


def pciback_loader(facts: HostFacts) -> str | None:
    """How xen-pciback gets loaded on a systemd/initramfs-tools host, if at all."""
    for line in facts.module_load_lines:
        if is_pciback(line.module) and not line.args:
            return f"{line.source}:{line.lineno} (systemd-modules-load)"
    for line in facts.initramfs_modules:
        if is_pciback(line.module):
            return f"{line.source}:{line.lineno} (initramfs-tools)"
    for name, value in facts.cmdline:
        if name == "rd.driver.pre" and value and any(is_pciback(v) for v in value.split(",")):
            return "/proc/cmdline rd.driver.pre (dracut)"
    if facts.modprobe_impl == "kmod":
        # a softdep/install loads xen-pciback only when its own module is loaded: by coldplug, a module that claims
        # a device here and is not blacklisted
        claimed = {m for bdf in facts.pci for m in facts.native_modules(bdf)}
        for d in facts.directives("softdep") + facts.directives("install"):
            coldplugged = [m for m in claimed if fnmatchcase(m, normalize_module(d.module))
                           and not facts.directives("blacklist", m)]
            if "pciback" in d.args.replace("-", "_") and coldplugged:
                return f"{d.source}:{d.lineno} ({d.keyword} {d.module})"
    return None
