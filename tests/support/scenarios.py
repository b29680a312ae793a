"""The scenarios behind fixtures/: fake hosts modelled on the seed's node03 and on the Debian lab.

Each scenario is a function returning a FakeHost; `make_fixtures.py` runs the real collector
against it and saves the snapshot as fixtures/<name>.json.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from tests.support.fakehost import FakeDevice, FakeHost

DAY = 86400
T0 = 1_760_000_000  # the hosts were installed then; later edits are T0 + n days
ALPINE_RELEASE = "6.6.31-0-lts"
DEBIAN_RELEASE = "6.1.0-40-amd64"

ALPINE_OS = ('NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\n'
             'PRETTY_NAME="Alpine Linux v3.20"\nHOME_URL="https://alpinelinux.org/"\n')
DEBIAN_OS = ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n'
             'VERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n')

# Alpine's stock /etc/modprobe.d/blacklist.conf starts like this; the seed appended `blacklist mpt2sas`.
ALPINE_BLACKLIST = """# blacklist these modules
blacklist evbug
blacklist usbmouse
blacklist usbkbd
blacklist eepro100
blacklist de4x5
blacklist eth1394
"""

XL_INFO = """host                   : {host}
release                : {release}
machine                : x86_64
nr_cpus                : 8
xen_major              : 4
xen_minor              : 17
xen_extra              : .5
xen_version            : 4.17.5
xen_caps               : xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64
virt_caps              : {caps}
xen_commandline        : dom0_mem=2048M,max:2048M {iommu}
cc_compiler            : gcc (Alpine 13.2.1_git20240309) 13.2.1 20240309
xend_config_format     : 4
"""

NODE03_ALIASES = """alias pci:v00001000d00000072sv*sd*bc*sc*i* mpt3sas
alias pci:v00001000d00000097sv*sd*bc*sc*i* mpt3sas
alias mpt2sas mpt3sas
alias pci:v00008086d00001502sv*sd*bc*sc*i* e1000e
alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e
alias pci:v*d*sv*sd*bc0Csc03i20* ehci_pci
alias pci:v*d*sv*sd*bc01sc06i01* ahci
alias pci:v00008086d00001C22sv*sd*bc*sc*i* i2c_i801
alias pci:v00008086d00001C54sv*sd*bc*sc*i* lpc_ich
alias pci:v0000102Bd00000532sv*sd*bc*sc*i* mgag200
"""
BUILTIN = "kernel/drivers/pci/pcie/portdrv.ko\nkernel/drivers/xen/xen-pciback/xen-pciback.ko\n"


def node03_devices(sas_driver: str | None) -> list[FakeDevice]:
    """The seed's node03 listing (Alpine wiki), with the SAS2008 behind root port 00:1c.0."""
    bridge = "Intel Corporation 6 Series/C200 Series Chipset Family PCI Express Root Port"

    def intel(bdf: str, dev: str, cls: str, desc: str, driver: str | None, mods: tuple[str, ...] = ()) -> FakeDevice:
        return FakeDevice(bdf, "8086", dev, cls, desc, ("8086", "0000"), driver=driver, modules=mods)

    return [
        intel("0000:00:00.0", "0108", "060000", "Host bridge: Intel Corporation Xeon E3-1200 Processor Family "
              "DRAM Controller (rev 09)", None),
        intel("0000:00:19.0", "1502", "020000", "Ethernet controller: Intel Corporation 82579LM Gigabit Network "
              "Connection (rev 05)", "e1000e", ("e1000e",)),
        intel("0000:00:1a.0", "1c2d", "0c0320", "USB controller: Intel Corporation 6 Series/C200 Series Chipset "
              "Family USB Enhanced Host Controller #2 (rev 05)", "ehci-pci", ("ehci_pci",)),
        intel("0000:00:1c.0", "1c10", "060400", f"PCI bridge: {bridge} 1 (rev b5)", "pcieport"),
        intel("0000:00:1c.4", "1c18", "060400", f"PCI bridge: {bridge} 5 (rev b5)", "pcieport"),
        intel("0000:00:1d.0", "1c26", "0c0320", "USB controller: Intel Corporation 6 Series/C200 Series Chipset "
              "Family USB Enhanced Host Controller #1 (rev 05)", "ehci-pci", ("ehci_pci",)),
        intel("0000:00:1e.0", "244e", "060401", "PCI bridge: Intel Corporation 82801 PCI Bridge (rev a5)", None),
        intel("0000:00:1f.0", "1c54", "060100", "ISA bridge: Intel Corporation C204 Chipset Family LPC "
              "Controller (rev 05)", "lpc_ich", ("lpc_ich",)),
        intel("0000:00:1f.2", "1c02", "010601", "SATA controller: Intel Corporation 6 Series/C200 Series Chipset "
              "Family SATA AHCI Controller (rev 05)", "ahci", ("ahci",)),
        intel("0000:00:1f.3", "1c22", "0c0500", "SMBus: Intel Corporation 6 Series/C200 Series Chipset Family "
              "SMBus Controller (rev 05)", "i801_smbus", ("i2c_i801",)),
        FakeDevice("0000:01:00.0", "1000", "0072", "010700", "Serial Attached SCSI controller: LSI Logic / Symbios "
                   "Logic SAS2008 PCI-Express Fusion-MPT SAS-2 [Falcon] (rev 03)", ("1000", "3020"),
                   "LSI Logic / Symbios Logic Device 3020", sas_driver, "0000:00:1c.0", ("mpt3sas",)),
        FakeDevice("0000:02:00.0", "8086", "10d3", "020000", "Ethernet controller: Intel Corporation 82574L Gigabit "
                   "Network Connection", ("8086", "0000"), None, "e1000e", "0000:00:1c.4", ("e1000e",)),
        FakeDevice("0000:03:03.0", "102b", "0532", "030000", "VGA compatible controller: Matrox Electronics Systems "
                   "Ltd. MGA G200eW WPCM450 (rev 0a)", ("102b", "0000"), None, "mgag200", "0000:00:1e.0",
                   ("mgag200",)),
    ]


