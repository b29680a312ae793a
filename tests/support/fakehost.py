"""Fake dom0 roots: a directory a test can chroot into (locally or behind a real sshd).

A FakeHost is files, PCI devices in a fake sysfs, and fake `lspci`/`xl`/`dmesg` that answer from
that sysfs, so the collector, the fixes and `xl pci-assignable-add` behave as on a host. The
shell and core tools are Debian's static busybox (installed by scripts/setup).
"""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
APPLETS = (
    "sh ash cat stat grep egrep base64 readlink od ls ln rm mv cp mkdir find cpio gzip zcat sed awk id date touch "
    "chmod chown dirname basename mktemp sleep head tail sort tr wc env true false test printf echo uname sync setsid"
).split()


@dataclass
class FakeDevice:
    bdf: str  # "0000:01:00.0"
    vendor: str  # "1000"
    device: str  # "0072"
    pci_class: str  # "010700"
    description: str  # lspci's text after the address
    subsystem: tuple[str, str] = ("0000", "0000")
    subsystem_name: str | None = None
    driver: str | None = None
    parent: str | None = None  # upstream bridge BDF
    modules: tuple[str, ...] = ()  # lspci's "Kernel modules:"

    @property
    def modalias(self) -> str:
        c = self.pci_class
        return (f"pci:v0000{self.vendor.upper()}d0000{self.device.upper()}sv0000{self.subsystem[0].upper()}"
                f"sd0000{self.subsystem[1].upper()}bc{c[0:2].upper()}sc{c[2:4].upper()}i{c[4:6].upper()}")


@dataclass
class FakeHost:
    name: str
    distro: str  # alpine | debian
    release: str
    devices: list[FakeDevice]
    files: dict[str, str] = field(default_factory=dict)
    mtimes: dict[str, int] = field(default_factory=dict)  # path -> epoch seconds
    cmdline: str = "BOOT_IMAGE=/boot/vmlinuz root=/dev/sda1 ro"
    loaded_modules: tuple[str, ...] = ()
    pciback: str | None = "module"  # module | builtin | None (not loaded)
    hide_live: str = ""
    modules_alias: str = ""
    modules_builtin: str = ""
    xl_info: str | None = None  # None: no xl installed
    xl_domains: dict[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)  # name -> (domid, BDFs)
    lspci_format: str = "pciutils"  # pciutils | busybox
    initramfs: dict[str, tuple[dict[str, str], int]] = field(default_factory=dict)  # path -> (files, mtime)
    dmesg: str = ""
    runlevels: dict[str, str] = field(default_factory=dict)  # openrc service -> runlevel
    init: str = "init"
    base_mtime: int = 1_750_000_000  # every file not dated otherwise
    dom0: bool = True  # xenfs at /proc/xen says control_d, /sys/hypervisor/type says xen
    modes: dict[str, int] = field(default_factory=dict)  # path -> mode (e.g. 0o600), after writing
    mounts: str = "/dev/sda1 / ext4 rw,relatime 0 0\n"
    disks: dict[str, str] = field(default_factory=dict)  # block device (vda) -> the PCI device it hangs off
    collect_as: str | None = None  # chroot --userspec for collecting (e.g. "65534:65534"); None: root


def write(root: Path, path: str, text: str | bytes, mode: int = 0o644) -> Path:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        target.write_bytes(text)
    else:
        target.write_text(text)
    target.chmod(mode)
    return target


def newc(files: dict[str, str], mtime: int = 0, with_dirs: bool = False) -> bytes:
    """A newc cpio archive of regular files (what mkinitfs and mkinitramfs write); `with_dirs` puts each
    parent directory's entry first, as `find . | cpio -o` does (cpio -i without -d needs them)."""
    out = bytearray()
    entries = [(name, text.encode(), 0o100644) for name, text in files.items()]
    if with_dirs:
        parents = dict.fromkeys(name.rsplit("/", 1)[0] for name in files if "/" in name)
        dirs = dict.fromkeys(p.rsplit("/", depth)[0] for p in parents for depth in range(p.count("/"), -1, -1))
        entries = [(d, b"", 0o040755) for d in sorted(dirs)] + entries
    for ino, (name, data, mode) in enumerate([*entries, ("TRAILER!!!", b"", 0)], start=1):
        encoded = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, mtime, len(data), 0, 0, 0, 0, len(encoded), 0]
        out += b"070701" + b"".join(b"%08X" % f for f in fields) + encoded
        out += b"\0" * (-len(out) % 4)  # name padded to 4 bytes
        out += data
        out += b"\0" * (-len(out) % 4)  # data padded to 4 bytes
    return bytes(out) + b"\0" * (-len(out) % 512)


