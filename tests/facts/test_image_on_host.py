"""The initramfs read where it lies: the host's cpio and decompressor, segment by segment, only the wanted files
sent back (nothing unpacked whole).

Oracle: xenpass's local reader (which models the kernel's unpacker) on the same image bytes. The host path
must say exactly what the local one says, cost kilobytes whatever the image's size, and never send an
unchanged image twice (image cache, keyed by host identity and sha256).
"""

from __future__ import annotations

import gzip
import lzma
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.chroot import ChrootHost
from tests.support.fakehost import build, install_gnu_tools, newc
from tests.support.scenarios import DEBIAN_RELEASE, SCENARIOS
from xenpass.facts.collector import collect
from xenpass.facts.host import HostFacts
from xenpass.facts.image_cache import ImageCache

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root"),
    pytest.mark.skipif(shutil.which("cpio") is None, reason="needs GNU cpio (scripts/setup --system)"),
]
IMAGE = f"/boot/initrd.img-{DEBIAN_RELEASE}"
# What the host walk runs, as Debian has them (busybox's grep has no -b).
DEBIAN_TOOLS = ("cpio", "gzip", "zstd", "xz", "lz4", "od", "tail", "grep")


@pytest.fixture(scope="module")
def debian_root(tmp_path_factory) -> Path:
    root = build(SCENARIOS["debian12-kmod-compliant"](), tmp_path_factory.mktemp("deb") / "root")
    install_gnu_tools(root, DEBIAN_TOOLS)
    (root / "tmp").mkdir(exist_ok=True, mode=0o1777)
    (root / "var/tmp").mkdir(parents=True, exist_ok=True, mode=0o1777)
    return root


@pytest.fixture(scope="module")
def alpine_root(tmp_path_factory) -> Path:
    """node03 as Alpine has it: busybox's cpio, gzip and xz, and mkinitfs at /sbin/mkinitfs."""
    root = build(SCENARIOS["node03-fixed"](), tmp_path_factory.mktemp("alpine") / "root")
    shutil.copy2(root / "usr/local/sbin/mkinitfs", root / "sbin/mkinitfs")
    for applet in ("gzip", "xzcat", "cpio", "od", "tr", "tail"):
        if not (root / "bin" / applet).exists():
            os.symlink("busybox", root / "bin" / applet)
    (root / "tmp").mkdir(exist_ok=True, mode=0o1777)
    return root


def image_content(root: Path, host_tool: bool, cache: ImageCache | None = None, tool: str = "bin/cpio"):
    hidden = root / (tool + ".hidden")
    tool = root / tool  # type: ignore[assignment]
    if not host_tool:
        tool.rename(hidden)
    try:
        raw = collect(ChrootHost(root), "deb", cache=cache, identity=f"chroot://{root}")
    finally:
        if hidden.exists():
            hidden.rename(tool)
    return raw, HostFacts(raw).boot_image


def compress(kind: str, data: bytes) -> bytes:
    if kind == "gzip":
        return gzip.compress(data, mtime=0)
    if kind == "xz":
        return lzma.compress(data, check=lzma.CHECK_CRC32)  # the kernel's xz needs crc32
    return subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True, check=True).stdout


WANTED = ["conf/modules", "etc/modules", "etc/modprobe.conf", "etc/modprobe.d/a.conf", "etc/modprobe.d/.hidden.conf",
          "usr/lib/modprobe.d/b.conf", "lib/modprobe.d/sub/c.conf", "usr/local/lib/modprobe.d/d.conf"]
OTHER = ["init", "scripts/init-top/udev", "etc/modprobe.d.bak", "usr/lib/modules/x/modules.dep"]
MODULES = ["usr/lib/modules/6.1/kernel/drivers/scsi/mpt3sas/mpt3sas.ko",
           "usr/lib/modules/6.1/kernel/drivers/xen/xen-pciback/xen-pciback.ko.xz",
           "lib/modules/6.1/kernel/drivers/scsi/megaraid/megaraid_sas.ko.zst", "usr/lib/modules/6.1/extra/mpt3sas.ko"]
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)


@st.composite
def images(draw) -> tuple[bytes, dict]:
    def archive() -> dict[str, str]:
        names = draw(st.lists(st.sampled_from(WANTED + OTHER + MODULES), unique=True, max_size=8))
        return {name: draw(TEXT) for name in names}

    early = [newc(archive(), 1_700_000_000, with_dirs=True) for _ in range(draw(st.integers(0, 2)))]
    main = archive()
    kind = draw(st.sampled_from(["gzip", "zstd", "xz"]))
    data = b"".join(early) + compress(kind, newc(main, 1_700_000_000, with_dirs=True))
    return data, {"early": early, "kind": kind}