def alpine_host(name: str, *, blacklist: str, sas_driver: str, image_blacklist: str, image_day: int,
                blacklist_day: int, modules: str = "af_packet\nipv6\nxen_pciback hide=(01:00.0)\n",
                hide_live: str = "(01:00.0)", pciback: str | None = "module", dmesg: str = "") -> FakeHost:
    blacklist_text = ALPINE_BLACKLIST + blacklist
    files = {
        "/etc/os-release": ALPINE_OS,
        "/etc/modules": modules,
        "/etc/modprobe.d/blacklist.conf": blacklist_text,
        "/etc/modprobe.d/aliases.conf": "alias net-pf-10 ipv6\n",
        "/etc/mkinitfs/mkinitfs.conf": 'features="ata base ide scsi usb virtio ext4"\n',
        "/etc/xen/nas.cfg": "name = 'nas'\ntype = 'pv'\nmemory = 1024\nkernel = '/boot/nas/vmlinuz'\n"
                            "pci = [ '01:00.0' ]\n",
    }
    loaded = ["xen_pciback", "e1000e", "ahci"] if pciback else ["e1000e", "ahci"]
    if sas_driver == "mpt3sas":
        loaded.append("mpt3sas")
    return FakeHost(
        name=name, distro="alpine", release=ALPINE_RELEASE, devices=node03_devices(sas_driver),
        files=files,
        mtimes={"/etc/modules": T0 + DAY, "/etc/modprobe.d/blacklist.conf": T0 + blacklist_day * DAY,
                "/etc/modprobe.d/aliases.conf": T0, "/etc/os-release": T0},
        cmdline="BOOT_IMAGE=vmlinuz-lts modules=sd-mod,usb-storage,ext4 root=UUID=4f1a quiet",
        loaded_modules=tuple(loaded), pciback=pciback, hide_live=hide_live if pciback else "",
        modules_alias=NODE03_ALIASES, modules_builtin="kernel/drivers/pci/pcie/portdrv.ko\n",
        xl_info=XL_INFO.format(host=name, release=ALPINE_RELEASE, caps="pv hvm hvm_directio pv_directio hap shadow",
                               iommu="iommu=1"),
        initramfs={"/boot/initramfs-lts": ({
            "etc/modprobe.d/blacklist.conf": ALPINE_BLACKLIST + image_blacklist,
            "etc/modprobe.d/aliases.conf": "alias net-pf-10 ipv6\n",
            # mkinitfs's scsi feature brings drivers/scsi/*: the image holds mpt3sas, not xen-pciback
            f"lib/modules/{ALPINE_RELEASE}/kernel/drivers/scsi/mpt3sas/mpt3sas.ko.gz": "",
            "init": "#!/bin/sh\n"}, T0 + image_day * DAY)},
        runlevels={"modules": "boot", "hwdrivers": "sysinit", "mdev": "sysinit", "xenstored": "default"},
        dmesg=dmesg, mounts="/dev/sda1 / ext4 rw,relatime 0 0\n/dev/sda3 /var ext4 rw,relatime 0 0\n",
        disks={"sda": "0000:00:1f.2"},  # the root disk hangs off the AHCI controller, not the SAS card
    )


