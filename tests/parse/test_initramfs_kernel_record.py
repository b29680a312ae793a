"""The reader against what the Linux 6.1 kernel did with each edge image, as recorded by booting it in QEMU.

tests/support/kernel_unpack_6.1.json holds the kernel's answer per case (the files it left in its rootfs, or its
"Initramfs unpacking failed" reason), written by `python -m tests.support.kernel_oracle`; the lab test
tests/lab/test_kernel_unpack.py asks the kernel again. Here the images are rebuilt and only the reader runs.
"""

from __future__ import annotations

import json

import pytest

from tests.support.edge_images import EDGE_CASES
from tests.support.kernel_oracle import RECORD
from xenpass.parse.initramfs import read_initramfs

KERNEL = json.loads(RECORD.read_text())
FAST = [name for name in sorted(KERNEL) if EDGE_CASES[name].memory_mib <= 256]  # not the 600 MiB image


def test_every_edge_case_has_a_kernel_answer() -> None:
    assert sorted(KERNEL) == sorted(EDGE_CASES)


@pytest.mark.parametrize("name", FAST)
def test_reader_agrees_with_the_recorded_kernel(name: str) -> None:
    kernel = KERNEL[name]
    ours = read_initramfs(EDGE_CASES[name].build(), inventory=True)
    if kernel["error"]:
        assert ours.error is not None, f"the kernel refused it ({kernel['error']}); the reader read it"
    else:
        assert ours.error is None
        assert ours.inventory == {path: tuple(entry) for path, entry in kernel["files"].items()}
