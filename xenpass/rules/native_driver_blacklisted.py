"""native-driver-blacklisted — seed step 5: the device's real native driver cannot claim it first."""

from __future__ import annotations

from xenpass.facts.host import PCIBACK, HostFacts
from xenpass.parse.bdf import Bdf
from xenpass.parse.modprobe import kmod_softdep, kmod_underscores, normalize_module
from xenpass.parse.modprobe_busybox import BUSYBOX_MODPROBE, BusyboxProbe, parse_busybox_conf
from xenpass.rules.base import Context, Evidence, Rule, Status, Verdict, command_evidence, where
from xenpass.rules.hide_sources import decide
from xenpass.rules.kmod_coldplug import KmodColdplug, first_binding


def check(facts: HostFacts, bdf: Bdf, ctx: Context) -> Verdict:
    evidence = device_evidence(facts, bdf)
    if bdf not in facts.pci and bdf not in facts.lspci:
        return RULE.verdict(Status.FAIL, f"{bdf} is not on this host (not in /sys/bus/pci/devices), so its "
                                         "native driver cannot be resolved", *evidence)
    natives = facts.native_modules(bdf)
    if not natives:
        if not facts.aliases and not facts.lspci:
            return RULE.verdict(Status.ERROR, f"cannot resolve the native driver: /lib/modules/{facts.kernel}/"
                                             "modules.alias is unreadable and lspci -k is unavailable", *evidence)
        return RULE.verdict(Status.PASS, f"no module of kernel {facts.kernel} claims {bdf} by its modalias",
                            *evidence)
    evidence += blacklist_evidence(facts, natives)
    dev = facts.pci.get(bdf)
    if facts.modprobe_impl == "kmod" and dev is not None and dev.modalias:
        return kmod_verdict(facts, bdf, dev.modalias, natives, evidence)
    problems, guards = [], []
    for module in natives:
        if facts.modprobe_impl == "busybox":
            guard, why = busybox_prevention(facts, bdf, module)
        else:
            guard, why = prevention(facts, module)
        (guards if guard else problems).append(why)
    if problems:
        return RULE.verdict(Status.FAIL, "; ".join(problems), *evidence)
    return RULE.verdict(Status.PASS, "; ".join(guards), *evidence)


def guarded(facts: HostFacts, bdf: Bdf, module: str) -> bool:
    """Whether this rule counts `module` as kept from claiming the device: what the fix plans from."""
    if facts.modprobe_impl == "busybox":
        return busybox_prevention(facts, bdf, module)[0]
    dev = facts.pci.get(bdf)
    if facts.modprobe_impl != "kmod" or dev is None or not dev.modalias:
        return prevention(facts, module)[0]
    if check(facts, bdf, Context()).status == Status.PASS:
        return True
    model = KmodColdplug(facts)
    natives = facts.native_modules(bdf)
    return model.config.blacklisted(module) is not None and not_by_coldplug(facts, bdf, model, module, natives) is None


def prevention(facts: HostFacts, module: str) -> tuple[bool, str]:
    """Whether `module` is kept from claiming the device at boot, and the reason either way."""
    kmod = facts.modprobe_impl == "kmod"
    if module in facts.builtin_modules:
        return False, f"{module} is built into kernel {facts.kernel}: no blacklist can stop it"
    # kmod applies softdep and install to every load, by alias or by name: checked before loads by name
    for d in facts.directives("install", module) + facts.directives("softdep", module):
        if not kmod:
            continue
        preloads = PCIBACK in normalize_module(d.args)
        if d.keyword == "softdep" and preloads and "pre:" in d.args:
            return True, f"xen-pciback is loaded before {module} by `{d.raw.strip()}` ({where(d.source, d.lineno)})"
        if d.keyword == "install" and (preloads or "--ignore-install" not in d.args):
            return True, f"{module} is replaced by `{d.raw.strip()}` ({where(d.source, d.lineno)})"
    explicit = [ln for ln in facts.module_load_lines + facts.initramfs_modules if normalize_module(ln.module) == module]
    if explicit:
        at = where(explicit[0].source, explicit[0].lineno)
        return False, (f"{module} is loaded by name at {at}; a blacklist only stops loading by alias, "
                       "so remove that line")
    for d in facts.directives("blacklist", module):
        return True, f"{module} is blacklisted at {where(d.source, d.lineno)}"
    for name, value in facts.cmdline:
        if kmod and name == "modprobe.blacklist" and module in [normalize_module(m) for m in (value or "").split(",")]:
            return True, f"{module} is blacklisted by modprobe.blacklist= on the kernel command line"
    return False, missing_reason(facts, module)


