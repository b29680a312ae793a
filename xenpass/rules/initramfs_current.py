"""initramfs-current — seed step 5: the initramfs was rebuilt after the blacklist, and carries it."""

from __future__ import annotations

from datetime import UTC, datetime

from xenpass.facts.host import PCIBACK, HostFacts, Image
from xenpass.parse.bdf import Bdf
from xenpass.parse.modprobe import ModprobeDirective, normalize_module, parse_modprobe_conf
from xenpass.parse.modules_load import parse_modules_load
from xenpass.rules.base import Context, Evidence, Rule, Status, Verdict

# What the initramfs tools copy into the image (mkinitfs base.files, mkinitramfs, dracut hostonly).
COPIED_PREFIXES = ("/etc/modprobe.d/", "/lib/modprobe.d/", "/usr/lib/modprobe.d/", "/etc/modprobe.conf")


def key(d: ModprobeDirective) -> tuple[str, str, str]:
    return d.keyword, normalize_module(d.module), " ".join(d.args.replace("-", "_").split())


def relevant(facts: HostFacts, bdf: Bdf, directives: list[ModprobeDirective]) -> list[ModprobeDirective]:
    """Directives about the device's native modules or xen-pciback, aliases resolved."""
    names = set(facts.native_modules(bdf)) | {PCIBACK}
    return [d for d in directives if normalize_module(d.module) in names
            or names & set(facts.real_modules(normalize_module(d.module)))]


def stamp(mtime: int | None) -> str:
    if mtime is None:
        return "unknown time"
    return datetime.fromtimestamp(mtime, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def image_directives(image: Image) -> list[ModprobeDirective]:
    assert image.content is not None
    return [d for path, text in sorted(image.content.config_files.items())
            if "modprobe" in path for d in parse_modprobe_conf(text, f"{image.path}!/{path}")]


def check(facts: HostFacts, bdf: Bdf, ctx: Context) -> Verdict:
    image = facts.boot_image
    if image is None:
        looked = ", ".join(facts.image_candidates()) or "(kernel release unknown)"
        listing = "\n".join(f"{p} ({f.size} bytes)" for p, f in sorted(facts.raw.boot.items()))
        return RULE.verdict(Status.FAIL, f"no initramfs for the running kernel {facts.kernel} in /boot "
                                         f"(looked for {looked})", Evidence("/boot", listing or "(empty)"))
    if image.content is None or image.content.error:
        why = image.content.error if image.content else "its content was not collected"
        return RULE.verdict(Status.FAIL, f"cannot read {image.path}: {why}",
                            Evidence(image.path, f"{image.size} bytes, {stamp(image.mtime)}"))
    host = [d for d in relevant(facts, bdf, facts.modprobe) if d.source.startswith(COPIED_PREFIXES)]
    inside = relevant(facts, bdf, image_directives(image))
    read_by = f"; read by {image.content.reader}" if image.content.reader else ""
    evidence = [Evidence(f"{image.path} ({stamp(image.mtime)}, {', '.join(image.content.segments)}{read_by})",
                         "\n".join(f"{d.source.split('!/')[-1]}: {d.raw.strip()}" for d in inside) or
                         "(no modprobe.d line about this device's modules)")]
    evidence += [Evidence(f"{d.source}:{d.lineno} ({stamp(facts.config_file(d.source).mtime)})", d.raw.strip())
                 for d in host]
    problems = stale(facts, image, host) + differences(host, inside, image) + load_list_differences(facts, bdf, image)
    if problems:
        return RULE.verdict(Status.FAIL, "; ".join(problems) + f"; rebuild the initramfs ({rebuild_hint(facts)})",
                            *evidence)
    if not host:
        return RULE.verdict(Status.PASS, f"no modprobe.d line affects {bdf}; {image.path} has nothing to carry",
                            *evidence)
    return RULE.verdict(Status.PASS, f"{image.path} (built {stamp(image.mtime)}) is newer than every relevant "
                                     "modprobe.d file and carries the same lines", *evidence)


def stale(facts: HostFacts, image: Image, host: list[ModprobeDirective]) -> list[str]:
    out = []
    for path in dict.fromkeys(d.source for d in host):
        mtime = facts.config_file(path).mtime
        if mtime is not None and image.mtime is not None and mtime > image.mtime:
            out.append(f"{path} ({stamp(mtime)}) is newer than {image.path} ({stamp(image.mtime)})")
    return out


def differences(host: list[ModprobeDirective], inside: list[ModprobeDirective], image: Image) -> list[str]:
    inside_keys = {key(d) for d in inside}
    host_keys = {key(d) for d in host}
    missing = [d for d in host if key(d) not in inside_keys]
    extra = [d for d in inside if key(d) not in host_keys]
    out = [f"{image.path} lacks `{d.raw.strip()}` ({d.source}:{d.lineno})" for d in missing]
    out += [f"{image.path} still has `{d.raw.strip()}`, which the host no longer has" for d in extra]
    return out


def load_list_differences(facts: HostFacts, bdf: Bdf, image: Image) -> list[str]:
    """initramfs-tools: the modules the image loads by name (conf/modules, copied from /etc/initramfs-tools/modules
    at build time) that matter here, xen-pciback and the device's native modules, as the host lists them now."""
    if facts.distro != "debian" or image.content is None:
        return []
    names = set(facts.native_modules(bdf)) | {PCIBACK}
    conf = image.content.config_files.get("conf/modules") or ""
    inside = [normalize_module(ln.module) for ln in parse_modules_load(conf, "conf/modules")]
    listed = [normalize_module(ln.module) for ln in facts.initramfs_modules]
    out = [f"{image.path} does not load {m} (its conf/modules), which /etc/initramfs-tools/modules lists"
           for m in dict.fromkeys(listed) if m in names and m not in inside]
    out += [f"{image.path} still loads {m} (its conf/modules), which /etc/initramfs-tools/modules no longer lists"
            for m in dict.fromkeys(inside) if m in names and m not in listed]
    return out


def rebuild_hint(facts: HostFacts) -> str:
    return {
        "alpine": f"mkinitfs -o /boot/initramfs-{facts.flavor} {facts.kernel}",
        "debian": f"update-initramfs -u -k {facts.kernel}",
        "dracut": f"dracut -f --kver {facts.kernel}",
    }.get(facts.distro, "with the distribution's initramfs tool")


RULE = Rule(
    id="initramfs-current",
    title="initramfs newer than the blacklist, and containing it",
    severity="critical",
    step="5: rebuild the initramfs (mkinitfs) after blacklisting",
    requires=("native-driver-blacklisted",),
    check=check,
    reads=("sysfs", "kernel-modules", "modprobe.d", "initramfs"),
    passes=(
        "the running kernel's initramfs is newer than every modprobe.d file about the device's modules and "
        'xen-pciback, and its embedded `etc/modprobe.d` holds the same lines (read on the host by '
        "its cpio and decompressor, segment by segment, or by xenpass's reader of newc over gzip, zstd, xz, lzma, "
        'bzip2, lz4; early cpio in front).'
    ),
    why=(
        "drivers for storage controllers load from the initramfs, before the root filesystem's modprobe.d is "
        'visible: a blacklist that is not inside the image does not stop them.'
    ),
    references=(
        'Linux init/initramfs.c and Documentation/driver-api/early-userspace/buffer-format.rst',
        'initramfs-tools(7), unmkinitramfs(8)',
        'mkinitfs(1)',
        'dracut.conf(5), lsinitrd(1)',
    ),
)