def node03_broken_mpt2sas_alias() -> FakeHost:
    """The seed as written: `blacklist mpt2sas`, which a >=4.4 kernel ignores; mpt3sas wins the device."""
    return alpine_host("node03-broken-mpt2sas-alias", blacklist="blacklist mpt2sas\n", sas_driver="mpt3sas",
                       image_blacklist="blacklist mpt2sas\n", image_day=3, blacklist_day=2)


def node03_fixed() -> FakeHost:
    host = alpine_host("node03-fixed", blacklist="blacklist mpt2sas\nblacklist mpt3sas\n", sas_driver="pciback",
                       image_blacklist="blacklist mpt2sas\nblacklist mpt3sas\n", image_day=5, blacklist_day=4,
                       dmesg="[    4.812] pciback 0000:01:00.0: seizing device\n")
    return host


def node03_stale_initramfs() -> FakeHost:
    """mpt3sas blacklisted after the last mkinitfs: the old image still lets mpt3sas load."""
    return alpine_host("node03-stale-initramfs", blacklist="blacklist mpt3sas\n", sas_driver="mpt3sas",
                       image_blacklist="", image_day=3, blacklist_day=6)


def node03_initramfs_lacks_blacklist() -> FakeHost:
    """The image is newer than the blacklist by mtime (restored with cp -p), but lacks its line."""
    return alpine_host("node03-initramfs-lacks-blacklist", blacklist="blacklist mpt3sas\n", sas_driver="mpt3sas",
                       image_blacklist="blacklist mpt2sas\n", image_day=8, blacklist_day=6)


def node03_hide_typo() -> FakeHost:
    """`hide=(0000:82.0.0)`: the kernel rejects it and xen-pciback does not load at all."""
    return alpine_host("node03-hide-typo", blacklist="blacklist mpt3sas\n", sas_driver=None,
                       modules="xen_pciback hide=(0000:82.0.0)\n", image_blacklist="blacklist mpt3sas\n",
                       image_day=5, blacklist_day=4, pciback=None,
                       dmesg='[    3.101] xen_pciback: Error parsing pci_devs_to_hide at "(0000:82.0.0)"\n')


def node03_plain_line_first() -> FakeHost:
    """setup-xen-dom0's plain `xen_pciback` line comes first: the hide= line after it is a no-op."""
    return alpine_host("node03-plain-line-first", blacklist="blacklist mpt3sas\n", sas_driver=None,
                       modules="xen_pciback\nxen_pciback hide=(01:00.0)\n", image_blacklist="blacklist mpt3sas\n",
                       image_day=5, blacklist_day=4, hide_live="")


def node03_attached_to_domu() -> FakeHost:
    """Fixed node03 with the domU `nas` running: the device left pci-assignable-list for xl pci-list."""
    host = node03_fixed()
    return replace(host, name="node03-attached-to-domu", xl_domains={"nas": (3, ("0000:01:00.0",))})


def alpine_busybox_lspci() -> FakeHost:
    """Alpine without pciutils: busybox lspci, `0000:01:00.0 Class 0107: 1000:0072 pciback`."""
    host = node03_fixed()
    return replace(host, name="alpine-busybox-lspci", lspci_format="busybox")


LAB_ALIASES = """alias pci:v00001000d00000054sv*sd*bc*sc*i* mptsas
alias pci:v00001000d00000058sv*sd*bc*sc*i* mptsas
alias pci:v00001000d00000411sv*sd*bc*sc*i* megaraid_sas
alias pci:v00001000d00000079sv*sd*bc*sc*i* megaraid_sas
alias pci:v00001AF4d00001001sv*sd*bc*sc*i* virtio_pci
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias pci:v00008086d000029C0sv*sd*bc*sc*i* lpc_ich
"""


def debian_devices(mptsas_driver: str | None) -> list[FakeDevice]:
    return [
        FakeDevice("0000:00:00.0", "8086", "29c0", "060000", "Host bridge: Intel Corporation 82G33/G31/P35/P31 "
                   "Express DRAM Controller", ("1af4", "1100")),
        FakeDevice("0000:00:02.0", "1af4", "1001", "010000", "SCSI storage controller: Red Hat, Inc. Virtio block "
                   "device", ("1af4", "0002"), "Red Hat, Inc. Device 0002", "virtio-pci", None, ("virtio_pci",)),
        FakeDevice("0000:00:05.0", "1000", "0054", "010000", "SCSI storage controller: Broadcom / LSI SAS1068 "
                   "PCI-X Fusion-MPT SAS", ("0000", "0000"), None, mptsas_driver, None, ("mptsas",)),
        FakeDevice("0000:00:06.0", "1000", "0411", "010400", "RAID bus controller: Broadcom / LSI MegaRAID SAS 1078",
                   ("1000", "1013"), "Broadcom / LSI Device 1013", "megaraid_sas", None, ("megaraid_sas",)),
    ]