def build(host: FakeHost, root: Path) -> Path:
    """Write the fake host into `root` (created), ready for `chroot root /bin/sh`."""
    root.mkdir(parents=True, exist_ok=True)
    install_busybox(root)
    write(root, "/proc/sys/kernel/osrelease", host.release + "\n")
    write(root, "/proc/cmdline", host.cmdline + "\n")
    write(root, "/proc/1/comm", host.init + "\n")
    write(root, "/proc/modules", "".join(f"{m} 16384 0 - Live 0x0000000000000000\n" for m in host.loaded_modules))
    write(root, "/proc/mounts", host.mounts)
    if host.dom0:
        write(root, "/proc/xen/capabilities", "control_d\n")
        write(root, "/sys/hypervisor/type", "xen\n")
    write(root, f"/lib/modules/{host.release}/modules.alias", host.modules_alias)
    write(root, f"/lib/modules/{host.release}/modules.builtin", host.modules_builtin)
    for path, text in host.files.items():
        write(root, path, text)
    for service, level in host.runlevels.items():
        (root / "etc/runlevels" / level).mkdir(parents=True, exist_ok=True)
        os.symlink(f"/etc/init.d/{service}", root / "etc/runlevels" / level / service)
    build_sysfs(host, root)
    build_tools(host, root)
    for path, (files, mtime) in host.initramfs.items():
        write(root, path, gzip.compress(newc(files, mtime, with_dirs=True), mtime=mtime))
    settle_mtimes(root, host.base_mtime)
    for path, (_, mtime) in host.initramfs.items():
        os.utime(root / path.lstrip("/"), (mtime, mtime))
    for path, mtime in host.mtimes.items():
        os.utime(root / path.lstrip("/"), (mtime, mtime))
    for path, mode in host.modes.items():
        (root / path.lstrip("/")).chmod(mode)
    return root


def settle_mtimes(root: Path, when: int) -> None:
    """Give every file one fixed mtime, so a scenario always yields the same snapshot."""
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory) / name
            if not path.is_symlink() and path.is_file():
                os.utime(path, (when, when))


