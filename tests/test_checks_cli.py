"""The suites from the command line against snapshots: demo, inventory, declared devices, bad input."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

from xenpass.facts.raw import load_snapshot, save_snapshot

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


def run_checks(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict | None]:
    out = tmp_path / "c.json"
    cmd = [sys.executable, "-m", "pytest", "checks/", "-q", "--tb=line", f"--compliance-json={out}",
           f"--html={tmp_path / 'r.html'}", *args]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    return done, json.loads(out.read_text()) if out.exists() else None


def statuses(data: dict, host: str) -> dict[str, str]:
    entry = next(h for h in data["hosts"] if h["host"] == host)
    return {r["id"]: r["status"] for r in entry["devices"][0]["rules"]}


def test_demo_snapshots_broken_fails_fixed_passes(tmp_path):
    done, data = run_checks(tmp_path, "--snapshot", str(FIXTURES / "node03-broken-mpt2sas-alias.json"),
                            "--snapshot", str(FIXTURES / "node03-fixed.json"))
    assert done.returncode == 1
    assert statuses(data, "node03-broken-mpt2sas-alias")["native-driver-blacklisted"] == "fail"
    assert set(statuses(data, "node03-fixed").values()) == {"pass"}
    assert "only an alias of mpt3sas" in done.stdout
    page = (tmp_path / "r.html").read_text()
    assert page.count("Compliance matrix") == 1
    # the per-rule tally above the matrix: one host passes, the other fails
    assert ("<td><a href='#rule-native-driver-blacklisted'>native-driver-blacklisted</a></td>"
            "<td class='xp-pass'>1</td><td class='xp-fail'>1</td>") in page
    assert "<details open><summary>host × device × rule (2 rows)</summary>" in page


def test_fixed_host_alone_exits_zero(tmp_path):
    done, _ = run_checks(tmp_path, "--snapshot", str(FIXTURES / "node03-fixed.json"))
    assert done.returncode == 0, done.stdout


def test_host_that_declares_no_device_fails_clearly(tmp_path):
    raw = load_snapshot(FIXTURES / "node03-broken-mpt2sas-alias.json")
    raw.files["/etc/modules"].content = "af_packet\nipv6\n"
    raw.files["/sys/module/xen_pciback/parameters/hide"].content = "\n"
    del raw.files["/etc/xen/nas.cfg"]
    raw.host = "bare"
    snap = save_snapshot(raw, tmp_path / "snaps")
    done, _data = run_checks(tmp_path, "--snapshot", str(snap))
    assert done.returncode == 1
    assert "declares none for passthrough" in done.stdout


def test_inventory_maps_hosts_to_devices(tmp_path):
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text(
        "hosts:\n"
        f"  nodeA:\n    snapshot: {FIXTURES / 'node03-fixed.json'}\n    devices: ['01:00.0', '02:00.0']\n"
        f"    domus: ['/etc/xen/nas.cfg']\n"
    )
    _done, data = run_checks(tmp_path, "--inventory", str(inventory))
    host = data["hosts"][0]
    assert host["host"] == "nodeA"
    assert [d["bdf"] for d in host["devices"]] == ["0000:01:00.0", "0000:02:00.0"]
    second = {r["id"]: r["status"] for r in host["devices"][1]["rules"]}
    assert second["hide-entry"] == "fail" and second["domu-config"] == "fail"


def test_example_inventory_in_fixtures_runs(tmp_path):
    done, data = run_checks(tmp_path, "--inventory", str(FIXTURES / "inventory.yaml"))
    assert done.returncode == 1 and len(data["hosts"]) == 2


def test_bad_inventory_is_a_usage_error(tmp_path):
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text("hosts:\n  a:\n    devices: ['zz:zz.z']\n")
    done, _ = run_checks(tmp_path, "--inventory", str(inventory))
    assert done.returncode == 4
    assert "malformed PCI address" in done.stderr


def test_missing_snapshot_is_a_usage_error(tmp_path):
    done, _ = run_checks(tmp_path, "--snapshot", str(tmp_path / "nope.json"))
    assert done.returncode == 4


def test_corrupt_snapshot_is_that_hosts_error(tmp_path):
    bad = tmp_path / "garbled.json"
    bad.write_text("{not json")
    done, data = run_checks(tmp_path, "--snapshot", str(bad))
    assert done.returncode == 1
    assert data["hosts"][0]["reachable"] is False
    assert "not a usable xenpass snapshot" in data["hosts"][0]["error"]


def html_rows(report: Path) -> dict[str, list]:
    """The per-test rows pytest-html embeds in its page (a JSON blob in an attribute)."""
    blob = re.search(r'data-jsonblob="(.*?)"', report.read_text(), re.S)
    assert blob, "no pytest-html data in the report"
    return {test_id: rows for test_id, rows in json.loads(html.unescape(blob.group(1)))["tests"].items() if rows}


def test_compact_report_lists_what_did_not_pass_and_counts_the_rest(tmp_path):
    snapshots = ["--snapshot", str(FIXTURES / "node03-broken-mpt2sas-alias.json"),
                 "--snapshot", str(FIXTURES / "node03-fixed.json")]
    full_dir, compact_dir = tmp_path / "full", tmp_path / "compact"
    full_dir.mkdir(), compact_dir.mkdir()
    _, full_data = run_checks(full_dir, *snapshots, "--report-detail=full")
    _, compact_data = run_checks(compact_dir, *snapshots, "--report-detail=compact")
    full_rows, compact_rows = html_rows(full_dir / "r.html"), html_rows(compact_dir / "r.html")
    passing = {t for t, rows in full_rows.items() if rows[0]["result"] == "Passed"}
    assert passing and len(full_rows) == 14
    assert set(compact_rows) == set(full_rows) - passing
    page = (compact_dir / "r.html").read_text()
    assert f"{len(passing)} Passed" in page and f"({len(passing):,} passing tests are counted, not listed)" in page
    assert page.count("<td class='xp-pass'>pass</td>") == len(passing)  # the matrix still shows each one
    assert len(page) < len((full_dir / "r.html").read_text())
    assert "<details><summary>host × device × rule (2 rows, click to open)</summary>" in page
    for data in (full_data, compact_data):
        data.pop("collect_seconds")
        data.pop("generated_at")
        for host in data["hosts"]:
            host.pop("seconds")  # timings and the time of writing: all that differs between two runs
    assert compact_data == full_data  # the JSON keeps everything
