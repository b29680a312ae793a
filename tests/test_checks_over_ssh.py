"""The suites as a user runs them: `pytest checks/` over real SSH to fake dom0s behind a real sshd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.fakehost import build
from tests.support.scenarios import SCENARIOS
from tests.support.sshd import Sshd, env_without_ssh_agent, free_port, new_ssh_pids, ssh_pids

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.ssh, pytest.mark.skipif(os.geteuid() != 0, reason="chroot and sshd need root")]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Two fake dom0s and a hung host, each behind its own sshd on 127.0.0.1."""
    base = tmp_path_factory.mktemp("fleet")
    started = {}
    for name, scenario in (("node03", "node03-broken-mpt2sas-alias"), ("deb12", "debian12-kmod-compliant")):
        root = build(SCENARIOS[scenario](), base / name / "root")
        started[name] = Sshd(base / name / "sshd", root, name=name).start()
    started["hung"] = Sshd(base / "hung" / "sshd", None, name="hung", force_command="sleep 60").start()
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture(scope="module")
def fleet(servers, tmp_path_factory):
    """One ssh_config naming every server, plus a host whose port is closed."""
    base = tmp_path_factory.mktemp("fleet-config")
    dead = Sshd(base / "dead", None, name="dead", port=free_port())
    config = base / "ssh_config"
    config.write_text("".join(s.config_block() for s in servers.values()) + dead.config_block().replace(
        f"IdentityFile {dead.key}", f"IdentityFile {servers['node03'].key}"))
    return config


def run_checks(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "checks/", "-p", "no:cacheprovider", "-q", "--tb=short", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, env=env_without_ssh_agent())


def test_fleet_over_ssh(fleet, tmp_path):
    report, result_json = tmp_path / "r.html", tmp_path / "c.json"
    before = ssh_pids()
    start = time.monotonic()
    done = run_checks("--hosts=ssh://node03,ssh://deb12,ssh://dead", f"--ssh-config={fleet}",
                      f"--html={report}", f"--compliance-json={result_json}")
    elapsed = time.monotonic() - start
    assert done.returncode == 1, done.stdout + done.stderr
    data = {h["host"]: h for h in json.loads(result_json.read_text())["hosts"]}
    node03 = {r["id"]: r for r in data["node03"]["devices"][0]["rules"]}
    assert node03["native-driver-blacklisted"]["status"] == "fail"
    assert "only an alias of mpt3sas" in node03["native-driver-blacklisted"]["reason"]
    assert node03["hide-entry"]["status"] == "pass"
    assert data["node03"]["remote_commands"] == 1
    deb = data["deb12"]["devices"][0]
    assert deb["bdf"] == "0000:00:05.0"
    assert {r["status"] for r in deb["rules"]} <= {"pass", "skip"}
    assert data["dead"]["reachable"] is False
    assert "Traceback" not in done.stdout
    error_lines = [ln for ln in done.stdout.splitlines() if "dead" in ln and "ERROR" in ln]
    assert error_lines and all(len(ln) < 300 for ln in error_lines)
    html = report.read_text()
    assert "Compliance matrix" in html and "only an alias of mpt3sas" in html
    assert new_ssh_pids(before) == set()  # the run's ssh masters were told to exit at its end
    print(f"\nthree hosts (one unreachable) over loopback SSH, whole pytest run: {elapsed:.2f} s")


def test_one_host_names_test_ids_by_host_device_rule(fleet, tmp_path):
    done = run_checks("--hosts=ssh://node03", f"--ssh-config={fleet}", "--device", "01:00.0", "-m",
                      "not xen-iommu", "-rA", f"--compliance-json={tmp_path / 'c.json'}",
                      f"--html={tmp_path / 'r.html'}")
    assert "node03-0000:01:00.0-hide-entry" in done.stdout
    assert "xen-iommu" not in json.dumps(json.loads((tmp_path / "c.json").read_text()))


def test_malformed_device_is_a_usage_error_before_anything_runs(tmp_path):
    done = run_checks("--hosts=ssh://nowhere.invalid", "--device", "01:00", f"--html={tmp_path / 'r.html'}")
    assert done.returncode == 4
    assert "malformed PCI address '01:00'" in done.stderr + done.stdout


def test_record_then_replay_gives_the_same_verdicts(fleet, tmp_path):
    live = run_checks("--hosts=ssh://node03", f"--ssh-config={fleet}", f"--record={tmp_path / 'snaps'}",
                      f"--compliance-json={tmp_path / 'live.json'}", f"--html={tmp_path / 'live.html'}")
    replay = run_checks("--snapshot", str(tmp_path / "snaps" / "node03.json"),
                        f"--compliance-json={tmp_path / 'replay.json'}", f"--html={tmp_path / 'replay.html'}")
    assert live.returncode == replay.returncode == 1

    def verdicts(path: Path) -> list:
        host = json.loads(path.read_text())["hosts"][0]
        return [(d["bdf"], [(r["id"], r["status"], r["reason"]) for r in d["rules"]]) for d in host["devices"]]

    assert verdicts(tmp_path / "live.json") == verdicts(tmp_path / "replay.json")