def kmod_verdict(facts: HostFacts, bdf: Bdf, modalias: str, natives: tuple[str, ...],
                 evidence: list[Evidence]) -> Verdict:
    """kmod hosts: what udev's coldplug (`modprobe -b MODALIAS`) loads for the device, step by step."""
    model = KmodColdplug(facts)
    for module in natives:
        stop = not_by_coldplug(facts, bdf, model, module, natives)
        if stop:
            return RULE.verdict(Status.FAIL, stop, *evidence)
    trace = model.coldplug(modalias)
    version = f"kmod {facts.kmod_version}" if facts.kmod_version else "kmod"
    skipped = facts.kmod_skipped_files()
    read = "\n".join(f.path for f in facts.kmod_config_files) or "(none)"
    evidence = [*evidence, Evidence(f"modprobe.d files {version} reads, in its order", read)]
    if skipped:
        evidence = [*evidence, Evidence(f"modprobe.d files {version} does not read as they are", "\n".join(skipped))]
    first = first_binding(trace, natives)
    if first is not None and first.module != PCIBACK:
        how = f" ({first.via})" if first.via else ""
        loads = f"udev's coldplug (`modprobe -b {modalias}`, {version}) loads {first.module} first{how}"
        why = [missing_reason(facts, first.module), *kmod_misreadings(facts, model, first.module), *skipped]
        return RULE.verdict(Status.FAIL, "; ".join([loads, *why]), *evidence)
    if first is not None:
        return RULE.verdict(Status.PASS, f"udev's coldplug ({version}) loads xen-pciback before any native driver, "
                                         f"by {first.via}", *evidence)
    why = "; ".join(trace.notes) or "no module it loads claims the device"
    loads = ", ".join(load.module for load in trace.loads) or "nothing"
    return RULE.verdict(Status.PASS, f"udev's coldplug (`modprobe -b {modalias}`, {version}) loads {loads} "
                                     f"and no native driver: {why}", *evidence)


def kmod_misreadings(facts: HostFacts, model: KmodColdplug, module: str) -> list[str]:
    """Lines about `module` that look like they protect the device but do not, as kmod reads them."""
    version = f"kmod {facts.kmod_version}" if facts.kmod_version else "kmod"
    found = []
    softdep = model.config.first(model.config.softdeps, module)
    if softdep and PCIBACK not in [normalize_module(m) for m in kmod_softdep(softdep.directive.kmod_rest).pre]:
        found.append(f"{softdep.at} loads no xen-pciback before {module}: {version}'s softdep parser needs `pre:` "
                     "as a word of its own, a real module name after it (no `.ko`), and not exactly two blanks "
                     "before `pre:` (the first word is then ' pre:')")
    install = model.config.first(model.config.installs, module)
    if install and not softdep:
        found.append(f"{install.at} runs its commands left to right through the shell: {module} is loaded before "
                     "xen-pciback, or xen-pciback not at all")
    for name, at in model.config.blacklist:
        if name != module and kmod_underscores(name.strip('"')) == module:
            found.append(f"`{name}` from {at} does not match {module}: kmod takes command-line blacklist entries as "
                         "written (quotes kept, no '-' to '_')")
    return found


def not_by_coldplug(facts: HostFacts, bdf: Bdf, model: KmodColdplug, module: str,
                    natives: tuple[str, ...]) -> str | None:
    """A native driver loaded outside coldplug: built in, or named in a modules list, where kmod's `modprobe
    NAME` ignores the blacklist but still applies softdep and install (so xen-pciback may still come first)."""
    if module in facts.builtin_modules:
        return f"{module} is built into kernel {facts.kernel}: no blacklist can stop it"
    lists = facts.module_load_lines + facts.initramfs_modules
    for i, line in enumerate(lists):
        if normalize_module(line.module) != module:
            continue
        earlier = [ln for ln in lists[:i] if ln.source == line.source  # systemd-modules-load fails on arguments
                   and (not ln.args or ln.source == "/etc/initramfs-tools/modules")]
        if pciback_seizes(facts, bdf) and any(load.module == PCIBACK for ln in earlier
                                              for load in model.load_by_name(ln.module).loads):
            continue  # the same list loads xen-pciback before it: pciback seizes the hidden device first
        first = first_binding(model.load_by_name(line.module), natives)
        if first is not None and first.module != PCIBACK:
            return (f"{module} is loaded by name at {where(line.source, line.lineno)}; a blacklist only stops "
                    "loading by alias, so remove that line")
    return None


