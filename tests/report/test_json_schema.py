"""The compliance JSON is a contract: it validates against the schema shipped in the package, for every
fixture, plans, unreachable hosts and hosts that declare nothing; and --gate-exit-codes branches on it."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
SCHEMA = json.loads(resources.files("xenpass.schema").joinpath("compliance.schema.json").read_text())
CLOSED_PORT = "ssh://root@127.0.0.1:1"  # loopback, nothing listens: unreachable at once


def run(tmp_path: Path, *args: str) -> tuple[int, dict]:
    out = tmp_path / "c.json"
    done = subprocess.run([sys.executable, "-m", "pytest", "checks/", "-q", "-p", "no:cacheprovider",
                           f"--compliance-json={out}", f"--html={tmp_path / 'r.html'}", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "INTERNALERROR" not in done.stdout + done.stderr, done.stdout[-3000:]
    return done.returncode, json.loads(out.read_text()) if out.exists() else {}


def test_the_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_every_fixture_judged_in_one_run_validates_and_counts_add_up(tmp_path):
    _, data = run(tmp_path, f"--snapshot={FIXTURES}")
    jsonschema.validate(data, SCHEMA, format_checker=jsonschema.FormatChecker())
    hosts = data["summary"]["hosts"]
    assert hosts["total"] == len(list(FIXTURES.glob("*.json"))) == len(data["hosts"])
    assert sum(v for k, v in hosts.items() if k != "total") == hosts["total"]
    verdicts = {h["host"]: h["verdict"] for h in data["hosts"]}
    assert verdicts["node03-broken-mpt2sas-alias"] == "non-compliant"
    assert verdicts["node03-fixed"] == "compliant"
    assert verdicts["node03-nonroot-blacklist-unreadable"] == "error"  # unknown is not a verdict
    assert verdicts["lab-debian12-pristine"] == "no-devices"  # declares nothing: not clean
    assert data["verdict"] == "non-compliant"
    assert data["tool"]["name"] == "xenpass" and data["schema_version"] == 2
    rule_counts = data["summary"]["rules"]["native-driver-blacklisted"]
    assert sum(rule_counts.values()) == data["summary"]["devices"]["total"]
    devices = {h["host"]: h["devices"] for h in data["hosts"]}
    states = {name: (d[0]["now"], d[0]["after_reboot"]["driver"], d[0]["pending_reboot"])
              for name, d in devices.items() if d}
    assert states["node03-broken-mpt2sas-alias"] == ("mpt3sas", "mpt3sas", False)
    assert states["node03-fixed"] == ("pciback", "pciback", False)
    assert devices["node03-fixed"][0]["after_reboot"]["chain"]


def test_a_pending_reboot_validates():
    from tests.rules.test_boot_outcome import BLACKLIST, LAB, LOAD, OPTIONS, in_image, lab
    from xenpass.rules.boot_outcome import boot_states

    states = boot_states(lab(OPTIONS | LOAD | BLACKLIST, in_image(OPTIONS | BLACKLIST)), LAB)
    assert states["now"] == "mptsas" and states["after_reboot"]["driver"] == "pciback" and states["pending_reboot"]
    device = {"bdf": str(LAB), "verdict": "non-compliant", "rules": [], **states}
    jsonschema.validate(device, {"$ref": "#/$defs/device", "$defs": SCHEMA["$defs"]})


def test_plans_and_unreachable_hosts_validate(tmp_path):
    _, data = run(tmp_path, f"--snapshot={FIXTURES / 'node03-broken-mpt2sas-alias.json'}", "--fix")
    jsonschema.validate(data, SCHEMA)
    assert data["hosts"][0]["devices"][0]["plan"]["steps"]
    _, data = run(tmp_path, f"--hosts={CLOSED_PORT}", "--host-timeout=20")
    jsonschema.validate(data, SCHEMA)
    assert data["hosts"][0]["verdict"] == "unreachable" and data["verdict"] == "could-not-check"


@pytest.mark.parametrize("args, pytest_code, gate_code", [
    ([f"--snapshot={FIXTURES / 'node03-fixed.json'}"], 0, 0),
    ([f"--snapshot={FIXTURES / 'node03-fixed.json'}", f"--snapshot={FIXTURES / 'node03-hide-typo.json'}"], 1, 100),
    ([f"--hosts={CLOSED_PORT}", "--host-timeout=20"], 1, 101),
    ([f"--snapshot={FIXTURES / 'lab-debian12-pristine.json'}"], 1, 101),  # nothing declared, nothing proven
    ([f"--snapshot={FIXTURES / 'node03-hide-typo.json'}", "--device=01:00.9"], 4, 4),  # a usage error stays one
], ids=["compliant", "non-compliant", "unreachable", "no-devices", "usage-error-stays"])
def test_gate_exit_codes(tmp_path, args, pytest_code, gate_code):
    assert run(tmp_path, *args)[0] == pytest_code  # pytest's codes stand by default
    assert run(tmp_path, *args, "--gate-exit-codes")[0] == gate_code
