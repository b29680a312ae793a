"""Defaults in configuration: the ini file's xenpass_* keys stand in for options not given; the command line wins."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BROKEN = ROOT / "fixtures" / "node03-broken-mpt2sas-alias.json"


def project(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "hosts.yaml").write_text(f"hosts:\n  node03:\n    snapshot: {BROKEN}\n")
    (tmp_path / "waivers.yaml").write_text(
        "waivers:\n  - {rule: driver-pciback, reason: r, owner: o, expires: 2099-01-01}\n")
    ini = tmp_path / "pytest.ini"
    ini.write_text("[pytest]\nxenpass_inventory = hosts.yaml\nxenpass_devices =\n    01:00.0\n"
                   "xenpass_compliance_json = out/c.json\nxenpass_html = out/r.html\nxenpass_host_timeout = 7\n"
                   "xenpass_max_hosts = 3\nxenpass_waivers = waivers.yaml\n" + extra)
    return ini


def run(ini: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-c", str(ini), "--rootdir", str(ini.parent),
                           str(ROOT / "checks"), "-q", "-p", "no:cacheprovider", *args],
                          cwd=ini.parent, capture_output=True, text=True, timeout=120)


def test_ini_keys_give_the_defaults(tmp_path):
    done = run(project(tmp_path))
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    data = json.loads((tmp_path / "out" / "c.json").read_text())
    assert (tmp_path / "out" / "r.html").exists()
    assert [h["host"] for h in data["hosts"]] == ["node03"]  # the inventory's host
    assert [d["bdf"] for d in data["hosts"][0]["devices"]] == ["0000:01:00.0"]
    rules = {r["id"]: r for r in data["hosts"][0]["devices"][0]["rules"]}
    assert "waiver" in rules["driver-pciback"]  # the waivers file from the ini


def test_the_command_line_overrides_the_ini(tmp_path):
    done = run(project(tmp_path), f"--compliance-json={tmp_path / 'elsewhere.json'}")
    assert (tmp_path / "elsewhere.json").exists() and not (tmp_path / "out" / "c.json").exists(), done.stdout


def test_a_bad_ini_value_is_a_usage_error(tmp_path):
    done = run(project(tmp_path, "xenpass_step_timeout = soon\n"))
    assert done.returncode == 4 and "xenpass_step_timeout = 'soon'" in done.stderr and "not a number" in done.stderr