TRAILER = re.compile(rb"0000000[Bb]00000000TRAILER!!!")  # the end of a trailer member's header, and its name
DECOMPRESSOR = {"gzip": "gzip -dc", "zstd": "zstd -dcq", "xz": "xz -dc"}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(images())
def test_the_host_tool_says_what_the_local_reader_says(debian_root, image):
    data, layout = image
    (debian_root / IMAGE.lstrip("/")).write_bytes(data)
    raw, on_host = image_content(debian_root, host_tool=True)
    _, local = image_content(debian_root, host_tool=False)
    # The host walks early archives by their trailers. A trailer that also shows verbatim in the compressed
    # stream (a stored block of a tiny image) means the walk cannot vouch for the layout: the image goes to
    # the local reader instead, never the host tool when unsafe.
    trusted = len(TRAILER.findall(data)) == len(layout["early"])
    assert on_host.content.reader == (f"{DECOMPRESSOR[layout['kind']]} | cpio on the host" if trusted else None)
    assert local.content.reader is None and local.content.error is None
    assert on_host.content.error is None
    assert on_host.content.config_files == local.content.config_files
    assert on_host.content.modules == local.content.modules
    assert f"{IMAGE}|" in "\n".join(raw.flag_values("image_sha256"))


def test_a_large_image_costs_kilobytes_and_an_unchanged_one_is_not_read_again(debian_root, tmp_path):
    firmware = random.Random(7).randbytes(6 * 2**20)  # 6 MiB that do not compress, like firmware blobs
    files = {"etc/modprobe.d/xen.conf": "options xen-pciback hide=(0000:00:05.0)\nblacklist mptsas\n",
             "conf/modules": "xen-pciback\n", "usr/lib/firmware/blob.bin": firmware.decode("latin-1")}
    (debian_root / IMAGE.lstrip("/")).write_bytes(gzip.compress(newc(files, with_dirs=True), mtime=0, compresslevel=1))
    cache = ImageCache(tmp_path / "cache")

    first, image = image_content(debian_root, host_tool=True, cache=cache)
    assert image.content.config_files["etc/modprobe.d/xen.conf"].startswith("options xen-pciback")
    assert first.bytes_received < 64 * 1024, first.bytes_received

    again, image = image_content(debian_root, host_tool=True, cache=cache)
    assert again.flag_values("known_image") == [IMAGE]
    assert image.content.config_files == {k: v for k, v in files.items() if "firmware" not in k}
    assert "remembered by sha256" in image.content.reader
    assert again.bytes_received < 64 * 1024

    whole, _ = image_content(debian_root, host_tool=False)  # what every run cost before
    assert whole.bytes_received > 8 * 2**20


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_alpines_busybox_cpio_says_what_the_local_reader_says(alpine_root, data):
    files = data.draw(st.dictionaries(st.sampled_from(WANTED + OTHER + MODULES), TEXT, max_size=8))
    dotted = data.draw(st.booleans())  # `find . | cpio -o` names every member ./like/this
    archive = newc({f"./{k}" if dotted else k: v for k, v in files.items()}, 1_700_000_000, with_dirs=True)
    kind = data.draw(st.sampled_from(["gzip", "xz"]))
    (alpine_root / "boot/initramfs-lts").write_bytes(compress(kind, archive))
    _, on_host = image_content(alpine_root, host_tool=True)
    _, local = image_content(alpine_root, host_tool=False)
    # busybox's shell says `xz` exists (an applet name) but cannot run it: the next command is tried
    assert on_host.content.reader == f"{'gzip -dc' if kind == 'gzip' else 'xzcat'} | cpio on the host"
    assert on_host.content.error is None and local.content.error is None
    assert on_host.content.config_files == local.content.config_files
    assert on_host.content.modules == local.content.modules


@pytest.mark.parametrize("name", ["../../escaped", "etc/modprobe.d/../../../escaped"])
def test_an_image_whose_names_climb_out_is_never_unpacked_on_the_host(alpine_root, name):
    archive = newc({"etc/modprobe.d/a.conf": "blacklist mpt3sas\n", name: "x"}, with_dirs=True)
    (alpine_root / "boot/initramfs-lts").write_bytes(gzip.compress(archive, mtime=0))
    _, image = image_content(alpine_root, host_tool=True)
    assert image.content.reader is None  # sent whole to the local reader instead
    assert image.content.config_files == {"etc/modprobe.d/a.conf": "blacklist mpt3sas\n"}
    assert not list(alpine_root.parent.rglob("escaped")) and not (alpine_root / "escaped").exists()


def test_a_member_the_host_cannot_list_exactly_is_unknown_never_an_empty_file(debian_root):
    """A newline in a member's name splits it in the host's listing: that image is `cannot read`, not judged."""
    files = {"etc/modprobe.d/a\nb.conf": "blacklist mptsas\n", "conf/modules": "xen-pciback\n"}
    (debian_root / IMAGE.lstrip("/")).write_bytes(gzip.compress(newc(files, with_dirs=True), mtime=0))
    _, image = image_content(debian_root, host_tool=True)
    assert image.content.reader == "gzip -dc | cpio on the host"
    assert image.content.error and "could not read" in image.content.error
    _, local = image_content(debian_root, host_tool=False)
    assert local.content.config_files["etc/modprobe.d/a\nb.conf"] == "blacklist mptsas\n"


