"""The lab fixtures: build a QEMU Xen dom0 once, boot it, restore it to pristine before each scenario.

Two labs, one per distro (lab/lab --distro): `pristine` is the Debian 12 + Xen 4.17 + initramfs-tools dom0,
`pristine_trixie` the Debian 13 + Xen 4.20 + dracut one. Each has its own directory, QEMU and ssh_config."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "lab" / "lab"
LAB_DIRS = {"bookworm": ".lab", "trixie": ".lab-trixie"}  # as lab/lab's DISTROS table
# The trixie dom0 is slower under TCG on the shared machine: a hostonly `dracut -f` alone took 12+ min there
# (update-initramfs on bookworm: ~1.5 min), the collection over 120 s while it ran.
TIMEOUTS = {"bookworm": (), "trixie": ("--host-timeout=600", "--step-timeout=2400")}
SSH_CONFIG = ROOT / ".lab" / "ssh_config"  # the bookworm lab's, for tests that reach it directly


def lab(*args: str, timeout: float = 3600, distro: str = "bookworm") -> None:
    done = subprocess.run([sys.executable, str(LAB), "--distro", distro, *args], capture_output=True, text=True,
                          timeout=timeout)
    sys.stderr.write(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"lab/lab --distro {distro} {' '.join(args)} failed: {(done.stdout + done.stderr)[-800:]}")


@dataclass
class Lab:
    tmp: Path
    distro: str = "bookworm"
    runs: int = 0  # checks run so far: each keeps its --record snapshots for a post-mortem

    @property
    def ssh_config(self) -> Path:
        return ROOT / LAB_DIRS[self.distro] / "ssh_config"

    def sh(self, script: str, timeout: float = 900) -> str:
        done = subprocess.run(["ssh", "-F", str(self.ssh_config), "lab-dom0", script], capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"in dom0: {script!r} exited {done.returncode}: {done.stderr[-500:]}")
        return done.stdout

    def reboot(self, root_on: str | None = None) -> None:
        lab("reboot", *(("--root-on", root_on) if root_on else ()), distro=self.distro)

    def check(self, *args: str, name: str = "run") -> tuple[int, dict]:
        """Run the product as a user would; return its exit code and compliance JSON."""
        out = self.tmp / f"{name}.json"
        self.runs += 1
        record = self.tmp / f"record-{self.runs:02d}-{name}"
        cmd = [sys.executable, "-m", "pytest", "checks/", "-q", "-p", "no:cacheprovider", "--hosts=ssh://lab-dom0",
               f"--ssh-config={self.ssh_config}", f"--compliance-json={out}",
               f"--html={self.tmp / (name + '.html')}", f"--record={record}", *TIMEOUTS[self.distro], *args]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600)
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        return done.returncode, json.loads(out.read_text())

    def prediction(self, bdf: str = "00:05.0") -> dict:
        """The product's boot model for the device (its JSON `after_reboot`): taken before a reboot, it must
        name the driver the device really has after it."""
        _, data = self.check("--device", bdf, name="predict")
        after = data["hosts"][0]["devices"][0]["after_reboot"]
        assert after["known"], after["chain"]
        return after

    def driver(self, bdf: str = "00:05.0") -> str | None:
        """The driver bound to the device now (sysfs); None when none is."""
        link = self.sh(f"readlink /sys/bus/pci/devices/0000:{bdf}/driver || true").strip()
        return link.rsplit("/", 1)[-1] if link else None

    def assert_as_predicted(self, predicted: dict, bdf: str = "00:05.0") -> None:
        assert self.driver(bdf) == predicted["driver"], "the boot model said:\n" + "\n".join(predicted["chain"])

    def verdicts(self, bdf: str = "00:05.0", *args: str) -> dict[str, dict]:
        _, data = self.check("--device", bdf, *args)
        device = data["hosts"][0]["devices"][0]
        return {r["id"]: r for r in device["rules"]}


def running_lab(distro: str) -> Iterator[None]:
    lab("build", timeout=3600, distro=distro)
    lab("down", distro=distro)  # the suite owns the lab while it runs: start from a known process
    lab("up", distro=distro)
    yield
    lab("down", distro=distro)


@pytest.fixture(scope="session")
def lab_session():
    yield from running_lab("bookworm")


@pytest.fixture(scope="session")
def trixie_session():
    yield from running_lab("trixie")


@pytest.fixture
def pristine(lab_session, tmp_path) -> Lab:
    lab("restore")
    return Lab(tmp_path)


@pytest.fixture
def pristine_trixie(trixie_session, tmp_path) -> Lab:
    lab("restore", distro="trixie")
    return Lab(tmp_path, distro="trixie")
