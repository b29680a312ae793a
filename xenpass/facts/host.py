"""HostFacts: the typed view of one host's raw facts, built lazily by the pure parsers."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import PurePosixPath

from xenpass.facts.raw import FileFact, PciSysfs, RawFacts
from xenpass.parse.bdf import Bdf, parse_bdf
from xenpass.parse.cmdline import parse_cmdline
from xenpass.parse.initramfs import InitramfsContent
from xenpass.parse.lspci import LspciDevice, parse_lspci_k
from xenpass.parse.modprobe import ModprobeDirective, normalize_module, parse_modprobe_conf
from xenpass.parse.modprobe_busybox import (
    BusyboxProbe,
    busybox_by_name,
    busybox_coldplug,
    busybox_dep_modules,
    busybox_modname,
    busybox_reads,
    parse_busybox_conf,
)
from xenpass.parse.modules_alias import (
    ModuleAlias,
    parse_builtin_modinfo_aliases,
    parse_modules_alias,
    parse_modules_builtin,
    resolve_alias,
)
from xenpass.parse.modules_load import ModuleLoadLine, parse_modules_load
from xenpass.parse.mounts import Use, parse_mounts, parse_swaps
from xenpass.parse.os_release import parse_os_release
from xenpass.parse.xl import (
    AssignableEntry,
    PciListEntry,
    parse_assignable_list,
    parse_pci_list,
    parse_xl_info,
)
from xenpass.parse.xlcfg import DomuConfig, parse_xl_cfg

PCIBACK = "xen_pciback"
# Directories kmod reads, in priority order: a file name in an earlier one hides the same name later
# (libkmod.c default_config_paths). /usr/lib/modprobe.d is read from kmod 32 on (DISTCONFDIR); before, only
# through /lib on a merged-/usr host. See kmod_config_dirs and docs/tool-facts.md.
KMOD_CONFIG_DIRS = ("/etc/modprobe.d", "/run/modprobe.d", "/usr/local/lib/modprobe.d", "/usr/lib/modprobe.d",
                    "/lib/modprobe.d")
MODULES_LOAD_DIRS = ("/etc/modules-load.d", "/run/modules-load.d", "/usr/lib/modules-load.d", "/lib/modules-load.d")

# The fact sources a rule can read (Rule.reads), and the paths each covers: a path ending in "/" is a directory
# and everything below it. A source with an unreadable file or directory, or a failed command, is unknown.
SOURCES: dict[str, tuple[str, ...]] = {
    "modprobe.d": (*(d + "/" for d in KMOD_CONFIG_DIRS), "/etc/modprobe.conf"),
    "modules-load": ("/etc/modules", *(d + "/" for d in MODULES_LOAD_DIRS), "/etc/initramfs-tools/modules"),
    "kernel-modules": ("/lib/modules/", "/proc/modules", "/sys/module/"),
    "cmdline": ("/proc/cmdline",),
    "xen-pci": ("/etc/conf.d/xen-pci",),
    "sysfs": ("/sys/bus/pci/",),
    "initramfs": ("/boot/",),  # and the running kernel's image must have been read whole
    "domu": ("/etc/xen/",),  # or exactly the domU configs the user named
    "xl": (),  # every `xl ...` command must have succeeded
}
PERMISSION_WORDS = ("Permission denied", "Operation not permitted")


@dataclass(frozen=True)
class Unknown:
    """A fact the collector could not learn: a file or directory it could not read, a command that failed."""

    kind: str  # file | dir | command | image
    what: str  # the path, or the command's name
    detail: str  # evidence: the file's stat, or all the command said
    permission: bool = True  # root (--sudo) would have learnt it
    summary: str = ""  # a failed command's exit status and first line: "(exit 1): xencall: error: ..."


@dataclass(frozen=True)
class ConfigFile:
    path: str
    text: str
    mtime: int | None


@dataclass(frozen=True)
class Image:
    """The initramfs the running kernel boots with, and what it holds."""

    path: str
    mtime: int | None
    size: int | None
    content: InitramfsContent | None


def safe_bdf(text: str) -> Bdf | None:
    try:
        return parse_bdf(text)
    except ValueError:
        return None


class HostFacts:
    """Everything the rules read about one host. Pure: built from RawFacts only."""

    def __init__(self, raw: RawFacts) -> None:
        self.raw = raw
        self.name = raw.host

    # -- system ---------------------------------------------------------------------------
    @cached_property
    def os_release(self) -> dict[str, str]:
        return parse_os_release(self.raw.file("/etc/os-release") or "")

    @cached_property
    def distro(self) -> str:
        """alpine, debian, dracut or unknown: the family that decides how boot loads modules."""
        ids = {self.os_release.get("ID", "")} | set(self.os_release.get("ID_LIKE", "").split())
        if "alpine" in ids:
            return "alpine"
        if ids & {"debian", "ubuntu"}:
            # Debian 13 can take dracut instead of initramfs-tools (same image name, /boot/initrd.img-RELEASE).
            # Both leave their conffiles when removed unpurged: only a lone dracut configuration says dracut.
            if self.has_file("/etc/dracut.conf") and not self.has_file("/etc/initramfs-tools/initramfs.conf"):
                return "dracut"
            return "debian"
        if ids & {"fedora", "rhel", "centos", "qubes"} or self.has_file("/etc/dracut.conf"):
            return "dracut"
        return "unknown"

    @property
    def distro_name(self) -> str:
        return self.os_release.get("PRETTY_NAME") or self.os_release.get("ID") or "unknown"

    @property
    def kernel(self) -> str | None:
        return self.raw.release

    @property
    def flavor(self) -> str | None:
        """Alpine's kernel flavour: the text after the last '-' of the release (6.6.31-0-lts -> lts)."""
        return self.kernel.rsplit("-", 1)[-1] if self.kernel and "-" in self.kernel else None

    @cached_property
    def modprobe_impl(self) -> str:
        target = (self.raw.output("readlink modprobe") or "").strip()
        if target.endswith("/kmod"):
            return "kmod"
        if target.endswith("busybox") or (not target and self.distro == "alpine"):
            return "busybox"
        return "kmod" if target else "unknown"

    @cached_property
    def kmod_version(self) -> int | None:
        """`kmod version 30` from `modprobe --version`; None when not collected (older snapshots) or not kmod."""
        words = (self.raw.output("modprobe --version") or "").split()
        if len(words) >= 3 and words[:2] == ["kmod", "version"]:
            return _leading_int(words[2])
        return None

    @cached_property
    def init_system(self) -> str:
        if self.raw.init == "systemd":
            return "systemd"
        if self.raw.flags.get("runlevel") or self.distro == "alpine":
            return "openrc"
        return self.raw.init or "unknown"

    @cached_property
    def runlevel_services(self) -> dict[str, str]:
        """OpenRC service -> runlevel it is in (e.g. modules -> boot)."""
        out = {}
        for entry in self.raw.flag_values("runlevel"):
            level, _, service = entry.partition("/")
            out.setdefault(service, level)
        return out

    @cached_property
    def cmdline(self) -> list[tuple[str, str | None]]:
        return parse_cmdline(self.raw.file("/proc/cmdline") or "")

    def has_file(self, path: str) -> bool:
        return self.raw.file(path) is not None

    # -- what the collector could not learn -----------------------------------------------
    @property
    def user(self) -> str | None:
        """The user the collector ran as, reported when something was unreadable to it."""
        users = self.raw.flag_values("user")
        return users[0] if users else None

    @property
    def unreadable_dirs(self) -> list[str]:
        return self.raw.flag_values("unreadable_dirs")

    def unknown(self, sources: Iterable[str], domus: Iterable[str] = ()) -> list[Unknown]:
        """What of these fact sources the collector could not read; `domus` narrows "domu" to those configs."""
        found: list[Unknown] = []
        for source in sources:
            if source == "domu" and domus:
                found += self.unknown_paths(tuple(domus), exact=True)
            else:
                found += self.unknown_paths(SOURCES[source])
            if source == "xl":
                found += self.failed_commands("xl ")
            if source == "initramfs":
                image = self.boot_image
                if image is not None and image.content is None:
                    cached = image.path in self.raw.flag_values("known_image")  # skipped as known, not in cache
                    found.append(Unknown("image", image.path, f"{image.size} bytes, {self.mode_text(image.path)}; "
                                         "its content was not collected", permission=not cached))
        return list(dict.fromkeys(found))

    def unknown_paths(self, covers: tuple[str, ...], exact: bool = False) -> list[Unknown]:
        found = []
        for d in self.unreadable_dirs:
            hit = [c for c in covers if c.startswith(d) or (c.endswith("/") and d.startswith(c))]
            if exact:  # a named file under an unlistable directory may still have been read by its path
                hit = [c for c in hit if self.raw.file(c) is None]
            if hit:
                found.append(Unknown("dir", d, "cannot be listed"))
        for path, fact in sorted(self.raw.files.items()):
            if fact.unreadable and any(path == c or (c.endswith("/") and path.startswith(c)) for c in covers):
                found.append(Unknown("file", path, f"unreadable ({self.mode_text(path)})"))
        return found

    def mode_text(self, path: str) -> str:
        fact = self.raw.files.get(path) or self.raw.boot.get(path)
        if fact is None or fact.mode is None:
            return "mode unknown"
        return f"mode {fact.mode}, owner uid {fact.uid}"

    def failed_commands(self, prefix: str) -> list[Unknown]:
        found = []
        for name, cmd in sorted(self.raw.commands.items()):
            if not name.startswith(prefix) or cmd.output is None or cmd.rc in (0, None):
                continue
            said = cmd.output.strip() or "(no output)"
            found.append(Unknown("command", name, f"exit {cmd.rc}\n{said}",
                                 permission=any(w in said for w in PERMISSION_WORDS),
                                 summary=f"(exit {cmd.rc}): {said.splitlines()[0]}"))
        return found

    # -- is this a Xen dom0 at all ---------------------------------------------------------
    @cached_property
    def not_dom0_reason(self) -> str | None:
        """Why this host is not a Xen dom0, when it says so itself; None for a dom0 or when it cannot tell.

        A dom0 has `control_d` in /proc/xen/capabilities (xenfs), or an `xl info` that works. Without
        either it is not one, unless xenfs could not say (unreadable, or not mounted) and xl was only denied
        (a non-root user: modern xl needs /dev/xen/privcmd, not xenfs).
        """
        caps = self.raw.files.get("/proc/xen/capabilities")
        if caps is not None and caps.content is not None and "control_d" in caps.content.split():
            return None
        info = self.raw.commands.get("xl info")
        if info is not None and info.rc in (0, None) and self.xl_info:
            return None
        denied = self.failed_commands("xl ")
        if (caps is not None and caps.content is None) or (caps is None and any(u.permission for u in denied)):
            return None  # unknown, not a finding: the rules that read xl say what could not be read
        if caps is None:
            why = "/proc/xen/capabilities does not exist (no xenfs at /proc/xen)"
        else:
            why = "/proc/xen/capabilities has no control_d"
        if not self.xl_present:
            why += " and xl is not installed"
        elif denied:
            why += f" and `{denied[0].what}` failed {denied[0].summary}"
        else:
            why += " and `xl info` reports nothing"
        hypervisor = (self.raw.file("/sys/hypervisor/type") or "").strip()
        if hypervisor == "xen":
            why += "; /sys/hypervisor/type is xen: this is a Xen guest (domU)"
        elif hypervisor:
            why += f"; /sys/hypervisor/type is {hypervisor}"
        elif "/sys/hypervisor/type" not in self.raw.files:
            why += "; there is no /sys/hypervisor/type: the kernel does not run on Xen"
        return f"not a Xen dom0: {why}"

    def absent_reason(self, bdf: Bdf) -> str | None:
        """Why the device is not on this host, when the PCI listing was collected and lacks it."""
        if not self.pci or bdf in self.pci or bdf in self.lspci:
            return None
        return f"{bdf} is not on this host: no such PCI device in /sys/bus/pci/devices"

    # -- module configuration -------------------------------------------------------------
    @cached_property
    def modprobe_files(self) -> list[ConfigFile]:
        """The modprobe configuration files in force, in the order modprobe reads them."""
        if self.modprobe_impl == "busybox":
            return [self.config_file(p) for p in self.busybox_config_paths]
        return self.kmod_config_files

    @cached_property
    def kmod_config_files(self) -> list[ConfigFile]:
        """The files kmod reads, in its order: every name once, from the first directory that has it.

        kmod (libkmod-config.c conf_files_list) takes names ending in `.conf` (and `.alias` before kmod 33)
        that do not start with a dot, sorted by name over all directories. A name that is a symlink to
        /dev/null counts like any other: it is read as empty and masks the same name in later directories.
        """
        masks = set(self.raw.flag_values("chardev"))
        chosen: dict[str, str] = {}
        for directory in kmod_config_dirs(self.kmod_version):
            prefix = directory + "/"
            names = [p for p in self.files_in(directory) if self.kmod_reads_name(PurePosixPath(p).name)]
            names += [p for p in masks if p.startswith(prefix) and self.kmod_reads_name(p[len(prefix):])]
            for path in sorted(names):
                chosen.setdefault(PurePosixPath(path).name, path)
        return [self.config_file(chosen[name]) for name in sorted(chosen)]

    def kmod_skipped_files(self) -> list[str]:
        """Each modprobe.d file the host has that kmod does not read, and the kmod behaviour that skips it."""
        version = f"kmod {self.kmod_version}" if self.kmod_version else "kmod"
        dirs = kmod_config_dirs(self.kmod_version)
        read = {PurePosixPath(f.path).name: f.path for f in self.kmod_config_files}
        masks = set(self.raw.flag_values("chardev"))
        found = []
        for path in sorted({p for d in KMOD_CONFIG_DIRS for p in self.files_in(d)} | masks):
            directory, _, name = path.rpartition("/")
            if path == read.get(name):
                if path in masks:
                    found.append(f"{path} is a symlink to /dev/null: {version} reads it as empty, and it masks "
                                 f"{name} in every later directory")
                continue
            if directory not in dirs and self.raw.file("/lib/modprobe.d/" + name) == self.raw.file(path):
                continue  # merged /usr: the same file, read through /lib
            if directory not in dirs:
                found.append(f"{path}: {version} does not read {directory} (read from kmod 32 on, or through /lib "
                             "on a merged-/usr host)")
            elif not self.kmod_reads_name(name):
                kinds = "*.conf and *.alias" if (self.kmod_version or 0) < 33 else "*.conf"
                found.append(f"{path}: {version} reads only {kinds} files not starting with a dot")
            elif path not in masks:
                found.append(f"{path}: masked by {read[name]} ({version} reads each file name once, from the first "
                             "of /etc, /run, /usr/local/lib, /lib modprobe.d that has it)")
        return found

    def kmod_reads_name(self, name: str) -> bool:
        """kmod's conf_files_filter_out, inverted: `.conf`, or `.alias` up to kmod 32 (dropped in 29cc8c2)."""
        if "/" in name or name.startswith(".") or len(name) < 6:
            return False
        alias_too = self.kmod_version is None or self.kmod_version < 33
        return name.endswith(".conf") or (alias_too and name.endswith(".alias"))

    @cached_property
    def modprobe(self) -> list[ModprobeDirective]:
        if self.modprobe_impl == "busybox":
            return [d for f in self.modprobe_files for d in parse_busybox_conf(f.text, f.path)]
        eof = KMOD_BACKSLASH_AT_EOF if self.modprobe_impl == "kmod" and (self.kmod_version or 34) < 34 else ""
        return [d for f in self.modprobe_files for d in parse_modprobe_conf(f.text, f.path, eof)]

    def module_key(self, name: str) -> str:
        """A module name as this host's modprobe compares it (busybox also cuts `.ko`)."""
        return busybox_modname(name) if self.modprobe_impl == "busybox" else normalize_module(name)

    def directives(self, keyword: str, module: str | None = None) -> list[ModprobeDirective]:
        wanted = self.module_key(module) if module else None
        return [
            d
            for d in self.modprobe
            if d.keyword == keyword and (wanted is None or self.module_key(d.module) == wanted)
        ]

    # -- busybox modprobe (Alpine) ----------------------------------------------------------
    @cached_property
    def busybox_config_paths(self) -> list[str]:
        """/etc/modprobe.conf, then the `*.conf` of /etc/modprobe.d that busybox reads, in directory order."""
        readable = {p for p in self.files_in("/etc/modprobe.d") if busybox_reads(p)}
        listed = self.raw.output("readdir /etc/modprobe.d")
        order = [line for line in (listed or "").split("\n") if line in readable]
        order += sorted(readable - set(order))  # no listing (older snapshots): sorted, the old guess
        head = ["/etc/modprobe.conf"] if self.raw.file("/etc/modprobe.conf") is not None else []
        return head + order

    @property
    def busybox_order_known(self) -> bool:
        return self.raw.output("readdir /etc/modprobe.d") is not None

    @cached_property
    def busybox_dep_modules(self) -> frozenset[str] | None:
        """Names in modules.dep that config alias lines point to (None: not collected)."""
        text = self.raw.output("modules.dep")
        return busybox_dep_modules(text) if text is not None else None

    def busybox_by_name(self, name: str) -> list[str]:
        """What `modprobe NAME` loads here (modules known from modules.dep, modules.alias and the kernel)."""
        known = (self.busybox_dep_modules or frozenset()) | {busybox_modname(a.module) for a in self.aliases}
        return busybox_by_name(name, self.modprobe, [(a.pattern, a.module) for a in self.aliases],
                               self.busybox_dep_modules, self.raw.file("/proc/cmdline") or "", frozenset(known))

    def busybox_probe(self, modalias: str) -> BusyboxProbe:
        return busybox_coldplug(modalias, self.modprobe, [(a.pattern, a.module) for a in self.aliases],
                                self.busybox_dep_modules, self.raw.file("/proc/cmdline") or "")

    @cached_property
    def module_load_files(self) -> list[ConfigFile]:
        """Files that name modules to load at boot, in the order the boot reads them."""
        chosen: dict[str, str] = {}
        for directory in MODULES_LOAD_DIRS:
            for path in self.files_in(directory, suffix=".conf"):
                chosen.setdefault(PurePosixPath(path).name, path)
        listed = [self.config_file(chosen[name]) for name in sorted(chosen)]
        etc_modules = self.raw.file("/etc/modules")
        if etc_modules is None:
            return listed
        # Debian's /etc/modules-load.d/modules.conf is a symlink to /etc/modules: count it once.
        listed = [f for f in listed if not (f.path.endswith("/modules.conf") and f.text == etc_modules)]
        # Alpine's modules service reads /etc/modules before /etc/modules-load.d.
        return [self.config_file("/etc/modules"), *listed]

    @cached_property
    def module_load_lines(self) -> list[ModuleLoadLine]:
        return [ln for f in self.module_load_files for ln in parse_modules_load(f.text, f.path)]

    @cached_property
    def initramfs_modules(self) -> list[ModuleLoadLine]:
        """/etc/initramfs-tools/modules: loaded inside the initramfs, arguments allowed."""
        text = self.raw.file("/etc/initramfs-tools/modules")
        return parse_modules_load(text, "/etc/initramfs-tools/modules") if text is not None else []

    def files_in(self, directory: str, suffix: str = "") -> list[str]:
        prefix = directory.rstrip("/") + "/"
        return sorted(
            p
            for p, f in self.raw.files.items()
            if p.startswith(prefix) and "/" not in p[len(prefix) :] and p.endswith(suffix) and f.content is not None
        )

    def config_file(self, path: str) -> ConfigFile:
        fact = self.raw.files.get(path) or FileFact(path=path)
        return ConfigFile(path, fact.content or "", fact.mtime)

    # -- modules of the running kernel ----------------------------------------------------
    @cached_property
    def aliases(self) -> list[ModuleAlias]:
        return parse_modules_alias(self.raw.output("modules.alias") or "")

    @cached_property
    def builtin_aliases(self) -> list[ModuleAlias]:
        """PCI aliases of built-in drivers, from modules.builtin.modinfo (modules.alias lists loadable ones only)."""
        return parse_builtin_modinfo_aliases(self.raw.output("modules.builtin.modinfo") or "")

    @cached_property
    def builtin_modules(self) -> frozenset[str]:
        listed = parse_modules_builtin(self.raw.file(f"/lib/modules/{self.kernel}/modules.builtin") or "")
        return listed | {normalize_module(a.module) for a in self.builtin_aliases}

    def real_modules(self, name: str) -> tuple[str, ...]:
        """The real module(s) a name stands for: itself if it is one, else what its alias resolves to."""
        resolved = tuple(normalize_module(m) for m in resolve_alias(name, self.aliases))
        return resolved or (normalize_module(name),)

    @cached_property
    def loaded_modules(self) -> frozenset[str]:
        text = self.raw.file("/proc/modules") or ""
        return frozenset(normalize_module(line.split()[0]) for line in text.splitlines() if line.split())

    # -- PCI ------------------------------------------------------------------------------
    @cached_property
    def pci(self) -> dict[Bdf, PciSysfs]:
        out = {}
        for name, dev in self.raw.pci.items():
            bdf = safe_bdf(name)
            if bdf is not None:
                out[bdf] = dev
        return out

    @cached_property
    def lspci(self) -> dict[Bdf, LspciDevice]:
        return parse_lspci_k(self.raw.output("lspci -k") or "")

    def chain(self, bdf: Bdf) -> list[Bdf]:
        """The device, then each upstream bridge, from its sysfs path (pciback walks the same way)."""
        dev = self.pci.get(bdf)
        if dev is None:
            return [bdf]
        parts = [safe_bdf(p) for p in reversed(dev.path.split("/"))]
        found = [b for b in parts if b is not None]
        return found or [bdf]

    def native_modules(self, bdf: Bdf) -> tuple[str, ...]:
        """Modules that would claim the device by its modalias (what hwdrivers/udev load, and built-in drivers)."""
        dev = self.pci.get(bdf)
        names: list[str] = []
        if dev and dev.modalias:
            names += [normalize_module(m) for m in resolve_alias(dev.modalias, self.aliases)]
            names += [normalize_module(m) for m in resolve_alias(dev.modalias, self.builtin_aliases)]
        if bdf in self.lspci:
            names += [normalize_module(m) for m in self.lspci[bdf].modules]
        skip = {PCIBACK, "pciback", "pci_stub", "vfio_pci"}
        return tuple(dict.fromkeys(n for n in names if n not in skip))

    # -- pciback and xl -------------------------------------------------------------------
    @property
    def pciback_builtin(self) -> bool:
        return "builtin" in self.raw.flag_values("pciback_module") or PCIBACK in self.builtin_modules

    @property
    def pciback_loaded(self) -> bool:
        return bool(self.raw.flag_values("pciback_driver")) or PCIBACK in self.loaded_modules

    @cached_property
    def pciback_slots(self) -> list[Bdf]:
        text = self.raw.file("/sys/bus/pci/drivers/pciback/slots") or ""
        return [b for b in (safe_bdf(line) for line in text.splitlines()) if b is not None]

    @property
    def xl_present(self) -> bool:
        return self.raw.output("xl info") is not None or self.raw.output("xl pci-assignable-list") is not None

    @cached_property
    def assignable(self) -> list[AssignableEntry]:
        return parse_assignable_list(self.raw.output("xl pci-assignable-list") or "")

    @cached_property
    def attached(self) -> dict[str, list[PciListEntry]]:
        """Domain name -> devices attached to it (`xl pci-list`)."""
        prefix = "xl pci-list "
        return {
            name[len(prefix) :]: parse_pci_list(cmd.output or "")
            for name, cmd in self.raw.commands.items()
            if name.startswith(prefix)
        }

    @cached_property
    def xl_info(self) -> dict[str, str]:
        return parse_xl_info(self.raw.output("xl info") or "")

    # -- domU configs ---------------------------------------------------------------------
    @cached_property
    def domu_configs(self) -> dict[str, DomuConfig]:
        paths = [p for p in self.raw.files if p.startswith("/etc/xen/") or p in self.requested_domus]
        return {p: parse_xl_cfg(self.raw.files[p].content or "") for p in sorted(paths) if self.raw.file(p) is not None}

    @property
    def requested_domus(self) -> list[str]:
        return self.raw.flags.get("requested_domu", [])

    # -- initramfs ------------------------------------------------------------------------
    def image_candidates(self) -> list[str]:
        if not self.kernel:
            return []
        by_family = {
            "alpine": [f"/boot/initramfs-{self.flavor}"],
            "debian": [f"/boot/initrd.img-{self.kernel}"],
            "dracut": [f"/boot/initramfs-{self.kernel}.img"],
        }
        generic = [f"/boot/initrd.img-{self.kernel}", f"/boot/initramfs-{self.kernel}.img",
                   f"/boot/initramfs-{self.flavor}"]
        return list(dict.fromkeys(by_family.get(self.distro, []) + generic))

    @cached_property
    def boot_image(self) -> Image | None:
        for path in self.image_candidates():
            stat = self.raw.boot.get(path)
            if stat is None and path not in self.raw.initramfs:
                continue
            data = self.raw.initramfs.get(path)
            content = None
            if data is not None:
                content = InitramfsContent(
                    segments=tuple(data.get("segments", ())),
                    member_count=data.get("member_count", 0),
                    config_files=dict(data.get("config_files", {})),
                    error=data.get("error"),
                    modules=tuple(data.get("modules", ())),
                    reader=data.get("reader"),
                )
            return Image(path, stat.mtime if stat else None, stat.size if stat else None, content)
        return None


    # -- storage: what a device holds up ----------------------------------------------------
    def pairs(self, flag: str) -> list[tuple[str, str]]:
        return [tuple(v.split("|", 1)) for v in self.raw.flag_values(flag) if "|" in v]  # type: ignore[misc]

    @cached_property
    def traced_storage(self) -> list[tuple[Use, frozenset[str]]]:
        """Every mount and swap on a device node, with the disks (that hang off PCI) it sits on."""
        uses = parse_mounts(self.raw.file("/proc/mounts") or "") + parse_swaps(self.raw.file("/proc/swaps") or "")
        return [(use, frozenset(self.disks_under(self.block_name(use.source)))) for use in uses]

    def block_name(self, source: str) -> str:
        """`/dev/sda1` -> `sda1`; `/dev/mapper/vg-root` -> `dm-0` (by its device-mapper name)."""
        if source.startswith("/dev/mapper/"):
            name = source.removeprefix("/dev/mapper/")
            return next((dev for dev, dm in self.pairs("dmname") if dm == name), name)
        return source.removeprefix("/dev/")

    def disks_under(self, name: str, depth: int = 0) -> set[str]:
        """The PCI-attached disks a block device sits on: itself, its partition's disk, or every disk under a
        device-mapper or md device. Empty when it cannot be traced."""
        if depth > 8:
            return set()
        if name in self.raw.block:
            return {name}
        parent = next((disk for disk, part in self.pairs("partition") if part == name), None)
        if parent:
            return self.disks_under(parent, depth + 1)
        slaves = [slave for dev, slave in self.pairs("slave") if dev == name]
        if slaves:
            return set().union(*(self.disks_under(s, depth + 1) for s in slaves))
        # snapshots from before partitions were collected: sda1 -> sda, nvme0n1p2 -> nvme0n1
        return {d for d in self.raw.block if name.startswith(d) and re.fullmatch(r"p?\d+", name[len(d):])}

    def storage_behind(self, bdf: Bdf) -> list[str]:
        """Mounts and swap whose disk hangs off `bdf` or off a device behind it (`bdf` a bridge)."""
        return [str(use) for use, disks in self.traced_storage
                if any(f"/{bdf}/" in self.raw.block[d] + "/" for d in disks)]

    @property
    def untraced_storage(self) -> list[str]:
        """Mounts and swap on device nodes whose disk could not be found (e.g. /dev/root)."""
        return [str(use) for use, disks in self.traced_storage if not disks]


KMOD_BACKSLASH_AT_EOF = "\udcff"  # kmod < 34 keeps the EOF after a last backslash as byte 0xFF


def kmod_config_dirs(version: int | None) -> tuple[str, ...]:
    """The modprobe.d directories this kmod version reads: /usr/lib/modprobe.d only from kmod 32 on."""
    if version is not None and version < 32:
        return tuple(d for d in KMOD_CONFIG_DIRS if d != "/usr/lib/modprobe.d")
    return KMOD_CONFIG_DIRS


def _leading_int(text: str) -> int | None:
    digits = text.split(".")[0]
    return int(digits) if digits.isdigit() else None


def xen_pci_devices(facts: HostFacts) -> list[Bdf]:
    """DEVICES="..." of Alpine's /etc/conf.d/xen-pci (xl pci-assignable-add at boot)."""
    text = facts.raw.file("/etc/conf.d/xen-pci") or ""
    out: list[Bdf] = []
    for line in text.splitlines():
        key, _, value = line.strip().partition("=")
        if key.strip() == "DEVICES":
            out += [b for b in (safe_bdf(w) for w in value.strip().strip("\"'").split()) if b is not None]
    return out
