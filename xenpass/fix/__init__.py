"""Fix plans: per device, the rules' planners in boot order, each seeing the edits planned before it."""

from __future__ import annotations

import copy
from collections.abc import Callable

from xenpass.engine import evaluate
from xenpass.facts.host import HostFacts
from xenpass.facts.raw import FileFact
from xenpass.fix import domu_config, driver_pciback, hide_entry, initramfs_current, native_driver_blacklisted
from xenpass.fix.base import Command, FileEdit, Part, Plan, Step
from xenpass.fix.boot_safety import storage_refusal
from xenpass.parse.bdf import Bdf
from xenpass.parse.modprobe import normalize_module
from xenpass.rules.base import Context, Status
from xenpass.rules.boot_outcome import predict

Planner = Callable[[HostFacts, Bdf, Context], Part]
PLANNERS: dict[str, Planner] = {
    "hide-entry": hide_entry.plan,
    "native-driver-blacklisted": native_driver_blacklisted.plan,
    "domu-config": domu_config.plan,
    "initramfs-current": initramfs_current.plan,
    "driver-pciback": driver_pciback.plan_for("driver-pciback"),
    "assignable": driver_pciback.plan_for("assignable"),
}


def plan_device(facts: HostFacts, bdf: Bdf, ctx: Context, only: set[str] | None = None) -> Plan:
    """Every step that makes `bdf` compliant; empty when it already is (idempotent by construction)."""
    steps: list[Step] = []
    refusals, notes, rules = [], [], []
    reboot = False
    current = facts
    if facts.not_dom0_reason or facts.absent_reason(bdf):  # nothing on this host is that device's to change
        return Plan(facts.name, bdf)
    failing = [r for r, v in evaluate(facts, bdf, ctx).items() if v.status is Status.FAIL and r in PLANNERS
               and (only is None or r in only)]
    refused = [r for r in (storage_refusal(facts, bdf, rule) for rule in failing) if r is not None]
    if refused:  # boot safety first: nothing at all is planned for a device dom0's storage needs
        return Plan(facts.name, bdf, refusals=tuple(refused), rules=tuple(failing))
    for rule, planner in PLANNERS.items():
        if only is not None and rule not in only:
            continue
        # Only a failure is planned for: not an error (facts unknown), not blocked (its prerequisite is planned
        # first, and the facts as they would be after that plan are judged again here).
        if evaluate(current, bdf, ctx)[rule].status is not Status.FAIL:
            continue
        part = planner(current, bdf, ctx)
        steps += part.steps
        refusals += part.refusals
        notes += part.notes
        reboot = reboot or part.reboot_required
        rules.append(rule)
        current = simulate(current, part.steps)
    next_boot = predict(current, bdf) if reboot and steps else None  # what the reboot the plan asks for brings
    return Plan(facts.name, bdf, tuple(steps), tuple(refusals), reboot and bool(steps), tuple(notes), tuple(rules),
                next_boot)


def simulate(facts: HostFacts, steps: list[Step]) -> HostFacts:
    """The facts as they would be after `steps`: later planners build on earlier ones."""
    if not steps:
        return facts
    raw = copy.deepcopy(facts.raw)
    now = 1 + max([f.mtime or 0 for f in raw.files.values()] + [f.mtime or 0 for f in raw.boot.values()])
    for step in steps:
        if isinstance(step, FileEdit):
            old = raw.files.get(step.path)
            raw.files[step.path] = FileFact(step.path, step.after, now, len(step.after.encode()),
                                            old.mode if old else "644", 0, 0)
        elif isinstance(step, Command):
            simulate_command(facts, raw, step, now + 1)
    return HostFacts(raw)


def simulate_command(facts: HostFacts, raw, step: Command, now: int) -> None:
    if step.argv[:2] == ("xl", "pci-assignable-add"):
        bdf = step.argv[2]
        if bdf in raw.pci:
            raw.pci[bdf].driver = "pciback"
        raw.flags["pciback_driver"] = ["present"]
        listing = raw.commands.get("xl pci-assignable-list")
        if listing is not None:
            listing.output = (listing.output or "") + f"{bdf} \n"
    elif step.argv[0] in ("mkinitfs", "update-initramfs", "dracut") and facts.boot_image:
        image = facts.boot_image
        after = HostFacts(raw)
        copied = {f.path.lstrip("/"): f.text for f in after.modprobe_files}
        old = raw.initramfs.get(image.path) or {}
        listed = raw.files.get("/etc/initramfs-tools/modules")
        if facts.distro == "debian" and listed is not None and listed.content is not None:
            copied["conf/modules"] = listed.content  # mkinitramfs: what it loads by name, in this order
        raw.initramfs[image.path] = {"segments": ["gzip"], "member_count": len(copied), "config_files": copied,
                                     "error": None}
        if "modules" in old:  # the same hooks bring the same modules back, and the listed ones come too
            names = {f"{normalize_module(ln.module)}.ko" for ln in after.initramfs_modules}
            raw.initramfs[image.path]["modules"] = sorted(set(old["modules"]) | names)
        stat = raw.boot.get(image.path) or FileFact(image.path)
        stat.mtime = now
        raw.boot[image.path] = stat