def test_a_hung_host_times_out_alone(fleet, tmp_path):
    start = time.monotonic()
    done = run_checks("--hosts=ssh://node03,ssh://hung", f"--ssh-config={fleet}", "--host-timeout=3",
                      f"--compliance-json={tmp_path / 'c.json'}", f"--html={tmp_path / 'r.html'}")
    assert time.monotonic() - start < 30
    hosts = {h["host"]: h for h in json.loads((tmp_path / "c.json").read_text())["hosts"]}
    assert hosts["hung"]["reachable"] is False and "timed out after 3 s" in hosts["hung"]["error"]
    assert hosts["node03"]["devices"][0]["rules"]
    assert done.returncode == 1


def ansible_inventory(servers, tmp_path: Path, extra: str = "") -> Path:
    """An INI inventory of node03 and deb12 in group dom0s, ports and keys from their sshds."""
    lines = ["[dom0s]"]
    for name in ("node03", "deb12"):
        server = servers[name]
        lines.append(f"{name} ansible_host=127.0.0.1 ansible_port={server.port} ansible_user=root "
                     f"ansible_ssh_private_key_file={server.key} {extra}"
                     "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("\n".join(lines) + "\n")
    return inventory


def test_ansible_inventory_is_a_source_of_hosts(servers, tmp_path):
    """testinfra's ansible backend: hosts, ports, users and keys come from the inventory, names from it too."""
    inventory = ansible_inventory(servers, tmp_path)
    result_json = tmp_path / "c.json"
    before = ssh_pids()
    done = run_checks(f"--ansible-inventory={inventory}", "--hosts=ansible://dom0s",
                      f"--compliance-json={result_json}", f"--html={tmp_path / 'r.html'}")
    assert done.returncode == 1, done.stdout + done.stderr
    data = {h["host"]: h for h in json.loads(result_json.read_text())["hosts"]}
    assert sorted(data) == ["deb12", "node03"]
    assert all(h["reachable"] for h in data.values())
    node03 = {r["id"]: r["status"] for r in data["node03"]["devices"][0]["rules"]}
    assert node03["native-driver-blacklisted"] == "fail"
    assert new_ssh_pids(before) == set()


def test_the_ansible_playbook_collects_what_xenpass_collects(servers, tmp_path):
    """ansible/collect.yml with forks writes snapshots that judge exactly like xenpass's own collection."""
    # the script module's file goes over the shell (sftp cannot reach into the chroot), its temp dir in /tmp
    inventory = ansible_inventory(servers, tmp_path,
                                  "ansible_ssh_transfer_method=piped ansible_remote_tmp=/tmp/.ansible ")
    snapshots = tmp_path / "snapshots"
    env = env_without_ssh_agent() | {"ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_NOCOLOR": "1"}
    played = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), "-f", "10",
                             "ansible/collect.yml", "-e", f"xenpass_work={tmp_path / 'work'}",
                             "-e", f"xenpass_snapshots={snapshots}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert played.returncode == 0, played.stdout[-3000:] + played.stderr[-3000:]
    assert sorted(p.name for p in snapshots.glob("*.json")) == ["deb12.json", "node03.json"]

    offline = run_checks(f"--snapshot={snapshots}", f"--compliance-json={tmp_path / 'a.json'}",
                         f"--html={tmp_path / 'a.html'}")
    live = run_checks(f"--ansible-inventory={inventory}", "--hosts=ansible://dom0s",
                      f"--compliance-json={tmp_path / 'b.json'}", f"--html={tmp_path / 'b.html'}")
    assert offline.returncode == live.returncode == 1, offline.stdout + offline.stderr

    def verdicts(path: Path) -> dict:
        hosts = json.loads(path.read_text())["hosts"]
        return {(h["host"], d["bdf"], r["id"]): (r["status"], r["reason"])
                for h in hosts for d in h["devices"] for r in d["rules"]}

    assert verdicts(tmp_path / "a.json") == verdicts(tmp_path / "b.json")
    assert verdicts(tmp_path / "a.json")[("node03", "0000:01:00.0", "native-driver-blacklisted")][0] == "fail"


@pytest.mark.parametrize("inventory_text, spec, message", [
    ("[x\nbad", "ansible://all", "cannot expand hosts"),
    ("[dom0s]\nnode9 ansible_host=127.0.0.1\n", "ansible://nogroup", "no hosts match ansible://nogroup"),
])
def test_an_inventory_that_names_no_host_is_a_usage_error(tmp_path, inventory_text, spec, message):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(inventory_text)
    done = run_checks(f"--ansible-inventory={inventory}", f"--hosts={spec}", f"--html={tmp_path / 'r.html'}")
    assert done.returncode == 4, done.stdout + done.stderr
    assert message in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
