"""The real kmod as an oracle: which module coldplug loads first for a device, on a fake root.

The root is a fake dom0 (tests/support/fakehost.py) with this machine's real kmod binary, a module tree
built by the real depmod from fake `.ko` files (an ELF object holding only a `.modinfo` section), and
private modprobe.d directories and /proc/cmdline (a plain file: kmod reads them through chroot).

Coldplug is udev's builtin `kmod load $MODALIAS`: libkmod with KMOD_PROBE_APPLY_BLACKLIST, running install
commands with system(). Here that is `modprobe -b MODALIAS` for real, not a dry run, so install commands
run through the real shell and call the real modprobe again; only the kernel is kept out:
- an LD_PRELOAD shim makes init_module/finit_module succeed without entering the kernel;
- everything runs in a new user namespace (unshare -r), where loading a module is impossible anyway;
- /sbin/modprobe is, for the oracle only, a wrapper adding `-v`, so every nested modprobe prints its
  `insmod PATH` lines in the order they happen.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.chroot import ChrootHost
from tests.support.fakehost import FakeDevice, FakeHost, build, install_gnu_tools, write
from xenpass.facts.collector import collect
from xenpass.facts.host import HostFacts
from xenpass.parse.bdf import parse_bdf
from xenpass.rules import native_driver_blacklisted
from xenpass.rules.base import Context, Status

KMOD = Path("/usr/bin/kmod")
ORACLE_DIR = "/usr/libexec/xp-oracle"
# Config directories a host can have; which of them kmod reads depends on its version and on merged /usr.
CONFIG_DIRS = ("/etc/modprobe.d", "/run/modprobe.d", "/usr/local/lib/modprobe.d", "/lib/modprobe.d",
               "/usr/lib/modprobe.d")

# name -> modalias patterns (what depmod writes to modules.alias from `alias=` in .modinfo)
MODULES: dict[str, tuple[str, ...]] = {
    "mpt3sas": ("pci:v00001000d00000097sv*sd*bc*sc*i*", "pci:v00001000d00000072sv*sd*bc*sc*i*", "mpt2sas"),
    "megaraid_sas": ("pci:v00001000d0000005Dsv*sd*bc*sc*i*",),
    "mptsas": ("pci:v00001000d00000054sv*sd*bc*sc*i*",),
    "mptspi": ("pci:v00001000d00000054sv*sd*bc01sc*i*",),  # a second driver claiming the same device
    "xen_pciback": (),  # no device table: never autoloaded
}
FILE_NAMES = {"mpt3sas": "mpt3sas.ko", "megaraid_sas": "megaraid_sas.ko", "mptsas": "mptsas.ko",
              "mptspi": "mptspi.ko", "xen_pciback": "xen-pciback.ko"}

DEVICES = (
    FakeDevice("0000:01:00.0", "1000", "0097", "010700", "Serial Attached SCSI controller: SAS3008"),
    FakeDevice("0000:02:00.0", "1000", "005d", "010400", "RAID bus controller: MegaRAID SAS-3 3108"),
    FakeDevice("0000:03:00.0", "1000", "0054", "010000", "SCSI storage controller: SAS1068"),
)

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/syscall.h>
/* line-buffered stdout: an install command's nested modprobe prints between its parent's lines */
__attribute__((constructor)) static void line_buffered(void) { setvbuf(stdout, NULL, _IOLBF, 0); }
int init_module(void *image, unsigned long len, const char *params) { return 0; }
int finit_module(int fd, const char *params, int flags) { return 0; }
int delete_module(const char *name, unsigned int flags) { errno = EPERM; return -1; }
long syscall(long number, ...) {
    va_list ap; long a[6]; int i;
    va_start(ap, number); for (i = 0; i < 6; i++) a[i] = va_arg(ap, long); va_end(ap);
    if (number == SYS_init_module || number == SYS_finit_module) return 0;
    if (number == SYS_delete_module) { errno = EPERM; return -1; }
    long (*real)(long, ...) = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
    return real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
"""
WRAPPER = f'#!/bin/sh\nexec {ORACLE_DIR}/modprobe -v "$@"\n'


@dataclass(frozen=True)
class ConfigFile:
    path: str  # e.g. /etc/modprobe.d/a.conf
    text: str | None  # None: a symlink to /dev/null
    link_to: str | None = None  # a symlink to this regular file (written with `text`)