def test_another_host_identity_never_uses_this_hosts_cache(debian_root, tmp_path):
    image = newc({"conf/modules": "xen-pciback\n"}, with_dirs=True)
    (debian_root / IMAGE.lstrip("/")).write_bytes(gzip.compress(image, mtime=0))
    cache = ImageCache(tmp_path / "cache")
    collect(ChrootHost(debian_root), "a", cache=cache, identity="ssh://root@127.0.0.1:2201")
    other = collect(ChrootHost(debian_root), "b", cache=cache, identity="ssh://root@127.0.0.1:2202")
    assert other.flag_values("known_image") == []
    assert cache.known("ssh://root@127.0.0.1:2202")  # now it has its own entry


def test_an_image_the_host_tool_cannot_read_goes_to_the_local_reader(debian_root):
    whole = gzip.compress(newc({"conf/modules": "xen-pciback\n", "init": "x" * 5000}), mtime=0)
    (debian_root / IMAGE.lstrip("/")).write_bytes(whole[: len(whole) // 2])  # truncated
    _, image = image_content(debian_root, host_tool=True)
    assert image.content.reader is None  # the local reader, which says what is wrong
    assert "truncated" in image.content.error or "corrupt" in image.content.error


@pytest.mark.parametrize("check", [lzma.CHECK_CRC64, lzma.CHECK_SHA256])
def test_an_xz_image_the_kernel_refuses_is_never_read_by_the_host_tool(debian_root, check):
    # The host's xz reads any check; Linux 6.1's xz decoder only none and crc32 ("Input was encoded with
    # settings that are not supported by this XZ decoder"): the kernel boots without this image's files.
    early = newc({"kernel/x86/microcode/GenuineIntel.bin": "u" * 700}, with_dirs=True)
    main = newc({"etc/modprobe.d/xen.conf": "blacklist mptsas\n"}, with_dirs=True)
    (debian_root / IMAGE.lstrip("/")).write_bytes(early + lzma.compress(main, check=check))
    _, image = image_content(debian_root, host_tool=True)
    assert image.content.reader is None  # the local reader, which refuses it as the kernel does
    assert "xz check type" in (image.content.error or "")


def test_a_trailer_inside_an_early_members_data_sends_the_image_to_the_local_reader(debian_root):
    """The walk finds early archives by their trailer headers: a member holding those bytes makes the count
    disagree, so the host never guesses where the compressed segment starts."""
    early = newc({"kernel/x86/microcode/x.bin": "0000000B00000000TRAILER!!!\0 looks like the end"}, with_dirs=True)
    main = newc({"etc/modprobe.d/xen.conf": "blacklist mptsas\n"}, with_dirs=True)
    (debian_root / IMAGE.lstrip("/")).write_bytes(early + gzip.compress(main, mtime=0))
    _, on_host = image_content(debian_root, host_tool=True)
    _, local = image_content(debian_root, host_tool=False)
    assert on_host.content.reader is None
    wanted = {"etc/modprobe.d/xen.conf": "blacklist mptsas\n"}
    assert on_host.content.config_files == local.content.config_files == wanted


def test_an_absolute_member_name_is_never_extracted_on_the_host(debian_root):
    """GNU cpio writes an absolute name where it points: such an image goes to the local reader."""
    archive = newc({"/etc/modprobe.d/escape.conf": "blacklist mptsas\n", "conf/modules": "xen-pciback\n"})
    (debian_root / IMAGE.lstrip("/")).write_bytes(gzip.compress(archive, mtime=0))
    _, image = image_content(debian_root, host_tool=True)
    assert image.content.reader is None
    assert not (debian_root / "etc/modprobe.d/escape.conf").exists()


@pytest.mark.parametrize("zeros", [4, 512, 2])
def test_padding_between_segments_is_read_as_the_kernel_reads_it(debian_root, zeros):
    """The kernel skips zero bytes after a trailer, and the next segment must start 4-aligned ("broken
    padding" otherwise): the host walk agrees, or leaves the image to the local reader."""
    early = newc({"kernel/x86/microcode/x.bin": "u" * 7}, with_dirs=True)
    main = newc({"etc/modprobe.d/xen.conf": "blacklist mptsas\n"}, with_dirs=True)
    (debian_root / IMAGE.lstrip("/")).write_bytes(early + b"\0" * zeros + zstd_compress(main))
    _, on_host = image_content(debian_root, host_tool=True)
    _, local = image_content(debian_root, host_tool=False)
    aligned = (len(early) + zeros) % 4 == 0
    assert on_host.content.reader == ("zstd -dcq | cpio on the host" if aligned else None)
    assert on_host.content.config_files == local.content.config_files
    assert on_host.content.error == local.content.error


def zstd_compress(data: bytes) -> bytes:
    return compress("zstd", data)