def debian_host(name: str, *, modules: str, modprobe: dict[str, str], image_files: dict[str, str],
                image_day: int, mptsas_driver: str | None, assignable: bool = True) -> FakeHost:
    files = {"/etc/os-release": DEBIAN_OS, "/etc/modules": modules,
             "/etc/initramfs-tools/initramfs.conf": "MODULES=list\nCOMPRESS=zstd\n",
             "/etc/initramfs-tools/modules": "virtio_pci\nvirtio_blk\next4\n", **modprobe}
    return FakeHost(
        name=name, distro="debian", release=DEBIAN_RELEASE, devices=debian_devices(mptsas_driver), files=files,
        mtimes={p: T0 + 2 * DAY for p in modprobe} | {"/etc/modules": T0 + 2 * DAY},
        cmdline="root=/dev/vda rw console=hvc0 earlyprintk=xen net.ifnames=0",
        loaded_modules=("xen_pciback", "megaraid_sas", "virtio_blk") + (("mptsas",) if mptsas_driver == "mptsas"
                                                                        else ()),
        hide_live="(0000:00:05.0)", modules_alias=LAB_ALIASES, modules_builtin="kernel/drivers/virtio/virtio.ko\n",
        xl_info=XL_INFO.format(host=name, release=DEBIAN_RELEASE, caps="pv hvm hvm_directio pv_directio hap shadow",
                               iommu="iommu=1"),
        initramfs={f"/boot/initrd.img-{DEBIAN_RELEASE}": (image_files, T0 + image_day * DAY)},
        init="systemd",
        dmesg="[    5.020] pciback 0000:00:05.0: seizing device\n" if mptsas_driver == "pciback" else "",
        mounts="/dev/vda / ext4 rw,relatime 0 0\n", disks={"vda": "0000:00:02.0"},
    )


DEBIAN_PCIBACK = {"/etc/modprobe.d/xen-pciback.conf": "options xen-pciback hide=(0000:00:05.0)\n",
                  "/etc/modprobe.d/xen-passthrough.conf": "blacklist mptsas\n"}


def debian12_kmod_compliant() -> FakeHost:
    """The lab's known-good route: options in modprobe.d, xen-pciback in /etc/modules, mptsas blacklisted."""
    image = {f"etc/modprobe.d/{k.rsplit('/', 1)[1]}": v for k, v in DEBIAN_PCIBACK.items()}
    return debian_host("debian12-kmod-compliant", modules="# /etc/modules\nxen-pciback\n", modprobe=DEBIAN_PCIBACK,
                       image_files={**image, "conf/modules": "virtio_pci\nvirtio_blk\next4\n"}, image_day=3,
                       mptsas_driver="pciback")


def debian12_modules_args_ignored() -> FakeHost:
    """Alpine habits on Debian: `xen_pciback hide=(...)` in /etc/modules, which systemd-modules-load rejects."""
    modprobe = {"/etc/modprobe.d/xen-passthrough.conf": "blacklist mptsas\n"}
    host = debian_host("debian12-modules-args-ignored", modules="xen_pciback hide=(0000:00:05.0)\n",
                       modprobe=modprobe, image_files={"etc/modprobe.d/xen-passthrough.conf": "blacklist mptsas\n"},
                       image_day=3, mptsas_driver=None)
    return replace(host, pciback=None, hide_live="", loaded_modules=("megaraid_sas", "virtio_blk"))


def node03_nonroot_blacklist_unreadable() -> FakeHost:
    """A working node03 collected as user `deploy` (no --sudo): the real blacklist sits in a mode-600 file.

    blacklist.conf still has the seed's `blacklist mpt2sas`; `blacklist mpt3sas` is in xen-passthrough.conf,
    which deploy cannot read, and xl refuses a non-root user. The rules must say what they could not read.
    """
    host = alpine_host("node03-nonroot-blacklist-unreadable", blacklist="blacklist mpt2sas\n", sas_driver="pciback",
                       image_blacklist="blacklist mpt2sas\n", image_day=5, blacklist_day=2,
                       dmesg="[    4.812] pciback 0000:01:00.0: seizing device\n")
    real = "/etc/modprobe.d/xen-passthrough.conf"
    host.initramfs["/boot/initramfs-lts"][0]["etc/modprobe.d/xen-passthrough.conf"] = "blacklist mpt3sas\n"
    return replace(host, files={**host.files, real: "blacklist mpt3sas\n",
                                "/etc/passwd": "root:x:0:0:root:/root:/bin/sh\n"
                                               "deploy:x:65534:65534:deploy:/home/deploy:/bin/sh\n"},
                   mtimes={**host.mtimes, real: T0 + 4 * DAY}, modes={real: 0o600}, collect_as="65534:65534")