@dataclass
class KmodCase:
    files: list[ConfigFile] = field(default_factory=list)
    cmdline: str = "BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro"


@dataclass(frozen=True)
class Outcome:
    """What happens to a device at coldplug: the first module that binds it (native or pciback), or none."""

    first: str  # "pciback", "native:<module>" or "nothing"
    loads: tuple[str, ...]  # every insmod/builtin in order, as the oracle printed them

    @property
    def native_prevented(self) -> bool:
        return not self.first.startswith("native:")


def available() -> str | None:
    """Why the oracle cannot run here, or None."""
    for tool in ("depmod", "objcopy", "gcc", "unshare", "chroot"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/setup --system)"
    if not KMOD.exists() or os.geteuid() != 0:
        return "needs root and /usr/bin/kmod"
    return None


def kmod_version() -> str:
    return subprocess.run([str(KMOD), "--version"], capture_output=True, text=True, check=True).stdout.split("\n")[0]


class KmodRoot:
    """One fake dom0 root with the real kmod; configurations are swapped in per case."""

    def __init__(self, root: Path, merged_usr: bool) -> None:
        self.root = root
        self.merged_usr = merged_usr
        self.release = os.uname().release  # what modprobe, run without -S, looks up
        self.host = ChrootHost(root)
        self.build()

    # -- building ------------------------------------------------------------------------
    def build(self) -> None:
        self.root.mkdir(parents=True)
        if self.merged_usr:
            for name in ("lib", "bin", "sbin"):
                (self.root / "usr" / name).mkdir(parents=True)
                os.symlink(f"usr/{name}", self.root / name)
        fake = FakeHost(name="kmod-oracle", distro="debian", release=self.release, devices=list(DEVICES),
                        files={"/etc/os-release": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'},
                        pciback=None, init="systemd")
        build(fake, self.root)
        # dash as /bin/sh, as on Debian: busybox's shell would run its own modprobe applet in install commands
        install_gnu_tools(self.root, tools=(), shell="/bin/dash")
        self.install_kmod()
        self.install_modules()
        self.install_oracle_tools()

    def install_kmod(self) -> None:
        (self.root / "bin/kmod").unlink()
        shutil.copy2(KMOD, self.root / "bin/kmod")
        copy_libraries(KMOD, self.root)

    def install_modules(self) -> None:
        moddir = self.root / "lib/modules" / self.release
        (moddir / "kernel").mkdir(parents=True, exist_ok=True)
        for name, aliases in MODULES.items():
            modinfo = b"".join(f"alias={a}\0".encode() for a in aliases) + f"name={name}\0license=GPL\0".encode()
            fake_ko(modinfo, moddir / "kernel" / FILE_NAMES[name])
        subprocess.run(["depmod", "-b", str(self.root), self.release], check=True, capture_output=True)

    def install_oracle_tools(self) -> None:
        tools = self.root / ORACLE_DIR.lstrip("/")
        tools.mkdir(parents=True, exist_ok=True)
        source = tools / "noload.c"
        source.write_text(SHIM)
        subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(tools / "noload.so"), str(source)], check=True)
        copy_libraries(tools / "noload.so", self.root)
        os.symlink("/bin/kmod", tools / "modprobe")

    # -- one case ------------------------------------------------------------------------
    def apply(self, case: KmodCase) -> None:
        for directory in CONFIG_DIRS:  # under merged /usr, /lib/modprobe.d is /usr/lib/modprobe.d
            target = self.root / directory.lstrip("/")
            if target.exists():
                shutil.rmtree(target)
        shutil.rmtree(self.root / "usr/share/xp", ignore_errors=True)
        for f in case.files:
            place = self.root / f.path.lstrip("/")
            if place.is_symlink() or place.exists():  # merged /usr: /lib/modprobe.d/x is /usr/lib/modprobe.d/x
                continue
            place.parent.mkdir(parents=True, exist_ok=True)
            if f.text is None:
                os.symlink("/dev/null", place)
            elif f.link_to is not None:
                write(self.root, f.link_to, f.text.encode("utf-8", "surrogateescape"))
                os.symlink(f.link_to, place)
            else:
                write(self.root, f.path, f.text.encode("utf-8", "surrogateescape"))
        write(self.root, "/proc/cmdline", case.cmdline + "\n")

    def product_facts(self) -> HostFacts:
        self.use_modprobe("/bin/kmod")
        return HostFacts(collect(self.host, "kmod-oracle"))

    def product_verdicts(self, facts: HostFacts) -> dict[str, Status]:
        return {dev.bdf: native_driver_blacklisted.check(facts, parse_bdf(dev.bdf), Context()).status
                for dev in DEVICES}

    def oracle(self, modalias: str) -> Outcome:
        """udev's coldplug of one device: `modprobe -b MODALIAS`, install commands run for real."""
        self.use_modprobe(None)
        env = ["/bin/env", "-i", "PATH=/sbin:/bin:/usr/sbin:/usr/bin", f"LD_PRELOAD={ORACLE_DIR}/noload.so"]
        argv = ["unshare", "--user", "--map-root-user", "chroot", str(self.root), *env,
                "/sbin/modprobe", "-b", modalias]
        done = subprocess.run(argv, capture_output=True, timeout=30)
        err = done.stderr.decode(errors="replace")
        if any(w in err for w in ("Operation not permitted", "Invalid module format", "Exec format error")):
            raise RuntimeError(f"the no-load shim did not take: {err}")
        loads = tuple(loaded_modules(done.stdout.decode(errors="replace")))
        return Outcome(first_binding(loads, modalias), loads)

    def oracle_options(self, name: str) -> str | None:
        """The options kmod passes when a module is loaded by name (`modprobe NAME`, as systemd-modules-load
        and initramfs-tools do): the text after the path on the `insmod` line; None when it inserts nothing."""
        self.use_modprobe(None)
        env = ["/bin/env", "-i", "PATH=/sbin:/bin:/usr/sbin:/usr/bin", f"LD_PRELOAD={ORACLE_DIR}/noload.so"]
        argv = ["unshare", "--user", "--map-root-user", "chroot", str(self.root), *env, "/sbin/modprobe", name]
        done = subprocess.run(argv, capture_output=True, timeout=30)
        for line in done.stdout.decode(errors="replace").splitlines():
            options = line.split(" ", 2)[2] if line.count(" ") >= 2 else ""
            if line.startswith("insmod ") and loaded_modules(line) == [name.replace("-", "_")]:
                return options
        return None

    def use_modprobe(self, target: str | None) -> None:
        """/sbin/modprobe: the real kmod (for the collector) or the oracle's verbose wrapper."""
        link = self.root / "sbin/modprobe"
        link.unlink(missing_ok=True)
        if target is None:
            link.write_text(WRAPPER)
            link.chmod(0o755)
        else:
            os.symlink(target, link)


