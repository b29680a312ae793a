"""Differential tests: the initramfs reader against GNU cpio and Debian's unmkinitramfs on random valid images.

Each image is built by tests/support/edge_images.py with every compressor the Linux 6.1 kernel unpacks. The
oracles unpack it for real in a temporary directory; the regular files they leave (path, size, sha256) must be
the reader's inventory. (The kernel itself is the oracle for the edge cases, in tests/lab/test_kernel_unpack.py.)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import edge_images as edge
from xenpass.parse.initramfs import read_initramfs

DECOMPRESS = {"gzip": ["gzip", "-dc"], "bzip2": ["bzip2", "-dc"], "lzma": ["xz", "--format=lzma", "-dc"],
              "xz": ["xz", "-dc"], "lzo": ["lzop", "-dc"], "lz4": ["lz4", "-dc"], "zstd": ["zstd", "-dc"]}
KINDS = sorted(edge.COMPRESSORS)
# 8 examples per compressor and oracle in the default suite (112 images); XENPASS_DIFF_EXAMPLES for more
EXAMPLES = int(os.environ.get("XENPASS_DIFF_EXAMPLES", "8"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.text("abcxyz-_.", min_size=1, max_size=8).filter(lambda n: n not in (".", ".."))
paths = st.tuples(st.sampled_from(["etc/modprobe.d", "lib/modprobe.d", "conf", "usr/lib/modules/x"]), names)
files = st.dictionaries(paths.map("/".join), st.binary(max_size=3000), min_size=1, max_size=8)


def archive(tree: dict[str, bytes]) -> bytes:
    """A newc archive with each file's parent directories first, as `find | cpio -o -H newc` writes."""
    dirs = sorted({"/".join(p.split("/")[:k]) for p in tree for k in range(1, p.count("/") + 1)})
    return edge.newc([*map(edge.directory, dirs), *(edge.Member(p, d) for p, d in sorted(tree.items()))])


def regular_files(root: Path) -> dict[str, tuple[int, str]]:
    return {str(p.relative_to(root)): (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{missing} not installed: run scripts/setup --system")


@pytest.mark.parametrize("kind", KINDS)
@SETTINGS
@given(tree=files)
def test_reader_agrees_with_gnu_cpio(kind: str, tree: dict[str, bytes]) -> None:
    need("cpio", DECOMPRESS[kind][0])
    plain = archive(tree)
    image = edge.COMPRESSORS[kind](plain)
    with tempfile.TemporaryDirectory() as out:
        cpio_in = subprocess.run(DECOMPRESS[kind], input=image, capture_output=True, check=True).stdout
        assert cpio_in == plain
        subprocess.run(["cpio", "-i", "-d", "--quiet"], input=cpio_in, cwd=out, check=True, capture_output=True)
        expected = regular_files(Path(out))
    content = read_initramfs(image, inventory=True)
    assert content.error is None
    assert content.inventory == expected


@pytest.mark.parametrize("kind", KINDS)
@SETTINGS
@given(early=files, main=files)
def test_reader_agrees_with_unmkinitramfs(kind: str, early: dict[str, bytes], main: dict[str, bytes]) -> None:
    need("unmkinitramfs", "cpio", DECOMPRESS[kind][0])
    image = archive(early) + edge.COMPRESSORS[kind](archive(main))
    with tempfile.TemporaryDirectory() as out:
        path = Path(out) / "initrd.img"
        path.write_bytes(image)
        subprocess.run(["unmkinitramfs", str(path), str(Path(out) / "x")], check=True, capture_output=True)
        # unmkinitramfs puts the early archive in early/ and the rest in main/; the kernel overlays them
        expected = regular_files(Path(out) / "x" / "early") | regular_files(Path(out) / "x" / "main")
    content = read_initramfs(image, inventory=True)
    assert content.error is None
    assert content.inventory == expected