def ordinary_vm_not_dom0() -> FakeHost:
    """A Debian 12 KVM guest: no xl, no /proc/xen, no /sys/hypervisor; its root disk hangs off virtio 00:02.0.

    Asked about 00:02.0, xenpass must say this is not a Xen dom0, not plan to hide the root disk's controller.
    """
    devices = [d for d in debian_devices(None) if d.bdf in ("0000:00:00.0", "0000:00:02.0")]
    devices.append(FakeDevice("0000:00:03.0", "1af4", "1000", "020000", "Ethernet controller: Red Hat, Inc. "
                              "Virtio network device", ("1af4", "0001"), "Red Hat, Inc. Device 0001", "virtio-pci",
                              None, ("virtio_pci",)))
    files = {"/etc/os-release": DEBIAN_OS, "/etc/modules": "# /etc/modules: kernel modules to load at boot time.\n",
             "/etc/initramfs-tools/initramfs.conf": "MODULES=most\nCOMPRESS=zstd\n"}
    return FakeHost(
        name="ordinary-vm-not-dom0", distro="debian", release=DEBIAN_RELEASE, devices=devices, files=files,
        cmdline=f"BOOT_IMAGE=/boot/vmlinuz-{DEBIAN_RELEASE} root=UUID=2b9c ro quiet",
        loaded_modules=("virtio_blk", "virtio_net", "ext4"), pciback=None, modules_alias=LAB_ALIASES,
        modules_builtin="kernel/drivers/virtio/virtio.ko\n", xl_info=None,
        initramfs={f"/boot/initrd.img-{DEBIAN_RELEASE}": ({"conf/modules": "", "init": "#!/bin/sh\n"}, T0)},
        init="systemd", dom0=False, mounts="/dev/vda1 / ext4 rw,relatime 0 0\n", disks={"vda": "0000:00:02.0"},
    )


MEGARAID_KO = f"usr/lib/modules/{DEBIAN_RELEASE}/kernel/drivers/scsi/megaraid/megaraid_sas.ko"


def debian12_root_on_shared_driver() -> FakeHost:
    """The root disk (sda) hangs off the MegaRAID 1078 at 00:06.0; the device to pass through, a MegaRAID 2108
    at 01:00.0 behind root port 00:07.0, has the same driver, megaraid_sas, which the initramfs force-loads.

    Blacklisting megaraid_sas, or taking it out of the initramfs, would leave the next boot without its root.
    """
    host = debian_host("debian12-root-on-shared-driver", modules="# /etc/modules\n", modprobe={},
                       image_files={"conf/modules": "megaraid_sas\next4\n", "init": "#!/bin/sh\n",
                                    MEGARAID_KO: ""}, image_day=1,
                       mptsas_driver="mptsas")
    devices = [*host.devices,
               FakeDevice("0000:00:07.0", "1b36", "000c", "060400", "PCI bridge: Red Hat, Inc. QEMU PCIe Root port",
                          ("1b36", "0000"), None, "pcieport"),
               FakeDevice("0000:01:00.0", "1000", "0079", "010400", "RAID bus controller: Broadcom / LSI MegaRAID "
                          "SAS 2108 [Liberator]", ("1000", "9261"), None, "megaraid_sas", "0000:00:07.0",
                          ("megaraid_sas",))]
    files = {**host.files, "/etc/initramfs-tools/modules": "# root disk controller\nmegaraid_sas\next4\n"}
    return replace(host, devices=devices, files=files, mounts="/dev/sda1 / ext4 rw,relatime 0 0\n",
                   disks={"sda": "0000:00:06.0"}, hide_live="", cmdline="root=/dev/sda1 ro console=hvc0")


SCENARIOS: dict[str, Callable[[], FakeHost]] = {
    f().name: f
    for f in (
        node03_broken_mpt2sas_alias, node03_fixed, node03_stale_initramfs, node03_initramfs_lacks_blacklist,
        node03_hide_typo, node03_plain_line_first, node03_attached_to_domu, alpine_busybox_lspci,
        debian12_kmod_compliant, debian12_modules_args_ignored, node03_nonroot_blacklist_unreadable,
        ordinary_vm_not_dom0, debian12_root_on_shared_driver,
    )
}
