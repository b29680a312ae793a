"""Fix native-driver-blacklisted: blacklist the real module, unless another device still needs it."""

from __future__ import annotations

from xenpass.facts.host import HostFacts
from xenpass.fix.base import FileEdit, Part, Refusal, append_line, replace_lines
from xenpass.parse.bdf import Bdf
from xenpass.parse.modprobe import normalize_module
from xenpass.rules.base import Context
from xenpass.rules.native_driver_blacklisted import guarded

RULE = "native-driver-blacklisted"
CONF = "/etc/modprobe.d/xen-passthrough.conf"


def plan(facts: HostFacts, bdf: Bdf, ctx: Context) -> Part:
    part = Part()
    conf = facts.raw.file(CONF)
    new_conf = conf
    for module in facts.native_modules(bdf):
        if guarded(facts, bdf, module):
            continue
        if module in facts.builtin_modules:
            part.refusals.append(Refusal(RULE, f"{module} is built into the kernel; no modprobe setting stops it",
                                         "hide the device on the kernel command line with a kernel that has "
                                         "xen-pciback built in, or use a kernel with the driver as a module"))
            continue
        users = other_users(facts, bdf, module)
        if users:  # never take the module away (nor out of the initramfs): order xen-pciback ahead of it
            refusal, line = safer_alternative(facts, module, users)
            part.refusals.append(refusal)
            if line:
                new_conf = append_line(new_conf, line)
            continue
        part.steps += unload_by_name_edits(facts, module)
        new_conf = append_line(new_conf, f"blacklist {module}")
    if new_conf != conf:
        part.steps.append(FileEdit(RULE, CONF, conf, new_conf, why(facts, bdf)))
    part.reboot_required = bool(part.steps)
    return part


def why(facts: HostFacts, bdf: Bdf) -> str:
    text = f"keep {', '.join(facts.native_modules(bdf))} from claiming {bdf} before pciback does"
    aliases = [d.module for d in facts.directives("blacklist")
               if normalize_module(d.module) not in facts.native_modules(bdf)
               and set(facts.real_modules(d.module)) & set(facts.native_modules(bdf))]
    if aliases:
        real = ", ".join(facts.native_modules(bdf))
        text += (f"; `blacklist {aliases[0]}` names an alias, and modprobe matches blacklists against real "
                 f"module names ({aliases[0]} -> {real})")
    return text


def other_users(facts: HostFacts, bdf: Bdf, module: str) -> list[Bdf]:
    """Other present devices bound to `module` now: blacklisting it would take their driver away."""
    users = []
    for other, dev in facts.pci.items():
        if other == bdf or dev.driver in (None, "pciback"):
            continue
        if module in facts.native_modules(other):  # bound, and this module is what claims it
            users.append(other)
    return users


def safer_alternative(facts: HostFacts, module: str, users: list[Bdf]) -> tuple[Refusal, str | None]:
    names = ", ".join(map(str, users))
    reason = f"not blacklisting {module}: {names} also use it, and would lose their driver at the next boot"
    if facts.modprobe_impl == "kmod":
        line = f"softdep {module} pre: xen-pciback"
        return Refusal(RULE, reason, f"`{line}` in {CONF}: xen-pciback loads first and seizes only the hidden "
                                     f"device; {names} keep {module}"), line
    return Refusal(RULE, reason, "busybox modprobe has no softdep: load xen-pciback from the initramfs before "
                                 f"{module} (add it to the initramfs and its hide= to the kernel command line)"), None


def unload_by_name_edits(facts: HostFacts, module: str) -> list[FileEdit]:
    """Lines that load the native module by name defeat any blacklist: comment them out."""
    edits = []
    by_file: dict[str, dict[int, str | None]] = {}
    for line in facts.module_load_lines + facts.initramfs_modules:
        loads = facts.busybox_by_name(line.module) if facts.modprobe_impl == "busybox" else [
            normalize_module(line.module)]
        if module in loads:
            by_file.setdefault(line.source, {})[line.lineno] = f"# {line.raw}  # disabled by xenpass: passthrough"
    for path, changes in by_file.items():
        text = facts.raw.file(path) or ""
        edits.append(FileEdit(RULE, path, text, replace_lines(text, changes),
                              f"loading {module} by name ignores the blacklist"))
    return edits