def loaded_modules(stdout: str) -> list[str]:
    """Module names from `insmod /lib/modules/K/kernel/NAME.ko OPTS` and `builtin NAME` lines."""
    names = []
    for line in stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word == "insmod":
            names.append(rest.split(" ", 1)[0].rsplit("/", 1)[-1].removesuffix(".ko").replace("-", "_"))
        elif word == "builtin":
            names.append(rest.strip())
    return names


def claims(module: str, modalias: str) -> bool:
    """Whether the module's device table matches the device (what the kernel binds on)."""
    from fnmatch import fnmatchcase

    return any(fnmatchcase(modalias, p) for p in MODULES.get(module, ()) if p.startswith("pci:"))


def first_binding(loads: tuple[str, ...], modalias: str) -> str:
    for module in loads:
        if module == "xen_pciback":
            return "pciback"
        if claims(module, modalias):
            return f"native:{module}"
    return "nothing"


def fake_ko(modinfo: bytes, target: Path) -> None:
    """A relocatable ELF object whose only content is a `.modinfo` section: all depmod needs."""
    source = target.with_suffix(".modinfo")
    source.write_bytes(modinfo)
    subprocess.run(["objcopy", "-I", "binary", "-O", "elf64-x86-64", "-B", "i386:x86-64",
                    "--rename-section", ".data=.modinfo", str(source), str(target)], check=True)
    source.unlink()


def copy_libraries(binary: Path, root: Path) -> None:
    libs = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    for lib in {w for w in libs.split() if w.startswith("/")}:
        target = root / lib.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copy2(Path(lib).resolve(), target)
