"""The lab fixture: build the QEMU Xen dom0 once, boot it, restore it to pristine before each scenario."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "lab" / "lab"
SSH_CONFIG = ROOT / ".lab" / "ssh_config"


def lab(*args: str, timeout: float = 3600) -> None:
    done = subprocess.run([sys.executable, str(LAB), *args], capture_output=True, text=True, timeout=timeout)
    sys.stderr.write(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"lab/lab {' '.join(args)} failed: {(done.stdout + done.stderr)[-800:]}")


@dataclass
class Lab:
    tmp: Path
    runs: int = 0  # checks run so far: each keeps its --record snapshots for a post-mortem

    def sh(self, script: str, timeout: float = 900) -> str:
        done = subprocess.run(["ssh", "-F", str(SSH_CONFIG), "lab-dom0", script], capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"in dom0: {script!r} exited {done.returncode}: {done.stderr[-500:]}")
        return done.stdout

    def reboot(self, root_on: str | None = None) -> None:
        lab("reboot", *(("--root-on", root_on) if root_on else ()))

    def check(self, *args: str, name: str = "run") -> tuple[int, dict]:
        """Run the product as a user would; return its exit code and compliance JSON."""
        out = self.tmp / f"{name}.json"
        self.runs += 1
        record = self.tmp / f"record-{self.runs:02d}-{name}"
        cmd = [sys.executable, "-m", "pytest", "checks/", "-q", "-p", "no:cacheprovider", "--hosts=ssh://lab-dom0",
               f"--ssh-config={SSH_CONFIG}", f"--compliance-json={out}", f"--html={self.tmp / (name + '.html')}",
               f"--record={record}", *args]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
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


@pytest.fixture(scope="session")
def lab_session():
    lab("build", timeout=3600)
    lab("down")  # the suite owns the lab while it runs: start from a known process
    lab("up")
    yield
    lab("down")


@pytest.fixture
def pristine(lab_session, tmp_path) -> Lab:
    lab("restore")
    return Lab(tmp_path)