def pciback_seizes(facts: HostFacts, bdf: Bdf) -> bool:
    """Whether the hide= xen-pciback gets at boot parses and names the device (or a bridge above it)."""
    chosen = decide(facts).value
    return chosen is not None and not chosen.value.error and chosen.value.covering_slot(facts.chain(bdf)) is not None


def busybox_prevention(facts: HostFacts, bdf: Bdf, module: str) -> tuple[bool, str]:
    """Whether busybox `modprobe -b MODALIAS` (mdev/hwdrivers coldplug) leaves `module` out, and why."""
    if module in facts.builtin_modules:
        return False, f"{module} is built into kernel {facts.kernel}: no blacklist can stop it"
    lines = facts.module_load_lines
    seizes = pciback_seizes(facts, bdf)
    explicit = [ln for i, ln in enumerate(lines) if module in facts.busybox_by_name(ln.module) and not (
        seizes and any(ln2.source == ln.source and facts.module_key(ln2.module) == PCIBACK for ln2 in lines[:i]))]
    if explicit:  # a line after one that loads xen-pciback finds the hidden device taken
        at = where(explicit[0].source, explicit[0].lineno)
        return False, (f"{module} is loaded by name at {at} (`modprobe {explicit[0].module}`: busybox modprobe "
                       "without -b ignores the blacklist for a module's own name), so remove that line")
    dev = facts.pci.get(bdf)
    if dev is None or not dev.modalias:
        hit = facts.directives("blacklist", module)
        if hit:
            return True, f"{module} is blacklisted at {where(hit[0].source, hit[0].lineno)}"
        return False, busybox_missing_reason(facts, None, module)
    probe = facts.busybox_probe(dev.modalias)
    if module in probe.blacklist:
        at = probe.blacklist[module]
        how = ("by `modprobe.blacklist=` on the kernel command line (busybox modprobe reads it from /proc/cmdline, "
               "'-' read as '_')") if at == "/proc/cmdline" else f"at {at}"
        return True, f"{module} is blacklisted {how} ({BUSYBOX_MODPROBE}: names compared without `.ko`, '-' as '_')"
    if probe.config_hits and not probe.reads_modules_alias and module not in probe.realnames:
        hits = "; ".join(f"`{h.directive.raw.strip()}` ({where(h.directive.source, h.directive.lineno)})"
                         for h in probe.config_hits if h.directive)
        return True, (f"{BUSYBOX_MODPROBE} resolves {dev.modalias} through {hits} to "
                      f"{', '.join(probe.realnames)}, found in modules.dep, so it never reads modules.alias: "
                      f"{module} is not loaded")
    return False, busybox_missing_reason(facts, probe, module)


def busybox_missing_reason(facts: HostFacts, probe: BusyboxProbe | None, module: str) -> str:
    reasons = [missing_reason(facts, module)]
    for path in facts.files_in("/etc/modprobe.d"):
        if path not in facts.busybox_config_paths and any(
                facts.module_key(d.module) == module for d in parse_busybox_conf(facts.raw.file(path) or "", path)
                if d.keyword == "blacklist"):
            reasons.append(f"{path} is not read: {BUSYBOX_MODPROBE} reads only /etc/modprobe.d/*.conf "
                           "not starting with '.'")
    if probe is not None and probe.unresolved_targets:
        reasons.append(f"config alias target(s) {', '.join(probe.unresolved_targets)} are not in modules.dep, so "
                       f"{BUSYBOX_MODPROBE} reads modules.alias too and loads {module}")
    return "; ".join(reasons)


