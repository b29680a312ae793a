"""Tests for xenpass.parse.initramfs, on images built at test time with real compressors."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import posixpath
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lz4.block
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import edge_images as edge
from xenpass.parse.initramfs import InitramfsContent, detect_compression, read_initramfs

# --- a minimal newc writer -------------------------------------------------------------------------


@dataclass
class E:
    name: str
    data: bytes = b""
    mode: int = stat.S_IFREG | 0o644
    mtime: int = 1_700_000_000
    ino: int = 0
    nlink: int = 1
    magic: bytes = b"070701"


def _dir(name: str) -> E:
    return E(name, mode=stat.S_IFDIR | 0o755, nlink=2)


def _symlink(name: str, target: str) -> E:
    return E(name, target.encode(), mode=stat.S_IFLNK | 0o777)


def _pad(buf: bytearray, align: int) -> None:
    buf += b"\0" * (-len(buf) % align)


def with_parents(entries: list[E]) -> list[E]:
    """Each entry's missing parent directories first, as `find | cpio` writes them: the kernel creates none."""
    named = {posixpath.normpath(e.name) for e in entries}
    out: list[E] = []
    for e in entries:
        parts = posixpath.normpath(e.name).lstrip("/").split("/")[:-1]
        for k in range(1, len(parts) + 1):
            parent = "/".join(parts[:k])
            if parent not in named and parent not in (".", ".."):
                named.add(parent)
                out.append(_dir(parent))
        out.append(e)
    return out


def newc(entries: list[E], block: int = 512) -> bytes:
    """A newc archive (parent directories added) ending with TRAILER!!!, padded to `block` like GNU cpio."""
    entries = with_parents(entries)
    out = bytearray()
    for number, e in enumerate([*entries, E("TRAILER!!!", mode=0, nlink=1)], start=1):
        name = e.name.encode() + b"\0"
        fields = [e.ino or number, e.mode, 0, 0, e.nlink, e.mtime, len(e.data), 8, 1, 0, 0, len(name), 0]
        out += e.magic + b"".join(b"%08X" % f for f in fields) + name
        _pad(out, 4)
        out += e.data
        _pad(out, 4)
    _pad(out, block)
    return bytes(out)


# --- compressors: the real command-line tools, and the Python libraries ---------------------------

CLI = {
    "gzip": ["gzip", "-c", "-n", "-9"],
    "zstd": ["zstd", "-q", "-c", "-19"],
    "xz": ["xz", "-c", "--check=crc32"],
    "lzma": ["xz", "--format=lzma", "-c"],
    "lz4": ["lz4", "-l", "-c", "-"],
    "bzip2": ["bzip2", "-c"],
}


def cli(kind: str, data: bytes) -> bytes:
    argv = CLI[kind]
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} not installed")
    return subprocess.run(argv, input=data, capture_output=True, check=True).stdout


def lz4_legacy(data: bytes) -> bytes:
    blocks = [data[i:i + (8 << 20)] for i in range(0, len(data), 8 << 20)]
    out = b"\x02\x21\x4c\x18"
    for chunk in blocks:
        comp = lz4.block.compress(chunk, store_size=False)
        out += len(comp).to_bytes(4, "little") + comp
    return out


LIB: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda d: gzip.compress(d, mtime=0),
    "zstd": lambda d: zstandard.ZstdCompressor().compress(d),
    "xz": lambda d: lzma.compress(d, check=lzma.CHECK_CRC32),
    "lzma": lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
    "lz4": lz4_legacy,
    "bzip2": bz2.compress,
}