def install_busybox(root: Path) -> None:
    if not BUSYBOX.exists():
        raise RuntimeError("fake hosts need Debian's busybox-static (/bin/busybox): run scripts/setup")
    (root / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin/busybox")
    for applet in APPLETS:
        link = root / "bin" / applet
        if not link.exists():
            os.symlink("busybox", link)
    (root / "tmp").mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "dev").mkdir(exist_ok=True)
    if not (root / "dev/null").exists():
        os.mknod(root / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        (root / "dev/null").chmod(0o666)  # mknod's mode went through the umask: a non-root user writes here too


def install_gnu_tools(root: Path, tools: tuple[str, ...] = ("cp",), shell: str = "/bin/dash") -> None:
    """Give a built fake root this machine's `shell` as /bin/sh and its (GNU) `tools`, with their libraries.

    Debian's static busybox runs its own applets before anything on PATH (standalone shell), so a host whose
    `cp` keeps xattrs and ACLs needs another shell too; every other command stays a busybox applet (linked).
    """
    binaries = [Path(shell), *(Path(shutil.which(t) or f"/bin/{t}") for t in tools)]
    for binary in binaries:
        libs = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
        for lib in {w for w in libs.split() if w.startswith("/")}:
            (root / lib.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(lib).resolve(), root / lib.lstrip("/"))
    for tool, binary in zip(tools, binaries[1:], strict=True):
        (root / "bin" / tool).unlink(missing_ok=True)
        shutil.copy2(binary, root / "bin" / tool)
    (root / "bin/sh").unlink()
    shutil.copy2(Path(shell).resolve(), root / "bin/sh")
    listed = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in listed:  # without busybox's shell, an applet is found on PATH only
        if not (root / "bin" / applet).exists() and not (root / "bin" / applet).is_symlink():
            os.symlink("busybox", root / "bin" / applet)


def build_sysfs(host: FakeHost, root: Path) -> None:
    sys_pci = root / "sys/bus/pci"
    for dev in host.devices:
        parent = f"/sys/devices/pci{dev.bdf[:4]}:00" + (f"/{dev.parent}" if dev.parent else "")
        real = root / parent.lstrip("/") / dev.bdf
        real.mkdir(parents=True, exist_ok=True)
        for name, value in (("vendor", f"0x{dev.vendor}"), ("device", f"0x{dev.device}"),
                            ("class", f"0x{dev.pci_class}"), ("modalias", dev.modalias)):
            (real / name).write_text(value + "\n")
        (sys_pci / "devices").mkdir(parents=True, exist_ok=True)
        os.symlink(f"{parent}/{dev.bdf}", sys_pci / "devices" / dev.bdf)
        write(root, f"/var/lib/fakehost/lspci/{dev.bdf}", lspci_info(dev))
        if dev.driver:
            bind(root, dev.bdf, dev.driver, f"{parent}/{dev.bdf}")
        for disk in [name for name, bdf in host.disks.items() if bdf == dev.bdf]:
            (real / disk).mkdir()
            (root / "sys/block" / disk).mkdir(parents=True)
            os.symlink(f"{parent}/{dev.bdf}/{disk}", root / "sys/block" / disk / "device")
            for source in host.mounts.split():  # partitions the mounts name: /sys/block/sda/sda1/partition
                part = source.removeprefix("/dev/")
                if source.startswith("/dev/") and part != disk and part.startswith(disk):
                    write(root, f"/sys/block/{disk}/{part}/partition", part[len(disk):].lstrip("p") + "\n")
    if host.pciback:
        (sys_pci / "drivers/pciback").mkdir(parents=True, exist_ok=True)
        slots = "".join(d.bdf + "\n" for d in host.devices if d.driver == "pciback")
        write(root, "/sys/bus/pci/drivers/pciback/slots", slots)
        params = root / "sys/module/xen_pciback/parameters"
        params.mkdir(parents=True, exist_ok=True)
        (params / "hide").write_text(host.hide_live + "\n")
        (params / "permissive").write_text("N\n")
        if host.pciback == "module":
            (root / "sys/module/xen_pciback/initstate").write_text("live\n")


def bind(root: Path, bdf: str, driver: str, device_path: str) -> None:
    drivers = root / "sys/bus/pci/drivers" / driver
    drivers.mkdir(parents=True, exist_ok=True)
    os.symlink(device_path, drivers / bdf)
    os.symlink(f"/sys/bus/pci/drivers/{driver}", root / device_path.lstrip("/") / "driver")


def lspci_info(dev: FakeDevice) -> str:
    """Static per-device lines the fake lspci joins with the live driver binding."""
    return (f"desc={dev.description}\nsubsys={dev.subsystem_name or ''}\nids={dev.vendor}:{dev.device}\n"
            f"class={dev.pci_class[:4]}\nmodules={', '.join(dev.modules)}\n")


LSPCI_PCIUTILS = r"""#!/bin/sh
for d in /sys/bus/pci/devices/*; do
  b=${d##*/}; f=/var/lib/fakehost/lspci/$b
  desc=$(sed -n 's/^desc=//p' $f); sub=$(sed -n 's/^subsys=//p' $f); mods=$(sed -n 's/^modules=//p' $f)
  echo "${b#0000:} $desc"
  [ -n "$sub" ] && printf '\tSubsystem: %s\n' "$sub"
  drv=$(readlink $d/driver) && printf '\tKernel driver in use: %s\n' "${drv##*/}"
  [ -n "$mods" ] && [ "$1" = "-k" ] && printf '\tKernel modules: %s\n' "$mods"
done
exit 0
"""

LSPCI_BUSYBOX = r"""#!/bin/sh
for d in /sys/bus/pci/devices/*; do
  b=${d##*/}; f=/var/lib/fakehost/lspci/$b
  ids=$(sed -n 's/^ids=//p' $f); class=$(sed -n 's/^class=//p' $f)
  drv=$(readlink $d/driver) && drv=" ${drv##*/}"
  echo "$b Class $class: $ids$drv"
done
exit 0
"""

# xl answers from the fake sysfs, so `xl pci-assignable-add` really rebinds the device.
XL = r"""#!/bin/sh
state=/var/lib/fakehost
[ "$(id -u)" = 0 ] || {
  echo "xencall: error: Could not obtain handle on privileged command interface: Permission denied" >&2
  echo "libxl: error: libxl.c:102:libxl_ctx_alloc: cannot open libxc handle: Permission denied" >&2
  echo "cannot init xl context" >&2
  exit 1; }
case "$1" in
  info) cat $state/xl-info ;;
  list) cat $state/xl-list ;;
  pci-list) cat "$state/xl-pci-list-$2" 2>/dev/null || { echo "Domain '$2' does not exist." >&2; exit 1; } ;;
  pci-assignable-list)
    [ -d /sys/bus/pci/drivers/pciback ] || {
      echo "libxl: error: libxl_pci.c:1212:libxl_device_pci_assignable_list: Looks like pciback driver not loaded" >&2
      exit 0; }
    for d in /sys/bus/pci/drivers/pciback/0000:*; do
      [ -e "$d" ] || continue
      grep -q "${d##*/}" $state/attached 2>/dev/null || echo "${d##*/} "
    done ;;
  pci-assignable-add)
    bdf=$2; case $bdf in 0000:*) ;; *) bdf=0000:$bdf ;; esac
    dev=/sys/bus/pci/devices/$bdf
    [ -e "$dev" ] || { echo "libxl: error: malformed BDF \"$2\"" >&2; exit 1; }
    real=$(readlink $dev)
    old=$(readlink $dev/driver) && rm -f "$old/$bdf" "$dev/driver"
    ln -s "$real" /sys/bus/pci/drivers/pciback/$bdf
    ln -s /sys/bus/pci/drivers/pciback $dev/driver
    echo "$bdf" >> /sys/bus/pci/drivers/pciback/slots ;;
  *) echo "xl: unknown command $1" >&2; exit 1 ;;
esac
"""


# The initramfs tools, as far as the checker can tell: they pack the current modprobe.d into the image.
# Switches (files under /var/lib/fakehost), for the applier's fault tests:
# - fail-initramfs: fail before writing anything;
# - hang-initramfs: create initramfs-started, then never return (until killed);
# - half-initramfs: write the first half of the new image over the old one, then fail (a truncated image).
INITRAMFS_TOOL = r"""#!/bin/sh
[ -e /var/lib/fakehost/fail-initramfs ] && { echo "$TOOL: cannot build the image: no space left" >&2; exit 1; }
[ -e /var/lib/fakehost/hang-initramfs ] && { : > /var/lib/fakehost/initramfs-started; sleep 3600; exit 1; }
stage=$(mktemp -d)
mkdir -p "$stage/etc/modprobe.d" "$stage/conf"
for f in /etc/modprobe.d/*.conf; do [ -f "$f" ] && cp "$f" "$stage/etc/modprobe.d/"; done
[ -f /etc/initramfs-tools/modules ] && cp /etc/initramfs-tools/modules "$stage/conf/modules"
echo '#!/bin/sh' > "$stage/init"
(cd "$stage" && find . | cpio -o -H newc 2>/dev/null) | gzip > "$OUT.new" || exit 1
rm -rf "$stage"
if [ -e /var/lib/fakehost/half-initramfs ]; then
  head -c $(( $(wc -c < "$OUT.new") / 2 )) "$OUT.new" > "$OUT"; rm -f "$OUT.new"
  echo "$TOOL: write error on $OUT: no space left on device" >&2; exit 1
fi
mv "$OUT.new" "$OUT"
echo "==> initramfs: creating $OUT"
"""
MKINITFS = "#!/bin/sh\nTOOL=mkinitfs\nwhile [ $# -gt 0 ]; do case $1 in -o) OUT=$2; shift 2;; *) shift;; esac; done\n"
UPDATE_INITRAMFS = ("#!/bin/sh\nTOOL=update-initramfs\n"
                    "while [ $# -gt 0 ]; do case $1 in -k) OUT=/boot/initrd.img-$2; shift 2;; *) shift;; esac; done\n")


def build_tools(host: FakeHost, root: Path) -> None:
    lspci = LSPCI_BUSYBOX if host.lspci_format == "busybox" else LSPCI_PCIUTILS
    write(root, "/usr/local/bin/lspci", lspci, 0o755)
    write(root, "/usr/local/bin/dmesg", "#!/bin/sh\ncat /var/lib/fakehost/dmesg\n", 0o755)
    write(root, "/var/lib/fakehost/dmesg", host.dmesg)
    tool = ("mkinitfs", MKINITFS) if host.distro == "alpine" else ("update-initramfs", UPDATE_INITRAMFS)
    write(root, f"/usr/local/sbin/{tool[0]}", tool[1] + INITRAMFS_TOOL.split("\n", 1)[1], 0o755)
    modprobe_target = "/bin/busybox" if host.distro == "alpine" else "/bin/kmod"
    if host.distro != "alpine":
        write(root, "/bin/kmod", "#!/bin/sh\necho 'kmod version 30'\n", 0o755)
    os.symlink(modprobe_target, root / "sbin/modprobe") if (root / "sbin").exists() else (
        (root / "sbin").mkdir(), os.symlink(modprobe_target, root / "sbin/modprobe"))
    if host.xl_info is None:
        return
    write(root, "/usr/local/sbin/xl", XL, 0o755)
    write(root, "/var/lib/fakehost/xl-info", host.xl_info)
    rows = ["Name                                        ID   Mem VCPUs\tState\tTime(s)",
            "Domain-0                                     0  1024     2     r-----      42.0"]
    attached = []
    for name, (domid, bdfs) in host.xl_domains.items():
        rows.append(f"{name:<40}{domid:>5}   256     1     -b----       1.2")
        listing = ["Vdev Device"] + [f"0{i}.0 {b}" for i, b in enumerate(bdfs)]
        write(root, f"/var/lib/fakehost/xl-pci-list-{name}", "\n".join(listing) + "\n")
        attached += bdfs
    write(root, "/var/lib/fakehost/xl-list", "\n".join(rows) + "\n")
    write(root, "/var/lib/fakehost/attached", "".join(b + "\n" for b in attached))