def missing_reason(facts: HostFacts, module: str) -> str:
    reasons = [f"nothing stops {module} from claiming the device at boot"]
    for d in facts.directives("blacklist"):
        name = normalize_module(d.module)
        if name != module and module in facts.real_modules(name):
            reasons = [f"`{d.raw.strip()}` ({where(d.source, d.lineno)}) has no effect: {d.module} is only an alias "
                       f"of {module} on kernel {facts.kernel} (modules.alias: `alias {d.module} {module}`), and "
                       f"modprobe compares blacklist entries with real module names; blacklist {module} instead"]
    if facts.modprobe_impl != "kmod":
        for d in facts.directives("install", module) + facts.directives("softdep", module):
            reasons.append(f"`{d.raw.strip()}` ({where(d.source, d.lineno)}) is ignored: busybox modprobe "
                           "understands only alias, options, include and blacklist")
    return "; ".join(reasons)


def device_evidence(facts: HostFacts, bdf: Bdf) -> list[Evidence]:
    out = []
    dev = facts.pci.get(bdf)
    if dev is not None:
        out.append(Evidence(f"/sys/bus/pci/devices/{bdf}/modalias", dev.modalias or "(none)"))
    if bdf in facts.lspci:
        out.append(command_evidence(facts, "lspci -k", facts.lspci[bdf].raw))
    matching = [f"alias {a.pattern} {a.module}" for a in facts.aliases
                if dev and dev.modalias and a.module in [normalize_module(m) for m in facts.native_modules(bdf)]
                and a.pattern.startswith("pci:")]
    if matching:
        out.append(Evidence(f"/lib/modules/{facts.kernel}/modules.alias", "\n".join(matching[:8])))
    return out


def blacklist_evidence(facts: HostFacts, natives: tuple[str, ...]) -> list[Evidence]:
    names = set(natives)
    lines: dict[str, list[str]] = {}
    for d in facts.modprobe:
        mod = facts.module_key(d.module)
        if d.keyword in ("blacklist", "install", "softdep") and (mod in names or names & set(facts.real_modules(mod))):
            lines.setdefault(d.source, []).append(f"{d.lineno}: {d.raw.strip()}")
    out = [Evidence(source, "\n".join(text)) for source, text in lines.items()]
    symbolic = [f"alias {a.pattern} {a.module}" for a in facts.aliases
                if not a.pattern.startswith("pci:") and normalize_module(a.module) in names]
    if symbolic:
        out.append(Evidence(f"/lib/modules/{facts.kernel}/modules.alias", "\n".join(symbolic)))
    return out


RULE = Rule(
    id="native-driver-blacklisted",
    title="conflicting native driver blacklisted",
    severity="critical",
    step="5: blacklist the device's native driver so pciback can claim it first",
    requires=(),
    check=check,
    reads=("sysfs", "kernel-modules", "modprobe.d", "modules-load", "cmdline"),
    passes=(
        "the module that claims the device by its modalias (resolved through `modules.alias`, or lspci's "
        '"Kernel modules") is blacklisted by its **real** name, or (kmod only) replaced by `install`, or '
        'preceded by `softdep … pre: xen-pciback`; not built in; not loaded by name from `/etc/modules`. On kmod '
        "hosts, what udev's coldplug (`modprobe -b MODALIAS`) loads first is worked out as the host's kmod "
        "version does it: modprobe.d `alias` lines before modules.alias, glob `install`/`softdep` names, "
        "/dev/null masks, /usr/local/lib/modprobe.d, `.alias` files (kmod < 33), its softdep and command-line "
        "parsers (docs/tool-facts.md). On a "
        'busybox-modprobe host (Alpine) as busybox reads it: only `/etc/modprobe.d/*.conf`, `modprobe.blacklist=` '
        'on the command line, or a config `alias` of the modalias to a module in modules.dep.'
    ),
    why=(
        'udev/mdev coldplug loads the native driver by modalias; whichever module binds first owns the '
        'device, so pciback must win that race or the native driver must not load.'
    ),
    references=(
        'modprobe.d(5): blacklist, install, softdep',
        'kmod libkmod-config.c, libkmod-module.c (v30 to v34)',
        'busybox modutils/modprobe.c',
        'Linux Documentation/ABI/testing/sysfs-bus-pci (modalias)',
    ),
)
