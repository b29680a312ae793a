"""hide-entry — seed step 2: `xen_pciback hide=(01:00.0)` that will really take effect at boot."""

from __future__ import annotations

from xenpass.facts.host import HostFacts, xen_pci_devices
from xenpass.parse.bdf import Bdf
from xenpass.parse.hide import parse_hide
from xenpass.rules.base import Context, Evidence, Rule, Status, Verdict, file_evidence
from xenpass.rules.hide_sources import HideSource, decide, hide_sources


def source_evidence(sources: list[HideSource]) -> list[Evidence]:
    return [Evidence(s.where, s.raw.rstrip("\n")) for s in sources]


def check(facts: HostFacts, bdf: Bdf, ctx: Context) -> Verdict:
    decision = decide(facts)
    evidence = source_evidence(hide_sources(facts))
    live = facts.raw.file("/sys/module/xen_pciback/parameters/hide")
    if live is not None:
        evidence.append(Evidence("/sys/module/xen_pciback/parameters/hide (live)", live.strip() or "(empty)"))
    chosen = decision.value
    problems = list(decision.problems)
    if decision.fatal:
        problems = decision.fatal + problems
    elif chosen is not None and decision.loader is not None:
        if chosen.value.error:
            problems.insert(0, f"{chosen.where}: `hide={chosen.value.raw}` does not parse, and the kernel then "
                               f"refuses to load xen-pciback at all: {chosen.value.error}")
        else:
            slot = chosen.value.covering_slot(facts.chain(bdf))
            split = [w for w in chosen.stray if parse_hide(w).covering_slot(facts.chain(bdf))]
            if slot is not None:
                via = "" if slot.matches(bdf) else f" (through its upstream bridge {slot})"
                return RULE.verdict(Status.PASS, f"hidden by hide={chosen.value.raw} at {chosen.where}{via}, "
                                                  f"loaded at boot by {decision.loader}", *evidence)
            if split:
                problems.insert(0, f"{chosen.where}: a space inside the hide= value splits off {' '.join(split)}; "
                                   "the kernel ignores it as an unknown parameter, so the device is not hidden")
            else:
                problems.insert(0, f"hide={chosen.value.raw} at {chosen.where} does not name {bdf}")
    elif chosen is None and decision.loader is not None:
        problems.insert(0, f"xen-pciback is loaded at boot by {decision.loader}, but no hide= it will read names {bdf}")
    via_service = xen_pci_route(facts, bdf)
    if via_service is not None:
        return RULE.verdict(Status.PASS, via_service, *evidence, file_evidence(facts, "/etc/conf.d/xen-pci"))
    reason = "; ".join(dict.fromkeys(problems)) or f"no xen-pciback hide= entry names {bdf}"
    if not evidence:  # nothing mentions hide= at all: show where it was looked for
        evidence = [file_evidence(facts, "/etc/modules")]
        evidence += [Evidence(f.path, f"{len(f.text.splitlines())} lines, no `options xen-pciback`")
                     for f in facts.modprobe_files]
    return RULE.verdict(Status.FAIL, reason, *evidence)


def xen_pci_route(facts: HostFacts, bdf: Bdf) -> str | None:
    """Alpine's xen-pci service (`xl pci-assignable-add` at boot) reaches the same end state."""
    if bdf not in xen_pci_devices(facts):
        return None
    level = facts.runlevel_services.get("xen-pci")
    if level is None:
        return None
    return f"assigned to pciback at boot by the xen-pci service (runlevel {level}, /etc/conf.d/xen-pci DEVICES)"


RULE = Rule(
    id="hide-entry",
    title="hide entry present and effective",
    severity="critical",
    step="2: hide the device from dom0 with xen_pciback hide=(BDF)",
    requires=(),
    check=check,
    reads=("modules-load", "modprobe.d", "cmdline", "xen-pci", "kernel-modules", "sysfs"),
    passes=(
        "a `hide=` naming the device (or an upstream bridge) will reach xen-pciback at boot: Alpine's "
        '`/etc/modules` line (the first line loading the module wins; a plain `xen_pciback` line before the '
        '`hide=` line makes it a no-op), modprobe.d `options xen[-_]pciback hide=`, the kernel command line '
        '(built-in pciback, or kmod); the grammar exactly as `pci_stub.c` parses it (a parse error stops the '
        'module loading at all); no space inside the value; on systemd hosts `/etc/modules` takes no '
        "arguments. Alpine's `xen-pci` service listing the device also passes."
    ),
    why=(
        'xen-pciback seizes at load time only the devices its `hide=` parameter names; a hide entry that '
        'never reaches the module leaves the device to its native driver after every reboot.'
    ),
    references=(
        'Linux drivers/xen/xen-pciback/pci_stub.c (pcistub_init: the hide= grammar)',
        'modprobe.d(5): options',
        'modules-load.d(5)',
        'Alpine wiki: Xen PCI Passthrough (the seed)',
    ),
)