BLACKLIST = b"blacklist mpt3sas\noptions xen-pciback hide=(0000:01:00.0)\n"
SAMPLE = [
    _dir("."),
    _dir("etc"),
    _dir("etc/modprobe.d"),
    E("etc/modprobe.d/xen.conf", BLACKLIST),
    E("etc/modules", b"xen-pciback\n"),
    _dir("conf"),
    E("conf/modules", b"mpt3sas\n"),
    _dir("usr"),
    _dir("usr/lib"),
    _dir("usr/lib/modprobe.d"),
    E("usr/lib/modprobe.d/systemd.conf", b"options bonding max_bonds=0\n"),
    _dir("bin"),
    E("bin/busybox", os.urandom(3000), mode=stat.S_IFREG | 0o755),
    _symlink("bin/sh", "busybox"),
]
SAMPLE_FILES = {
    "conf/modules": "mpt3sas\n",
    "etc/modprobe.d/xen.conf": BLACKLIST.decode(),
    "etc/modules": "xen-pciback\n",
    "usr/lib/modprobe.d/systemd.conf": "options bonding max_bonds=0\n",
}


def ok(content: InitramfsContent) -> InitramfsContent:
    assert content.error is None, content.error
    return content


# --- detection ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("head", "kind"), [
    (b"\x1f\x8b\x08\x00", "gzip"), (b"\x28\xb5\x2f\xfd\x04", "zstd"), (b"\xfd7zXZ\x00", "xz"),
    (b"\x5d\x00\x00\x80\x00", "lzma"), (b"\x02\x21\x4c\x18", "lz4"), (b"BZh91AY", "bzip2"),
    (b"070701000", "cpio"), (b"070702000", "cpio"), (b"070707", None), (b"\x7fELF", None), (b"", None),
])
def test_detect_compression(head: bytes, kind: str | None) -> None:
    assert detect_compression(head) == kind


# --- each format ----------------------------------------------------------------------------------


@pytest.mark.parametrize("tool", ["cli", "lib"])
@pytest.mark.parametrize("kind", sorted(LIB))
def test_each_compression(kind: str, tool: str) -> None:
    archive = newc(SAMPLE)
    image = cli(kind, archive) if tool == "cli" else LIB[kind](archive)
    content = ok(read_initramfs(image))
    assert content.segments == (kind,)
    assert content.config_files == SAMPLE_FILES
    assert content.member_count == len(SAMPLE)


def test_uncompressed_cpio() -> None:
    content = ok(read_initramfs(newc(SAMPLE)))
    assert content.segments == ("cpio",)
    assert content.config_files == SAMPLE_FILES


def test_debian_layout_early_microcode_then_zstd() -> None:
    early = newc([_dir("kernel"), _dir("kernel/x86"), _dir("kernel/x86/microcode"),
                  E("kernel/x86/microcode/GenuineIntel.bin", b"\x01" * 1000)])
    content = ok(read_initramfs(early + cli("zstd", newc(SAMPLE))))
    assert content.segments == ("cpio", "zstd")
    assert content.config_files == SAMPLE_FILES
    assert content.member_count == 4 + len(SAMPLE)


def test_later_segment_overrides_earlier() -> None:
    first = cli("gzip", newc([E("etc/modprobe.d/xen.conf", b"blacklist mpt2sas\n"), E("etc/modules", b"a\n")]))
    second = cli("xz", newc([E("etc/modprobe.d/xen.conf", b"blacklist mpt3sas\n")]))
    content = ok(read_initramfs(first + second))
    assert content.segments == ("gzip", "xz")
    assert content.config_files == {"etc/modprobe.d/xen.conf": "blacklist mpt3sas\n", "etc/modules": "a\n"}


def test_several_archives_in_one_compressed_stream() -> None:
    stream = newc([E("etc/modprobe.d/a.conf", b"old\n")], block=4) + newc([E("etc/modprobe.d/a.conf", b"new\n")])
    content = ok(read_initramfs(cli("zstd", stream)))
    assert content.segments == ("zstd",)
    assert content.config_files == {"etc/modprobe.d/a.conf": "new\n"}
    assert content.member_count == 6  # each archive: etc, etc/modprobe.d, a.conf


