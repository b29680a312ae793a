"""Scenarios on the second real dom0: Debian 13 (trixie) + Xen 4.20 + dracut (QEMU/TCG, lab/lab --distro trixie).
Each from pristine, set up over SSH, rebooted where the truth depends on boot order, judged by the product."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.trixie]

OPTIONS = "echo 'options xen-pciback hide=(0000:00:05.0)' > /etc/modprobe.d/xen-pciback.conf"
LOAD = "echo xen-pciback >> /etc/modules"
BLACKLIST = "echo 'blacklist mptsas' > /etc/modprobe.d/xen-passthrough.conf"


def statuses(verdicts: dict[str, dict]) -> dict[str, str]:
    return {rule: v["status"] for rule, v in verdicts.items()}


def image_listing(lab) -> str:
    return lab.sh("lsinitrd /boot/initrd.img-$(uname -r)")


def test_pristine_dracut_dom0_native_driver_bound(pristine_trixie):
    _, data = pristine_trixie.check("--device", "00:05.0")
    device = data["hosts"][0]["devices"][0]
    v = {r["id"]: r for r in device["rules"]}
    assert statuses(v) == {
        "hide-entry": "fail", "native-driver-blacklisted": "fail", "initramfs-current": "blocked",
        "driver-pciback": "fail", "assignable": "blocked", "domu-config": "skip", "xen-iommu": "pass"}
    assert "bound to mptsas" in v["driver-pciback"]["reason"]
    commands = [s["argv"] for s in device["plan"]["steps"] if s["kind"] == "command"]
    release = pristine_trixie.sh("uname -r").strip()
    assert ["dracut", "-f", "--kver", release] in commands, commands  # Debian, but dracut builds its initramfs
    assert not any(argv[0] == "update-initramfs" for argv in commands), commands
    assert "Kernel driver in use: mptsas" in pristine_trixie.sh("lspci -k -s 00:05.0")
    assert "mptsas.ko" in image_listing(pristine_trixie)  # add_drivers: in the image, loaded there by udev


def test_blacklist_without_dracut_rebuild_native_driver_still_wins(pristine_trixie):
    pristine_trixie.sh(f"{OPTIONS}; {LOAD}; {BLACKLIST}")
    pristine_trixie.reboot()
    v = pristine_trixie.verdicts()
    assert v["initramfs-current"]["status"] == "fail"
    assert "lacks `blacklist mptsas`" in v["initramfs-current"]["reason"]
    assert v["driver-pciback"]["status"] == "fail"  # mptsas, loaded by udev inside the old image, won the device
    assert "Kernel driver in use: mptsas" in pristine_trixie.sh("lspci -k -s 00:05.0")
