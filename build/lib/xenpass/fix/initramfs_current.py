"""Fix initramfs-current: rebuild the running kernel's initramfs with the distro's tool, old one kept."""

from __future__ import annotations

from xenpass.facts.host import HostFacts
from xenpass.fix.base import Command, Part
from xenpass.parse.bdf import Bdf
from xenpass.rules.base import Context

RULE = "initramfs-current"


def rebuild_command(facts: HostFacts) -> tuple[str, ...] | None:
    release = facts.kernel or ""
    return {
        "alpine": ("mkinitfs", "-o", f"/boot/initramfs-{facts.flavor}", release),
        "debian": ("update-initramfs", "-u", "-k", release),
        "dracut": ("dracut", "-f", "--kver", release),
    }.get(facts.distro)


def plan(facts: HostFacts, bdf: Bdf, ctx: Context) -> Part:
    part = Part()
    argv = rebuild_command(facts)
    if argv is None:
        part.notes.append(f"unknown initramfs tool for {facts.distro_name}: rebuild the initramfs by hand")
        return part
    image = facts.boot_image
    part.steps.append(Command(RULE, argv, f"the image must carry the current modprobe.d for kernel {facts.kernel}",
                              backup=image.path if image else None))
    part.reboot_required = True
    return part