def test_names_are_normalised() -> None:
    content = ok(read_initramfs(newc([E("./etc/modprobe.d/x.conf", b"x\n"), E("/etc/modules", b"m\n"),
                                      E("lib//modprobe.d/./y.conf", b"y\n")])))
    assert content.config_files == {"etc/modprobe.d/x.conf": "x\n", "etc/modules": "m\n",
                                    "lib/modprobe.d/y.conf": "y\n"}


def test_symlinks_and_directories() -> None:
    entries = [_dir("etc"), _dir("etc/modprobe.d"), E("etc/modprobe.d/a.conf", b"a\n"),
               _symlink("etc/modprobe.d/null.conf", "/dev/null"), E("etc/modprobe.d/b.conf", b"b\n"),
               _symlink("etc/modprobe.d/b.conf", "a.conf"), _dir("etc/modprobe.d/sub.conf")]
    content = ok(read_initramfs(LIB["gzip"](newc(entries))))
    assert content.config_files == {"etc/modprobe.d/a.conf": "a\n"}
    assert content.member_count == len(entries)


@pytest.mark.parametrize("data_on_first", [False, True])
def test_hard_links_share_data(data_on_first: bool) -> None:
    # GNU cpio stores the data with the last link, other writers with the first.
    body = b"blacklist mpt3sas\n"
    links = [E("etc/modprobe.d/one.conf", ino=77, nlink=2), E("usr/share/two.conf", ino=77, nlink=2)]
    links[0 if data_on_first else 1].data = body
    content = ok(read_initramfs(newc(links) if data_on_first else newc(links[::-1])))
    assert content.config_files == {"etc/modprobe.d/one.conf": body.decode()}


def test_members_keep_metadata() -> None:
    content = ok(read_initramfs(newc([E("etc/modprobe.d/x.conf", b"x", mode=stat.S_IFREG | 0o600, mtime=42)])))
    (member,) = content.members
    assert (member.name, member.mode, member.mtime, member.data) == ("etc/modprobe.d/x.conf", 0o100600, 42, b"x")


def test_modprobe_text() -> None:
    content = ok(read_initramfs(newc([*SAMPLE, E("etc/modprobe.conf", b"alias a b")])))
    assert content.modprobe_text() == (
        "# etc/modprobe.conf\nalias a b\n"
        f"# etc/modprobe.d/xen.conf\n{BLACKLIST.decode()}"
        "# usr/lib/modprobe.d/systemd.conf\noptions bonding max_bonds=0\n"
    )


def test_gnu_cpio_archive(tmp_path: Path) -> None:
    if shutil.which("cpio") is None:
        pytest.skip("GNU cpio not installed")
    (tmp_path / "etc/modprobe.d").mkdir(parents=True)
    (tmp_path / "etc/modprobe.d/xen.conf").write_bytes(BLACKLIST)
    listing = b"\n".join([b".", b"./etc", b"./etc/modprobe.d", b"./etc/modprobe.d/xen.conf"]) + b"\n"
    archive = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], input=listing, cwd=tmp_path,
                             capture_output=True, check=True).stdout
    content = ok(read_initramfs(cli("gzip", archive)))
    assert content.config_files == {"etc/modprobe.d/xen.conf": BLACKLIST.decode()}


# --- segment boundaries ---------------------------------------------------------------------------


def test_zero_padding_between_segments() -> None:
    early = newc([E("kernel/x86/microcode/AuthenticAMD.bin", b"\x02" * 10)])
    image = early + b"\0" * 1000 + cli("gzip", newc([E("etc/modules", b"a\n")])) + b"\0" * 3
    image += cli("zstd", newc([E("etc/modules", b"b\n")])) + b"\0" * 4096
    content = ok(read_initramfs(image))
    assert content.segments == ("cpio", "gzip", "zstd")
    assert content.config_files == {"etc/modules": "b\n"}


def test_two_uncompressed_archives_are_two_segments() -> None:
    image = newc([E("etc/modules", b"a\n")], block=4) + b"\0" * 8 + newc([E("etc/modules", b"b\n")])
    content = ok(read_initramfs(image))
    assert content.segments == ("cpio", "cpio")
    assert content.config_files == {"etc/modules": "b\n"}


