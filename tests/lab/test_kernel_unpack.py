"""The real Linux 6.1 kernel (the lab's Debian 12 dom0 kernel, booted alone in QEMU/TCG) as the oracle for the
initramfs reader: on each edge image, the files the kernel leaves in its rootfs (or its refusal) must be what
xenpass.parse.initramfs reports. CI runs the cases marked ci (~5-10 s a boot); XENPASS_KERNEL_ORACLE=all runs
every case in tests/support/edge_images.py. XENPASS_LAB_KERNEL names a kernel when the lab is not built here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.lab.conftest import lab
from tests.support.edge_images import EDGE_CASES
from tests.support.kernel_oracle import boot, elf_kernel, lab_kernel
from xenpass.parse.initramfs import read_initramfs

pytestmark = pytest.mark.lab

ALL = os.environ.get("XENPASS_KERNEL_ORACLE") == "all"
CASES = [name for name, case in EDGE_CASES.items() if ALL or case.ci]


@pytest.fixture(scope="session")
def kernel(tmp_path_factory) -> Path:
    if not lab_kernel().exists():
        lab("build", timeout=3600)  # leaves the dom0 kernel in .lab/boot
    return elf_kernel(lab_kernel(), tmp_path_factory.mktemp("kernel"))


@pytest.mark.parametrize("name", CASES)
def test_reader_agrees_with_the_kernel(kernel: Path, name: str) -> None:
    case = EDGE_CASES[name]
    image = case.build()
    seen = boot(kernel, image, case.memory_mib)
    ours = read_initramfs(image, inventory=True)
    print(f"{name}: {seen.seconds:.1f} s; kernel: {seen.error or 'unpacked'}; reader: {ours.error or 'read'}")
    if seen.error:
        assert ours.error is not None, f"the kernel refused it ({seen.error}); the reader read {ours.inventory}"
    else:
        assert ours.error is None, f"the kernel unpacked {sorted(seen.files)}; the reader: {ours.error}"
        assert ours.inventory == seen.files
