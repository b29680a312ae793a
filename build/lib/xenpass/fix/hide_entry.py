"""Fix hide-entry: one effective hide= naming the device, where this distro reads it."""

from __future__ import annotations

from xenpass.facts.host import HostFacts
from xenpass.fix.base import Command, FileEdit, Part, append_line, replace_lines
from xenpass.parse.bdf import Bdf
from xenpass.parse.hide import HideSlot, format_hide, parse_hide, slot_for
from xenpass.rules.base import Context
from xenpass.rules.hide_sources import hide_sources, is_pciback

RULE = "hide-entry"
OPTIONS_FILE = "/etc/modprobe.d/xen-pciback.conf"


def wanted_slots(facts: HostFacts, bdf: Bdf) -> list[HideSlot]:
    """Every valid slot the host already names anywhere, plus the device: merge, never duplicate."""
    sources = hide_sources(facts)
    slots = [slot for source in sources for slot in source.value.slots]
    slots += [slot for source in sources for word in source.stray for slot in parse_hide(word).slots]  # split off
    if not any(s.matches(bdf) for s in slots):
        slots.append(slot_for(bdf))
    return list(dict.fromkeys(slots))


def plan(facts: HostFacts, bdf: Bdf, ctx: Context) -> Part:
    value = format_hide(wanted_slots(facts, bdf))
    if facts.init_system == "openrc":
        return plan_openrc(facts, value)
    return plan_modprobe(facts, value)


def plan_openrc(facts: HostFacts, value: str) -> Part:
    """Alpine: the first xen_pciback line in /etc/modules carries hide=; later ones are dropped."""
    part = Part()
    text = facts.raw.file("/etc/modules")
    lines = [ln for ln in facts.module_load_lines if ln.source == "/etc/modules" and is_pciback(ln.module)]
    entry = f"xen_pciback hide={value}"
    if lines:
        changes: dict[int, str | None] = {lines[0].lineno: entry}
        changes.update({ln.lineno: None for ln in lines[1:]})
        after = replace_lines(text or "", changes)
        why = "one xen_pciback line, first, with every slot: a later line would be a no-op"
        if any(source.value.error for source in hide_sources(facts)):
            why = "the old hide= does not parse, so xen_pciback would not load at all: rewritten from its valid slots"
    else:
        after = append_line(text, entry)
        why = "Alpine's modules service loads xen_pciback with the arguments on its /etc/modules line"
    if after != text:
        part.steps.append(FileEdit(RULE, "/etc/modules", text, after, why))
    if facts.runlevel_services and "modules" not in facts.runlevel_services:
        part.steps.append(Command(RULE, ("rc-update", "add", "modules", "boot"), "/etc/modules is read by the "
                                  "OpenRC modules service, which is in no runlevel"))
    part.reboot_required = True
    return part


def plan_modprobe(facts: HostFacts, value: str) -> Part:
    """systemd hosts: options in modprobe.d, the bare module name in /etc/modules (and the initramfs list)."""
    part = Part()
    options = [d for d in facts.directives("options", "xen_pciback") if "hide=" in d.args]
    if options:
        last = options[-1]  # the kernel applies the last hide=: edit that one
        text = facts.raw.file(last.source) or ""
        args = " ".join(a if not a.startswith("hide=") else f"hide={value}" for a in last.args.split()
                        if not (a.startswith("(") and a.endswith(")")))
        after = replace_lines(text, {last.lineno: f"options {last.module} {args}"})
        path = last.source
    else:
        text = facts.raw.file(OPTIONS_FILE)
        after = append_line(text, f"options xen-pciback hide={value}")
        path = OPTIONS_FILE
    if after != text:
        part.steps.append(FileEdit(RULE, path, text, after, "modprobe passes these options when xen-pciback loads"))
    part.steps += modules_file_edits(facts)
    part.reboot_required = True
    return part


def modules_file_edits(facts: HostFacts) -> list[FileEdit]:
    """A bare `xen-pciback` line loads the module at boot; lines with arguments fail under systemd."""
    edits = []
    text = facts.raw.file("/etc/modules")
    ours = [ln for ln in facts.module_load_lines if ln.source == "/etc/modules" and is_pciback(ln.module)]
    with_args = {ln.lineno: "xen-pciback" for ln in ours if ln.args}
    if with_args:
        edits.append(FileEdit(RULE, "/etc/modules", text, replace_lines(text or "", with_args),
                              "systemd-modules-load takes module names only; parameters live in modprobe.d"))
    elif not any(is_pciback(ln.module) for ln in facts.module_load_lines):
        edits.append(FileEdit(RULE, "/etc/modules", text, append_line(text, "xen-pciback"),
                              "nothing else loads xen-pciback at boot (it is never autoloaded)"))
    initramfs_list = facts.raw.file("/etc/initramfs-tools/modules")
    if facts.distro == "debian" and not any(is_pciback(ln.module) for ln in facts.initramfs_modules):
        edits.append(FileEdit(RULE, "/etc/initramfs-tools/modules", initramfs_list,
                              first_module_line(initramfs_list, facts.initramfs_modules, "xen-pciback"),
                              "load xen-pciback inside the initramfs first, before any driver it must beat"))
    return edits


def first_module_line(text: str | None, lines: list, module: str) -> str:
    """`module` as the first module the file loads (after its leading comments); other lines stay as they are."""
    if not lines or text is None:
        return append_line(text, module)
    first = min(ln.lineno for ln in lines)
    head = text.splitlines(keepends=True)
    return "".join(head[: first - 1]) + module + "\n" + "".join(head[first - 1 :])