def test_lz4_multi_block_then_zero_padding_then_gzip() -> None:
    big = newc([E("lib/firmware/blob", b"\0" * (9 << 20)), E("etc/modules", b"a\n")])
    image = cli("lz4", big) + bytes(4) + LIB["gzip"](newc([E("etc/modprobe.d/x.conf", b"x\n")]))
    content = ok(read_initramfs(image))
    assert content.segments == ("lz4", "gzip")
    assert content.config_files == {"etc/modules": "a\n", "etc/modprobe.d/x.conf": "x\n"}


@pytest.mark.parametrize("block", [512, 8 << 20])
def test_lz4_directly_followed_by_gzip_fails_like_the_kernel(block: int) -> None:
    # No end marker in legacy lz4: the kernel reads the gzip magic as one more block size and fails.
    archive = newc([E("etc/modules", b"a\n")], block=block)
    image = cli("lz4", archive) + LIB["gzip"](newc([E("etc/modprobe.d/x.conf", b"x\n")]))
    assert (read_initramfs(image).error or "").startswith("lz4: ")


@pytest.mark.parametrize("kind", ["cpio", "gzip", "zstd"])
def test_archive_without_trailing_padding(kind: str) -> None:
    archive = newc([E("etc/modules", b"a\n")], block=4)
    content = ok(read_initramfs(archive if kind == "cpio" else LIB[kind](archive)))
    assert content.config_files == {"etc/modules": "a\n"}


def test_zstd_frames_each_holding_whole_archives() -> None:
    image = cli("zstd", newc([E("etc/modules", b"a\n")])) + cli("zstd", newc([E("etc/modules", b"b\n")]))
    assert ok(read_initramfs(image)).segments == ("zstd", "zstd")


def test_zstd_frame_ending_mid_archive_is_an_error() -> None:
    # The kernel's unzstd stops after one frame and requires the archive to end there.
    archive = newc(SAMPLE)
    image = LIB["zstd"](archive[:1000]) + LIB["zstd"](archive[1000:])
    assert (read_initramfs(image).error or "").startswith("junk at the end of compressed archive in segment 1")


