"""--fix for real: plans applied over SSH to fake dom0 roots, then the host is collected and judged again."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fakehost import build
from tests.support.scenarios import SCENARIOS
from tests.support.sshd import Sshd, env_without_ssh_agent
from xenpass.engine import evaluate
from xenpass.facts.collector import collect
from xenpass.facts.host import HostFacts
from xenpass.fix import plan_device
from xenpass.fix.apply import apply_plan
from xenpass.parse.bdf import parse_bdf
from xenpass.rules.base import Context
from xenpass.transport import connect

ROOT = Path(__file__).resolve().parents[2]
NODE03 = parse_bdf("01:00.0")
pytestmark = [pytest.mark.ssh, pytest.mark.skipif(os.geteuid() != 0, reason="chroot and sshd need root")]


def tree(root: Path) -> dict[str, str]:
    """Every regular file under etc/ and boot/ with its digest: what --fix may change."""
    out = {}
    for top in ("etc", "boot"):
        for path in sorted((root / top).rglob("*")):
            if path.is_file() and not path.is_symlink():
                out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def node03(tmp_path):
    root = build(SCENARIOS["node03-broken-mpt2sas-alias"](), tmp_path / "root")
    with Sshd(tmp_path / "sshd", root, name="node03") as server:
        host = connect("ssh://node03", ssh_config=str(server.ssh_config))
        yield root, host, server


def judge(host) -> tuple[HostFacts, dict[str, str]]:
    facts = HostFacts(collect(host, "node03"))
    return facts, {r: v.status.value for r, v in evaluate(facts, NODE03, Context(("/etc/xen/nas.cfg",))).items()}


def test_broken_node03_becomes_compliant_and_a_second_run_changes_nothing(node03):
    root, host, _ = node03
    facts, before = judge(host)
    assert before["native-driver-blacklisted"] == "fail"
    report = apply_plan(host, plan_device(facts, NODE03, Context(("/etc/xen/nas.cfg",))))
    assert report.failed is None, report.render()
    facts, after = judge(host)
    assert set(after.values()) == {"pass"}, after
    assert (root / "etc/modprobe.d/xen-passthrough.conf").read_text() == "blacklist mpt3sas\n"
    assert list((root / "boot").glob(".initramfs-lts.xenpass-*")), "old image kept"
    assert "blacklist mpt3sas" in "".join(facts.boot_image.content.config_files.values())
    snapshot = tree(root)
    second = plan_device(facts, NODE03, Context(("/etc/xen/nas.cfg",)))
    assert second.empty
    assert apply_plan(host, second).applied == []
    assert tree(root) == snapshot


def test_edits_keep_mode_owner_and_leave_a_backup(node03):
    root, host, _ = node03
    (root / "etc/modules").chmod(0o600)
    os.chown(root / "etc/modules", 123, 45)
    (root / "etc/modules").write_text("xen_pciback\nxen_pciback hide=(01:00.0)\n")
    facts, _ = judge(host)
    report = apply_plan(host, plan_device(facts, NODE03, Context(), only={"hide-entry"}))
    assert report.failed is None
    stat = (root / "etc/modules").stat()
    assert (stat.st_mode & 0o777, stat.st_uid, stat.st_gid) == (0o600, 123, 45)
    assert (root / "etc/modules").read_text() == "xen_pciback hide=(0000:01:00.0)\n"
    backups = list((root / "etc").glob(".modules.xenpass-*"))
    assert backups and backups[0].read_text() == "xen_pciback\nxen_pciback hide=(01:00.0)\n"
    assert not list((root / "etc").glob(".xenpass.*")), "no temp file left"


def test_a_failing_step_stops_the_rest_and_says_how_to_roll_back(node03):
    root, host, _ = node03
    (root / "var/lib/fakehost/fail-initramfs").write_text("")
    facts, _ = judge(host)
    report = apply_plan(host, plan_device(facts, NODE03, Context()))
    assert report.failed and "mkinitfs" in report.failed and "no space left" in report.failed
    assert report.applied == ["edit /etc/modprobe.d/xen-passthrough.conf"]
    # the image was backed up before mkinitfs ran: listed, and put back first by the rollback
    (backup,) = report.backups
    assert backup.startswith("/boot/.initramfs-lts.xenpass-")
    assert report.rollback == [f"mv -f -- {backup} /boot/initramfs-lts",
                               "rm -f -- /etc/modprobe.d/xen-passthrough.conf"]
    device = root / os.readlink(root / "sys/bus/pci/devices/0000:01:00.0").lstrip("/")
    assert os.readlink(device / "driver").endswith("/mpt3sas"), "xl step not run"


def test_a_file_changed_since_collection_is_not_overwritten(node03):
    root, host, _ = node03
    (root / "etc/modules").write_text("xen_pciback\nxen_pciback hide=(01:00.0)\n")
    facts, _ = judge(host)
    (root / "etc/modules").write_text("# edited by someone else meanwhile\n")
    report = apply_plan(host, plan_device(facts, NODE03, Context(), only={"hide-entry"}))
    assert report.failed and "changed since facts were collected" in report.failed
    assert (root / "etc/modules").read_text() == "# edited by someone else meanwhile\n"


def test_refused_unsafe_blacklist_leaves_files_byte_identical(tmp_path):
    scenario = SCENARIOS["node03-broken-mpt2sas-alias"]()
    scenario.files["/etc/modules"] = "xen_pciback hide=(02:00.0)\n"
    nic = next(d for d in scenario.devices if d.bdf == "0000:02:00.0")
    nic.driver = "e1000e"  # 00:19.0, the host's own NIC, is bound to e1000e too
    root = build(scenario, tmp_path / "root")
    with Sshd(tmp_path / "sshd", root, name="node03") as server:
        host = connect("ssh://node03", ssh_config=str(server.ssh_config))
        facts = HostFacts(collect(host, "node03"))
        plan = plan_device(facts, parse_bdf("02:00.0"), Context(), only={"native-driver-blacklisted"})
        before = tree(root)
        report = apply_plan(host, plan)
    assert plan.refusals and "0000:00:19.0" in plan.refusals[0].reason
    assert report.applied == [] and tree(root) == before


def test_fix_from_the_command_line_shows_before_and_after(node03, tmp_path):
    _, _, server = node03
    out = tmp_path / "c.json"
    cmd = [sys.executable, "-m", "pytest", "checks/", "-q", "--hosts=ssh://node03", f"--ssh-config={server.ssh_config}",
           "--fix", f"--compliance-json={out}", f"--html={tmp_path / 'r.html'}"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env_without_ssh_agent())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "blacklist mpt3sas" in done.stderr  # the plan is printed before it is applied
    device = json.loads(out.read_text())["hosts"][0]["devices"][0]
    rules = {r["id"]: r for r in device["rules"]}
    assert rules["native-driver-blacklisted"]["before"] == "fail"
    assert rules["native-driver-blacklisted"]["status"] == "pass"
    assert device["applied"]["failed"] is None
    page = (tmp_path / "r.html").read_text()  # the report says what was applied and how to undo it
    assert "Fix history</h2>" in page and "fix applied: 3 of 3 steps" in page
    assert "<td>native-driver-blacklisted</td><td class='xp-fail'>fail</td><td>→</td><td class='xp-pass'>pass</td>" \
        in page
    assert "applied — edit /etc/modprobe.d/xen-passthrough.conf" in page
    assert device["applied"]["backups"][0].startswith("/boot/.initramfs-lts.xenpass-")
    rollback = page.index(device["applied"]["rollback"][0])  # every backup and rollback command, in order
    assert device["applied"]["backups"][0] in page and rollback < page.index(device["applied"]["rollback"][-1])
    assert "apply with --fix" not in page
    assert "xenpass --fix, per device:" in done.stdout and "node03 0000:01:00.0: fix applied: 3 of 3" in done.stdout
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env_without_ssh_agent())
    assert again.returncode == 0 and "plan" not in again.stderr
    assert "xenpass --fix: nothing to fix (1 device checked)" in again.stdout


def test_fix_on_a_snapshot_plans_but_cannot_apply(tmp_path):
    out = tmp_path / "c.json"
    cmd = [sys.executable, "-m", "pytest", "checks/", "-q", "--snapshot",
           str(ROOT / "fixtures/node03-broken-mpt2sas-alias.json"), "--fix", f"--compliance-json={out}",
           f"--html={tmp_path / 'r.html'}"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "snapshot target: the plan is shown, nothing can be applied" in done.stderr


def export_node03_from_cli(server: Sshd, exported: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`pytest checks/ --fix-export` against node03 over the real sshd, as a change review would run it."""
    return subprocess.run([sys.executable, "-m", "pytest", "checks/", "-q", "-p", "no:cacheprovider",
                           "--hosts=ssh://node03", f"--ssh-config={server.ssh_config}", "--device=01:00.0",
                           "--domu=/etc/xen/nas.cfg", f"--fix-export={exported}",
                           f"--compliance-json={tmp_path / 'c.json'}", f"--html={tmp_path / 'r.html'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env_without_ssh_agent())


def test_an_exported_fix_sh_makes_the_host_compliant_and_a_second_run_changes_nothing(node03, tmp_path):
    """--fix-export: the plan as a POSIX script a change review can approve; run by hand over ssh, it does what
    --fix does, and run again it finds everything applied and changes nothing."""
    root, _, server = node03
    exported = tmp_path / "export"
    done = export_node03_from_cli(server, exported, tmp_path)
    assert done.returncode == 1 and "fix export: 1 fix.sh written" in done.stdout, done.stdout[-2000:]
    script = exported / "node03" / "0000_01_00.0" / "fix.sh"
    assert json.loads((script.parent / "plan.json").read_text())["steps"]
    untouched = tree(root)

    def run_it() -> subprocess.CompletedProcess:
        return subprocess.run(["ssh", "-F", str(server.ssh_config), "node03", "sh -s"], input=script.read_bytes(),
                              capture_output=True, timeout=300, env=env_without_ssh_agent())

    first = run_it()
    assert first.returncode == 0, first.stderr.decode()[-2000:]
    assert b"xenpass: backup /etc/modprobe.d/" in first.stderr or b"xenpass: backup /boot/" in first.stderr
    assert tree(root) != untouched
    _, after = judge(connect("ssh://node03", ssh_config=str(server.ssh_config)))
    assert set(after.values()) == {"pass"}, after
    applied = tree(root)
    second = run_it()
    assert second.returncode == 0, second.stderr.decode()[-2000:]
    assert b"already applied" in second.stderr and b"skipped, no file changed" in second.stderr
    assert tree(root) == applied  # nothing changed, not even a new backup
