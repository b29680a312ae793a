"""Initramfs images that probe how the Linux kernel unpacks (init/initramfs.c, v6.1): one builder per case.

Used by the differential tests (the reader against GNU cpio and unmkinitramfs) and by the lab test that boots the
real kernel on each image (tests/lab/test_kernel_unpack.py). Every image is built from scratch with the real
compressors (gzip, bzip2, xz, lzop, lz4, zstd command-line tools) or Python's, so nothing is a stored blob.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
import stat
import struct
import subprocess
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

REG = stat.S_IFREG | 0o644
DIR = stat.S_IFDIR | 0o755
LNK = stat.S_IFLNK | 0o777
FIFO = stat.S_IFIFO | 0o644


@dataclass
class Member:
    """One newc entry; the overrides let a case write a header the way a broken or exotic writer would."""

    name: str | bytes
    data: bytes = b""
    mode: int = REG
    ino: int = 0  # 0: a fresh number
    nlink: int = 1
    mtime: int = 1_700_000_000
    namesize: int | None = None  # None: len(name) + 1, the terminating NUL included
    check: int | None = None  # None: the byte sum of data for 070702, 0 for 070701


def directory(name: str) -> Member:
    return Member(name, mode=DIR, nlink=2)


def symlink(name: str, target: str) -> Member:
    return Member(name, target.encode(), mode=LNK)


def newc(members: list[Member], magic: bytes = b"070701", trailer: bool = True, block: int = 512) -> bytes:
    """A newc (070701) or newc-with-crc (070702) archive, padded to `block` bytes like GNU cpio."""
    out = bytearray()
    entries = [*members, Member("TRAILER!!!", mode=0)] if trailer else list(members)
    for number, m in enumerate(entries, start=1):
        raw = m.name.encode() if isinstance(m.name, str) else m.name
        name = raw + b"\0"
        namesize = len(name) if m.namesize is None else m.namesize
        check = m.check if m.check is not None else (sum(m.data) & 0xFFFFFFFF if magic == b"070702" else 0)
        fields = [m.ino or number, m.mode, 0, 0, m.nlink, m.mtime, len(m.data), 8, 1, 0, 0, namesize, check]
        out += magic + b"".join(b"%08X" % f for f in fields)
        out += name if m.namesize is None else raw
        out += b"\0" * (-len(out) % 4)
        out += m.data
        out += b"\0" * (-len(out) % 4)
    out += b"\0" * (-len(out) % block)
    return bytes(out)


# --- compressors --------------------------------------------------------------------------------------


def run_tool(argv: list[str], data: bytes) -> bytes:
    if shutil.which(argv[0]) is None:
        raise FileNotFoundError(f"{argv[0]} is not installed (scripts/setup --system installs it)")
    return subprocess.run(argv, input=data, capture_output=True, check=True).stdout


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def bzip2(data: bytes) -> bytes:
    return bz2.compress(data)


def lzma_alone(data: bytes) -> bytes:
    return lzma.compress(data, format=lzma.FORMAT_ALONE)


def xz(data: bytes, check: int = lzma.CHECK_CRC32, filters: list[dict] | None = None) -> bytes:
    return lzma.compress(data, format=lzma.FORMAT_XZ, check=check, filters=filters)


def lzo(data: bytes) -> bytes:
    return run_tool(["lzop", "-c", "-q"], data)


def lz4_legacy(data: bytes) -> bytes:
    return run_tool(["lz4", "-l", "-c", "-q", "-"], data)


def lz4_frame(data: bytes) -> bytes:
    return run_tool(["lz4", "-c", "-q", "-"], data)


def zstd(data: bytes) -> bytes:
    return run_tool(["zstd", "-q", "-c", "-19"], data)


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gz, "bzip2": bzip2, "lzma": lzma_alone, "xz": xz, "lzo": lzo, "lz4": lz4_legacy, "zstd": zstd,
}


# --- the edge cases -----------------------------------------------------------------------------------

CONF = b"options xen-pciback hide=(0000:00:05.0)\n"
BLACKLIST = b"blacklist mptsas\n"


def etc_tree(*extra: Member) -> list[Member]:
    """A small rootfs with a modprobe.d file, the shape every case varies."""
    return [directory("etc"), directory("etc/modprobe.d"),
            Member("etc/modprobe.d/xen-pciback.conf", CONF), *extra]


def plain() -> bytes:
    return newc([*etc_tree(Member("etc/hostname", b"dom0\n")), symlink("etc/link", "hostname")])


def early_then(compress: Callable[[bytes], bytes]) -> bytes:
    early = newc([directory("kernel"), directory("kernel/x86"), directory("kernel/x86/microcode"),
                  Member("kernel/x86/microcode/GenuineIntel.bin", b"\x01" * 1000)])
    return early + compress(newc(etc_tree(Member("etc/modprobe.d/blacklist.conf", BLACKLIST))))


def gzip_bad_crc() -> bytes:
    body = bytearray(gz(newc(etc_tree())))
    body[-8] ^= 0xFF  # the CRC32 of the trailer; the kernel's gunzip skips the trailer unread
    return bytes(body)


def gzip_with_name() -> bytes:
    body = gz(newc(etc_tree()))
    flagged = body[:3] + b"\x08" + body[4:10] + b"initrd\0" + body[10:]  # FNAME, as `gzip` writes it
    return flagged


def gzip_with_comment() -> bytes:
    body = gz(newc(etc_tree()))
    return body[:3] + b"\x10" + body[4:10] + b"made by hand\0" + body[10:]  # FCOMMENT: the kernel does not skip it


def crc_archive(bad: bool = False) -> bytes:
    members = etc_tree(Member("etc/hostname", b"dom0\n"))
    if bad:
        members[2] = Member(members[2].name, CONF, check=sum(CONF) + 1)
    return newc(members, magic=b"070702")


def name_without_nul() -> bytes:
    members = etc_tree()
    name = "etc/modprobe.d/xen-pciback.conf"
    members[2] = Member(name, CONF, namesize=len(name))  # the NUL left out of namesize
    return newc([*members, Member("etc/after", b"x")])


def truncated_plain(keep: int) -> bytes:
    image = newc(etc_tree(Member("etc/big", b"B" * 3000), Member("etc/last", b"L")))
    return image[:keep]


def truncated_in_body() -> bytes:
    image = newc(etc_tree(Member("etc/big", b"B" * 3000), Member("etc/last", b"L")))
    return image[:image.index(b"B" * 8) + 1000]  # mid-way through etc/big's data


def truncated_in_header() -> bytes:
    image = newc(etc_tree(Member("etc/big", b"B" * 3000), Member("etc/last", b"L")))
    return image[:image.index(b"etc/last") - 60]


def truncated_compressed() -> bytes:
    body = gz(newc(etc_tree(Member("etc/big", bytes(range(256)) * 64))))
    return body[:len(body) // 2]


def compressed_ends_mid_entry() -> bytes:
    archive = newc(etc_tree(Member("etc/big", b"B" * 3000)), trailer=False, block=4)
    return gz(archive[:-1500])  # a complete gzip stream whose content stops inside etc/big


def garbage_after_trailer_plain() -> bytes:
    return newc(etc_tree()) + b"GARBAGE!" * 8


def garbage_after_trailer_compressed() -> bytes:
    return gz(newc(etc_tree()) + b"GARBAGE!" * 8)


def garbage_after_compressed() -> bytes:
    return gz(newc(etc_tree())) + b"\0\0\0\0GARBAGE!"


def unaligned_padding() -> bytes:
    first = newc(etc_tree(), block=4)
    return first + b"\0\0" + newc([Member("etc/second", b"2")])


def no_padding_between() -> bytes:
    return newc(etc_tree(), block=4) + newc([Member("etc/second", b"2")])


def hardlinks(data_on_last: bool) -> bytes:
    first, last = (b"", CONF) if data_on_last else (CONF, b"")
    return newc([*etc_tree()[:2], Member("etc/modprobe.d/a.conf", first, ino=77, nlink=2),
                 Member("etc/modprobe.d/b.conf", last, ino=77, nlink=2)])


def hardlink_rewritten_later() -> bytes:
    # archive 1 links a.conf and b; archive 2 rewrites b, which the kernel opens O_TRUNC: a.conf changes too
    first = newc([*etc_tree()[:2], Member("etc/modprobe.d/a.conf", CONF, ino=5, nlink=2),
                  Member("etc/b", b"", ino=5, nlink=2)])
    return first + newc([Member("etc/b", BLACKLIST)])


def hardlink_same_name_twice() -> bytes:
    # the kernel's find_link() hands back the name itself; clean_path() then removes it and the link fails
    return newc([*etc_tree()[:2], Member("etc/modprobe.d/a.conf", CONF, ino=9, nlink=2),
                 Member("etc/modprobe.d/a.conf", b"", ino=9, nlink=2), Member("etc/after", b"a")])


def replaced_types() -> bytes:
    first = newc([*etc_tree(), directory("etc/was-dir"), Member("etc/was-file", b"f"),
                  Member("etc/was-link-target", b"t"), symlink("etc/was-link", "was-link-target"),
                  directory("etc/full-dir"), Member("etc/full-dir/inside", b"i")])
    second = newc([Member("etc/was-dir", b"now a file"), directory("etc/was-file"),
                   Member("etc/was-link", b"now a file too"), Member("etc/full-dir", b"cannot replace")])
    return first + second


def symlinked_dir() -> bytes:
    # Debian's merged /usr: lib -> usr/lib, so lib/modprobe.d/x.conf lands in usr/lib/modprobe.d
    return newc([directory("usr"), directory("usr/lib"), symlink("lib", "usr/lib"),
                 directory("lib/modprobe.d"), Member("lib/modprobe.d/x.conf", BLACKLIST)])


def missing_parent() -> bytes:
    return newc([Member("etc/modprobe.d/orphan.conf", BLACKLIST), Member("top", b"t")])


def odd_names() -> bytes:
    return newc([directory("./etc"), directory("etc//modprobe.d"), Member("/etc/modprobe.d/abs.conf", CONF),
                 Member("../../etc/modprobe.d/up.conf", BLACKLIST), Member("./etc/./dot", b"d")])


def dir_with_body() -> bytes:
    return newc([*etc_tree(), Member("etc/dir-with-data", b"data!", mode=DIR), Member("etc/fifo", b"", mode=FIFO)])


def long_name() -> bytes:
    return newc([*etc_tree(), Member("etc/" + "n" * 4100, b"too long"), Member("etc/after", b"a")])


def old_format() -> bytes:
    return run_tool(["cpio", "-o", "-H", "odc", "--quiet"], b"")  # an empty odc archive: magic 070707


def empty_file_and_zero_image() -> bytes:
    return b"\0" * 64 + newc([*etc_tree(), Member("etc/empty", b"")]) + b"\0" * 1024


def several_archives_in_one_stream() -> bytes:
    return zstd(newc(etc_tree()) + b"\0" * 12 + newc([Member("etc/modprobe.d/second.conf", BLACKLIST)]))


def no_trailer(compress: Callable[[bytes], bytes] | None) -> bytes:
    archive = newc(etc_tree(Member("etc/end", b"e")), trailer=False, block=4)
    return compress(archive) if compress else archive


def large_file() -> bytes:
    return gz(newc([*etc_tree(), Member("big.bin", bytes(range(251)) * (40 * 4096))]))


def inflates_past(mib: int) -> bytes:
    # mib MiB of zeros in one file, written through zlib in pieces so the test never holds it whole
    header = newc([Member("huge.bin", b"")], trailer=False, block=4)
    size = mib << 20
    name = b"huge.bin\0"
    fields = [1, REG, 0, 0, 1, 1_700_000_000, size, 8, 1, 0, 0, len(name), 0]
    header = b"070701" + b"".join(b"%08X" % f for f in fields) + name
    header += b"\0" * (-len(header) % 4)
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [comp.compress(header)]
    zeros = bytes(1 << 20)
    parts += [comp.compress(zeros) for _ in range(mib)]
    parts.append(comp.compress(newc(etc_tree())))
    parts.append(comp.flush())
    return b"".join(parts)


def lz4_multi_block() -> bytes:
    return lz4_legacy(newc([*etc_tree(), Member("rand", _noise(9 << 20))]))  # over 8 MiB: two blocks


def lz4_then_gzip(padding: int) -> bytes:
    # the kernel's unlz4 has no end marker: it stops at the end of the data or at a zero chunk size
    first = lz4_legacy(newc(etc_tree()))
    return first + b"\0" * padding + gz(newc([Member("etc/modprobe.d/later.conf", BLACKLIST)]))


def _noise(n: int) -> bytes:
    out = bytearray()
    state = 1
    while len(out) < n:
        state = (state * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
        out += struct.pack("<Q", state)
    return bytes(out[:n])


@dataclass(frozen=True)
class EdgeCase:
    build: Callable[[], bytes]
    ci: bool = True  # in the lab's CI subset (each kernel boot costs ~5 s)
    memory_mib: int = 256  # the guest's RAM: the kernel's rootfs lives in it
    note: str = field(default="")


EDGE_CASES: dict[str, EdgeCase] = {
    "plain": EdgeCase(plain, ci=False),
    "crc-070702": EdgeCase(crc_archive),
    "crc-070702-bad-checksum": EdgeCase(lambda: crc_archive(bad=True)),
    "crc-after-newc": EdgeCase(lambda: plain() + crc_archive(), ci=False),
    "gzip": EdgeCase(lambda: early_then(gz)),
    "gzip-bad-crc": EdgeCase(gzip_bad_crc),
    "gzip-fname": EdgeCase(gzip_with_name, ci=False),
    "gzip-fcomment": EdgeCase(gzip_with_comment, ci=False),
    "bzip2": EdgeCase(lambda: early_then(bzip2), ci=False),
    "lzma": EdgeCase(lambda: early_then(lzma_alone), ci=False),
    "xz-crc32": EdgeCase(lambda: early_then(xz)),
    "xz-crc64": EdgeCase(lambda: early_then(lambda d: xz(d, lzma.CHECK_CRC64))),
    "xz-sha256": EdgeCase(lambda: early_then(lambda d: xz(d, lzma.CHECK_SHA256)), ci=False),
    "xz-no-check": EdgeCase(lambda: early_then(lambda d: xz(d, lzma.CHECK_NONE)), ci=False),
    "xz-x86-bcj": EdgeCase(lambda: early_then(lambda d: xz(d, filters=[{"id": lzma.FILTER_X86},
                                                                           {"id": lzma.FILTER_LZMA2}])), ci=False),
    "xz-arm-bcj": EdgeCase(lambda: early_then(lambda d: xz(d, filters=[{"id": lzma.FILTER_ARM},
                                                                           {"id": lzma.FILTER_LZMA2}])), ci=False),
    "lzo": EdgeCase(lambda: early_then(lzo)),
    "lz4-legacy": EdgeCase(lambda: early_then(lz4_legacy), ci=False),
    "lz4-legacy-multi-block": EdgeCase(lz4_multi_block, ci=False),
    "lz4-then-gzip": EdgeCase(lambda: lz4_then_gzip(0), ci=False),
    "lz4-zero-padded-then-gzip": EdgeCase(lambda: lz4_then_gzip(4), ci=False),
    "lz4-frame": EdgeCase(lambda: early_then(lz4_frame), ci=False),
    "zstd": EdgeCase(lambda: early_then(zstd)),
    "zstd-several-archives": EdgeCase(several_archives_in_one_stream, ci=False),
    "name-without-nul": EdgeCase(name_without_nul),
    "truncated-plain-in-body": EdgeCase(truncated_in_body),
    "truncated-plain-in-header": EdgeCase(truncated_in_header, ci=False),
    "truncated-gzip": EdgeCase(truncated_compressed, ci=False),
    "compressed-ends-mid-entry": EdgeCase(compressed_ends_mid_entry, ci=False),
    "garbage-after-trailer-plain": EdgeCase(garbage_after_trailer_plain, ci=False),
    "garbage-after-trailer-compressed": EdgeCase(garbage_after_trailer_compressed),
    "garbage-after-compressed": EdgeCase(garbage_after_compressed, ci=False),
    "unaligned-padding": EdgeCase(unaligned_padding, ci=False),
    "no-padding-between-archives": EdgeCase(no_padding_between, ci=False),
    "no-trailer-plain": EdgeCase(lambda: no_trailer(None)),
    "no-trailer-gzip": EdgeCase(lambda: no_trailer(gz), ci=False),
    "hardlinks-data-on-last": EdgeCase(lambda: hardlinks(True), ci=False),
    "hardlinks-data-on-first": EdgeCase(lambda: hardlinks(False), ci=False),
    "hardlink-rewritten-later": EdgeCase(hardlink_rewritten_later),
    "hardlink-same-name-twice": EdgeCase(hardlink_same_name_twice, ci=False),
    "replaced-types": EdgeCase(replaced_types),
    "symlinked-dir": EdgeCase(symlinked_dir),
    "missing-parent-dir": EdgeCase(missing_parent),
    "odd-names": EdgeCase(odd_names, ci=False),
    "dir-with-body-and-fifo": EdgeCase(dir_with_body, ci=False),
    "name-longer-than-path-max": EdgeCase(long_name, ci=False),
    "old-odc-format": EdgeCase(old_format, ci=False),
    "empty-gzip-after-plain": EdgeCase(lambda: plain() + gz(b""), ci=False),
    "zero-padding-around": EdgeCase(empty_file_and_zero_image, ci=False),
    "large-file-40mib": EdgeCase(large_file, ci=False),
    "inflates-past-512mib": EdgeCase(lambda: inflates_past(600), ci=False, memory_mib=1536),
}