def test_pzstd_output_is_rejected() -> None:
    if shutil.which("pzstd") is None:
        pytest.skip("pzstd not installed")
    image = subprocess.run(["pzstd", "-q", "-c"], input=newc(SAMPLE), capture_output=True, check=True).stdout
    assert "skippable frame" in (read_initramfs(image).error or "")


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(LIB))
def test_truncated_image(kind: str) -> None:
    image = cli(kind, newc(SAMPLE))
    content = read_initramfs(image[: len(image) // 2])
    assert content.error is not None
    assert "truncated" in content.error or "corrupt" in content.error or "junk" in content.error


def test_truncated_plain_cpio_keeps_its_complete_members() -> None:
    # The kernel checks nothing at the end of uncompressed data; a file cut in its data keeps its size.
    archive = newc([E("etc/modules", b"a\n"), E("etc/modprobe.d/cut.conf", b"blacklist x\n" * 100)])
    content = read_initramfs(archive[:archive.index(b"blacklist") + 12], inventory=True)
    assert content.error is None
    assert content.config_files["etc/modules"] == "a\n"
    assert content.config_files["etc/modprobe.d/cut.conf"] == "blacklist x\n" + "\0" * 1188


def test_random_bytes() -> None:
    content = read_initramfs(os.urandom(4096))
    assert content.error is not None
    assert content.config_files == {}


def test_elf_is_not_an_initramfs() -> None:
    elf = Path(sys.executable).resolve().read_bytes()[:65536]
    content = read_initramfs(elf)
    assert content.error == "not an initramfs: unknown magic 7f454c46 at offset 0"
    assert content.segments == ()


def test_bzimage_is_not_an_initramfs() -> None:
    assert (read_initramfs(b"MZ\xea\x07" + bytes(508) + b"HdrS").error or "").startswith("not an initramfs")


def test_empty_image() -> None:
    assert read_initramfs(b"").error == "not an initramfs: empty image"


def test_junk_after_compressed_segment() -> None:
    content = read_initramfs(LIB["gzip"](newc(SAMPLE)) + b"garbage!")
    assert content.error is not None and content.error.startswith("junk after segment 1")
    assert content.config_files == SAMPLE_FILES  # what was unpacked before the junk stays known


def test_junk_inside_compressed_stream() -> None:
    content = read_initramfs(LIB["xz"](newc(SAMPLE) + b"garbage!"))
    assert (content.error or "").startswith("junk within compressed archive in segment 1")


def test_an_empty_compressed_stream_fails_only_before_any_entry() -> None:
    # unpack_to_rootfs() wants state Reset after each stream; it starts in Start, reached Reset after an entry.
    assert "junk at the end of compressed archive" in (read_initramfs(LIB["gzip"](b"")).error or "")
    content = ok(read_initramfs(newc([E("etc/modules", b"a\n")]) + LIB["gzip"](b"")))
    assert content.config_files == {"etc/modules": "a\n"}


def test_broken_padding_before_uncompressed_archive() -> None:
    image = newc([E("a")]) + b"\0\0" + newc([E("b")])
    assert "broken padding" in (read_initramfs(image).error or "")


def test_decompression_bomb_is_capped() -> None:
    image = LIB["zstd"](newc([E("huge", b"\0" * (16 << 20))]))
    content = read_initramfs(image, max_output=1 << 20)
    assert (content.error or "").startswith("decompressed output exceeds 1048576 bytes in segment 1")


def test_lz4_frame_format_is_rejected() -> None:
    content = read_initramfs(b"\x04\x22\x4d\x18" + bytes(20))
    assert (content.error or "").startswith("lz4 not supported: frame format")


def test_old_cpio_format_is_rejected() -> None:
    assert "newc" in (read_initramfs(b"070707" + b"0" * 200).error or "")


def test_crc_cpio_is_read_like_the_kernel() -> None:
    content = read_initramfs(edge.newc([edge.directory("etc"), edge.Member("etc/modules", b"a\n")], magic=b"070702"))
    assert content.config_files == {"etc/modules": "a\n"}
    assert content.error is None


def test_crc_cpio_with_a_bad_checksum_stops_like_the_kernel() -> None:
    archive = edge.newc([edge.directory("etc"), edge.Member("etc/modules", b"a\n", check=1)], magic=b"070702")
    content = read_initramfs(archive)
    assert (content.error or "").startswith("bad data checksum for etc/modules")


# --- robustness -----------------------------------------------------------------------------------

_PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_MAGICS = [b"", b"070701", b"\x1f\x8b\x08\x00", b"\x28\xb5\x2f\xfd", b"\xfd7zXZ\x00", b"\x5d\x00\x00",
           b"\x02\x21\x4c\x18", b"BZh9"]
_VALID = {kind: compress(newc(SAMPLE[3:7])) for kind, compress in LIB.items()}
_VALID["cpio"] = newc(SAMPLE[3:7])


def _never_raises(data: bytes) -> None:
    content = read_initramfs(data, max_output=1 << 20)
    assert isinstance(content, InitramfsContent)
    assert not (content.error or "").startswith("internal error"), content.error


@_PROPERTY
@given(prefix=st.sampled_from(_MAGICS), rest=st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(prefix: bytes, rest: bytes) -> None:
    _never_raises(prefix + rest)


@_PROPERTY
@given(kind=st.sampled_from(sorted(_VALID)), cut=st.integers(0, 10_000),
       flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 7)), max_size=4))
def test_damaged_images_never_raise(kind: str, cut: int, flips: list[tuple[int, int]]) -> None:
    image = bytearray(_VALID[kind] + _VALID["gzip"])
    for where, bit in flips:
        image[where % len(image)] ^= 1 << bit
    _never_raises(bytes(image[: len(image) - cut % len(image)]))
