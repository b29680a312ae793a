"""Waivers end to end: an accepted failure is an xfail counted apart, an expired one fails saying since when,
one that matches nothing is a warning, and a waivers file that cannot be trusted is a usage error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from tests.report.test_json_schema import SCHEMA

ROOT = Path(__file__).resolve().parent.parent
BROKEN = ROOT / "fixtures" / "node03-broken-mpt2sas-alias.json"  # fails native-driver-blacklisted, driver-pciback
UNREADABLE = ROOT / "fixtures" / "node03-nonroot-blacklist-unreadable.json"  # hide-entry is `error`


def waiver(rule: str, expires: str = "2099-12-31", **extra: str) -> dict:
    return {"host": "node03-*", "rule": rule, "reason": f"accepted: {rule}", "owner": "ops@example.com",
            "expires": expires, **extra}


def run(tmp_path: Path, waivers: list[dict] | str | None, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    cmd = [sys.executable, "-m", "pytest", "checks/", "-q", "-rxs", "-p", "no:cacheprovider",
           f"--compliance-json={tmp_path / 'c.json'}", f"--html={tmp_path / 'r.html'}", *args]
    if waivers is not None:
        path = tmp_path / "waivers.yaml"
        path.write_text(waivers if isinstance(waivers, str) else json.dumps({"waivers": waivers}))  # JSON is YAML
        cmd.append(f"--waivers={path}")
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    data = json.loads((tmp_path / "c.json").read_text()) if (tmp_path / "c.json").exists() else {}
    return done, data


def rules(data: dict) -> dict:
    return {r["id"]: r for r in data["hosts"][0]["devices"][0]["rules"]}


def test_active_waivers_turn_the_failures_into_xfails_counted_apart(tmp_path):
    done, data = run(tmp_path, [waiver("native-driver-blacklisted", device="01:00.0"), waiver("driver-pciback")],
                     f"--snapshot={BROKEN}", "--gate-exit-codes")
    assert done.returncode == 0, done.stdout[-2000:]  # the gate accepts what was waived
    assert "2 xfailed" in done.stdout
    assert "waived until 2099-12-31 by ops@example.com: accepted: native-driver-blacklisted" in done.stdout
    host = data["hosts"][0]
    assert host["verdict"] == "waived" and host["devices"][0]["verdict"] == "waived" and data["verdict"] == "waived"
    assert data["summary"]["hosts"]["waived"] == 1 and data["summary"]["hosts"]["compliant"] == 0
    assert rules(data)["native-driver-blacklisted"]["status"] == "fail"  # the truth stays in the JSON
    assert rules(data)["native-driver-blacklisted"]["waiver"]["owner"] == "ops@example.com"
    assert data["unused_waivers"] == []
    assert ">waived</td>" in (tmp_path / "r.html").read_text()
    jsonschema.validate(data, SCHEMA)


def test_expired_and_unused_waivers_validate_against_the_schema(tmp_path):
    _, data = run(tmp_path, [waiver("native-driver-blacklisted", expires="2020-01-31"), waiver("hide-entry")],
                  f"--snapshot={BROKEN}")
    jsonschema.validate(data, SCHEMA)


def test_waiving_one_failure_of_two_leaves_the_host_non_compliant(tmp_path):
    done, data = run(tmp_path, [waiver("native-driver-blacklisted")], f"--snapshot={BROKEN}", "--gate-exit-codes")
    assert done.returncode == 100
    assert data["hosts"][0]["verdict"] == "non-compliant"


def test_an_expired_waiver_is_a_failure_that_says_since_when(tmp_path):
    done, data = run(tmp_path, [waiver("native-driver-blacklisted", expires="2020-01-31")], f"--snapshot={BROKEN}")
    assert done.returncode == 1
    assert "waiver #1 (host node03-*, rule native-driver-blacklisted, owner ops@example.com) expired on " \
           "2020-01-31 (" in done.stdout
    assert rules(data)["native-driver-blacklisted"]["waiver"]["expired"] is True
    assert data["hosts"][0]["verdict"] == "non-compliant"


def test_a_waiver_matching_nothing_is_a_warning(tmp_path):
    done, data = run(tmp_path, [waiver("hide-entry"), waiver("driver-pciback", host="node99")],
                     f"--snapshot={BROKEN}")
    assert "warning: waiver #1 (host node03-*, rule hide-entry, owner ops@example.com) matched no failure" \
        in done.stdout
    assert "warning: waiver #2 (host node99" in done.stdout
    assert [w["index"] for w in data["unused_waivers"]] == [1, 2]


def test_what_could_not_be_read_cannot_be_waived(tmp_path):
    _, data = run(tmp_path, [waiver("hide-entry")], f"--snapshot={UNREADABLE}")
    assert rules(data)["hide-entry"]["status"] == "error" and "waiver" not in rules(data)["hide-entry"]
    assert data["hosts"][0]["verdict"] == "error"


def test_waivers_from_the_ini_file(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text(json.dumps({"waivers": [waiver("native-driver-blacklisted"), waiver("driver-pciback")]}))
    done, data = run(tmp_path, None, f"--snapshot={BROKEN}", "-o", f"xenpass_waivers={path}")
    assert "2 xfailed" in done.stdout and data["hosts"][0]["verdict"] == "waived"


@pytest.mark.parametrize("text, message", [
    ("waivers:\n  - {host: 'node03', rule: hide-entry, reason: r, expires: 2030-01-01}\n", "`owner` is required"),
    ("waivers:\n  - {rule: no-such-rule, reason: r, owner: o, expires: 2030-01-01}\n", "unknown rule 'no-such-rule'"),
    ("waivers:\n  - {rule: hide-entry, reason: r, owner: o, expires: next year}\n", "is not a date"),
    ("waivers:\n  - {rule: hide-entry, reason: r, owner: o, expires: 2030-01-01, device: '01:00.9'}\n", "01:00.9"),
    ("waivers:\n  - {rule: hide-entry, reason: r, owner: o, expires: 2030-01-01, until: x}\n", "unknown field"),
    ("- just a list\n", "top-level `waivers:` list"),
    ("waivers: [\n", "cannot read waivers"),
])
def test_a_waivers_file_that_cannot_be_trusted_is_a_usage_error(tmp_path, text, message):
    done, _ = run(tmp_path, text, f"--snapshot={BROKEN}")
    assert done.returncode == 4, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
