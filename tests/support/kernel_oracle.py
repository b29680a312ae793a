"""The Linux kernel as the oracle for initramfs images: boot it in QEMU (TCG, no Xen) on probe + image.

The initrd QEMU hands the kernel is a probe archive followed by the image under test. The probe is a plain newc
archive placed first, so the kernel unpacks it whatever the image does next; it holds a static busybox and an
/.probe/init that prints every regular file and symlink the kernel left in its rootfs, between markers, then powers
off. The console also carries the kernel's own verdict: "Initramfs unpacking failed: <reason>".

The lab's dom0 kernel (Debian 12, Linux 6.1) is used: XENPASS_LAB_KERNEL names it, else <repo>/.lab/boot/vmlinuz.
Its compressed payload is unpacked once to an ELF vmlinux, which QEMU boots through the PVH entry point: that skips
the firmware and the kernel's self-decompression, half of each boot under TCG.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.edge_images import DIR, Member, newc

ROOT = Path(__file__).resolve().parents[2]
BUSYBOX = Path("/bin/busybox")
BEGIN, END = "@@XP-BEGIN", "@@XP-END"
FAILED = re.compile(r"Initramfs unpacking failed: (.*)")
INIT = f"""#!/.probe/busybox sh
B=/.probe/busybox
cd /
$B echo {BEGIN}
$B find . -path ./.probe -prune -o -type f -print | while read -r f; do
  s=$($B stat -c %s "$f"); h=$($B sha256sum "$f"); $B echo "F ${{h%% *}} $s ${{f#./}}"
done
$B find . -path ./.probe -prune -o -type l -print | while read -r f; do $B echo "L $($B readlink "$f") ${{f#./}}"; done
$B echo {END}
$B poweroff -f
"""


def lab_kernel() -> Path:
    return Path(os.environ.get("XENPASS_LAB_KERNEL") or ROOT / ".lab" / "boot" / "vmlinuz")


@dataclass(frozen=True)
class KernelView:
    files: dict[str, tuple[int, str]]  # regular files: path -> (size, sha256)
    symlinks: dict[str, str]
    error: str | None  # the kernel's "Initramfs unpacking failed" reason
    seconds: float
    console: str


def probe_archive() -> bytes:
    init = Member(".probe/init", INIT.encode(), mode=0o100755)
    busybox = Member(".probe/busybox", BUSYBOX.read_bytes(), mode=0o100755)
    return newc([Member(".probe", mode=DIR, nlink=2), busybox, init])


def elf_kernel(bzimage: Path, cache: Path) -> Path:
    """The kernel's ELF image, unpacked from the bzImage's xz payload (Debian builds it with xz)."""
    data = bzimage.read_bytes()
    out = cache / f"vmlinux-{hashlib.sha256(data).hexdigest()[:16]}"
    if not out.exists():
        start = data.find(b"\xfd7zXZ\x00")
        if start < 0:
            raise RuntimeError(f"{bzimage}: no xz payload; boot it with -kernel {bzimage} instead")
        tmp = out.with_suffix(".tmp")
        tmp.write_bytes(lzma.LZMADecompressor().decompress(data[start:]))
        tmp.rename(out)
    return out


def boot(kernel: Path, image: bytes, memory_mib: int = 256, timeout: float = 300) -> KernelView:
    """Boot `kernel` with probe + image as its initrd and report what it unpacked."""
    probe = probe_archive()
    with tempfile.NamedTemporaryFile(suffix=".initrd") as initrd:
        initrd.write(probe)
        initrd.write(image)
        initrd.flush()
        argv = ["qemu-system-x86_64", "-m", f"{memory_mib}M", "-kernel", str(kernel), "-initrd", initrd.name,
                "-append", "console=ttyS0 rdinit=/.probe/init panic=-1 quiet", "-nographic", "-no-reboot",
                "-nodefaults", "-serial", "stdio", "-display", "none"]
        start = time.monotonic()
        done = subprocess.run(argv, capture_output=True, timeout=timeout)
        seconds = time.monotonic() - start
    console = done.stdout.decode("utf-8", errors="replace").replace("\r", "")
    return parse_console(console, seconds)


def parse_console(console: str, seconds: float) -> KernelView:
    if BEGIN not in console or END not in console:
        raise RuntimeError(f"the probe did not report (kernel console tail: {console[-1500:]!r})")
    listing = console.split(BEGIN, 1)[1].split(END, 1)[0]
    files: dict[str, tuple[int, str]] = {}
    links: dict[str, str] = {}
    for line in listing.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "F":
            digest, size, name = rest.split(" ", 2)
            files[name] = (int(size), digest)
        elif kind == "L":
            target, _, name = rest.rpartition(" ")
            links[name] = target
    failed = FAILED.search(console)
    return KernelView(files, links, failed.group(1).strip() if failed else None, seconds, console)


__all__ = ["KernelView", "boot", "elf_kernel", "lab_kernel", "parse_console", "probe_archive"]


RECORD = Path(__file__).with_name("kernel_unpack_6.1.json")


def record(names: list[str]) -> dict[str, dict]:
    """Boot the kernel on each named edge case; what it unpacked, as the fast suite's recorded oracle."""
    from tests.support.edge_images import EDGE_CASES

    kernel = elf_kernel(lab_kernel(), Path(tempfile.gettempdir()))
    results: dict[str, dict] = {}
    for name in names:
        case = EDGE_CASES[name]
        seen = boot(kernel, case.build(), case.memory_mib)
        results[name] = {"error": seen.error, "files": seen.files, "symlinks": seen.symlinks,
                         "seconds": round(seen.seconds, 1)}
        print(f"{name}: {seen.error or 'unpacked'} ({seen.seconds:.1f} s)", flush=True)
    return results


if __name__ == "__main__":  # python -m tests.support.kernel_oracle [CASE...]: re-record the kernel's answers
    import json
    import sys

    from tests.support.edge_images import EDGE_CASES

    kept = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    kept.update(record(sys.argv[1:] or list(EDGE_CASES)))
    RECORD.write_text(json.dumps(kept, indent=1, sort_keys=True) + "\n")
