"""The exported Ansible playbook, run with ansible-playbook against fake dom0 roots behind a real sshd."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.fix.ansible_host import ansible_env, ansible_playbook, host_settings, install_python, python_tree
from tests.fix.test_apply_over_ssh import NODE03, export_node03_from_cli, judge, tree
from tests.support.fakehost import build, write
from tests.support.scenarios import SCENARIOS
from tests.support.sshd import Sshd
from xenpass.facts.collector import collect
from xenpass.facts.host import HostFacts
from xenpass.fix import plan_device
from xenpass.fix.ansible_export import boot_mtimes, fix_playbook, inventory_text, ssh_connection
from xenpass.fix.base import FileEdit, Plan
from xenpass.rules.base import Context
from xenpass.transport import connect

ROOT = Path(__file__).resolve().parents[2]
DOMU = Context(("/etc/xen/nas.cfg",))
pytestmark = [pytest.mark.ssh, pytest.mark.skipif(os.geteuid() != 0, reason="chroot and sshd need root")]


@pytest.fixture(scope="module")
def python_cache(tmp_path_factory) -> Path:
    return python_tree(tmp_path_factory.mktemp("python"))


@pytest.fixture
def node03(tmp_path, python_cache):
    """The broken node03 with Python, behind sshd: (root, server, interpreter path on the host)."""
    root = build(SCENARIOS["node03-broken-mpt2sas-alias"](), tmp_path / "root")
    interpreter = install_python(root, python_cache)
    with Sshd(tmp_path / "sshd", root, name="node03") as server:
        yield root, server, interpreter


def export(server: Sshd, directory: Path, plan: Plan | None = None, only: set[str] | None = None,
           domus: Context = DOMU) -> Path:
    """What --fix-export writes for node03 (the plan from its live facts unless given): the playbook's path."""
    runner = connect("ssh://node03", ssh_config=str(server.ssh_config))
    facts = HostFacts(collect(runner, "node03"))
    plan = plan or plan_device(facts, NODE03, domus, only)
    connection, why = ssh_connection(runner.backend)
    assert connection is not None, why
    text, files = fix_playbook(plan, str(NODE03), "20260101T000000", facts.raw.collected_at, connection,
                               timeout=120, image_mtimes=boot_mtimes(facts))
    target = directory / "node03" / "0000_01_00.0"
    target.mkdir(parents=True)
    for name, data in files.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(data)
    (target / "fix.yml").write_text(text)
    (target.parent / "inventory.yml").write_text(inventory_text(connection))
    return target / "fix.yml"


def play(playbook: Path, interpreter: str, *extra: str, inventory: Path | None = None) -> subprocess.CompletedProcess:
    inventory = inventory or playbook.parent.parent / "inventory.yml"
    return subprocess.run([ansible_playbook(), "-i", str(inventory), str(playbook), *host_settings(interpreter),
                           *extra], capture_output=True, text=True, timeout=600, env=ansible_env(), cwd=playbook.parent)


def recap(done: subprocess.CompletedProcess) -> dict[str, int]:
    """The PLAY RECAP line of the one fixed host: ok, changed, failed, skipped..."""
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("xenpass-node03-"))
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def backups(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.name.endswith("~") or ".xenpass-" in p.name)


MODULES = "xen_pciback\nxen_pciback hide=(01:00.0)\n"  # Alpine's trap: the plain line first, the hide= line ignored


@pytest.mark.parametrize(("path", "only", "refusal"), [
    ("/etc/modules", {"hide-entry"}, "changed since facts were collected"),
    ("/etc/modprobe.d/xen-passthrough.conf", None, "appeared since facts were collected"),
])
def test_a_file_changed_between_export_and_apply_stops_the_playbook_untouched(node03, tmp_path, path, only, refusal):
    """The content guard: a file the plan edits is changed (or the file it creates appears) after the export; the
    playbook must stop there, not overwrite it, and run nothing after it."""
    root, server, interpreter = node03
    (root / "etc/modules").write_text(MODULES)
    playbook = export(server, tmp_path / "export", only=only)
    meanwhile = root / path.lstrip("/")
    meanwhile.write_text("# edited by someone else meanwhile\n")
    before = tree(root)
    done = play(playbook, interpreter)
    assert done.returncode != 0, done.stdout[-3000:]
    assert f"{path}: {refusal}; nothing was changed" in done.stdout, done.stdout[-3000:]
    assert recap(done)["changed"] == 0 and recap(done)["failed"] == 1
    assert meanwhile.read_text() == "# edited by someone else meanwhile\n"
    assert tree(root) == before and backups(root) == []  # not the image either: the play stopped at the guard
    device = root / os.readlink(root / "sys/bus/pci/devices/0000:01:00.0").lstrip("/")
    assert os.readlink(device / "driver").endswith("/mpt3sas"), "xl step not run"


def test_the_exported_playbook_makes_the_host_compliant_and_a_second_run_changes_nothing(node03, tmp_path):
    """End to end from the command line: --fix-export writes fix.yml; ansible-playbook applies it; xenpass then
    finds every rule passing; run again, the play changes nothing and makes no backup."""
    root, server, interpreter = node03
    exported = tmp_path / "export"
    done = export_node03_from_cli(server, exported, tmp_path)
    assert done.returncode == 1 and "fix export: 1 fix.sh written" in done.stdout, done.stdout[-2000:]
    assert "1 Ansible fix.yml" in done.stdout
    playbook = exported / "node03" / "0000_01_00.0" / "fix.yml"
    untouched = tree(root)
    first = play(playbook, interpreter)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert recap(first)["changed"] >= 3 and recap(first)["failed"] == 0
    assert tree(root) != untouched
    assert (root / "etc/modprobe.d/xen-passthrough.conf").read_text() == "blacklist mpt3sas\n"
    assert list((root / "boot").glob(".initramfs-lts.xenpass-*")), "old image kept"
    _, after = judge(connect("ssh://node03", ssh_config=str(server.ssh_config)))
    assert set(after.values()) == {"pass"}, after
    applied, kept = tree(root), backups(root)
    second = play(playbook, interpreter)
    assert second.returncode == 0, second.stdout[-3000:]
    assert recap(second)["changed"] == 0 and recap(second)["failed"] == 0
    assert tree(root) == applied and backups(root) == kept  # nothing rewritten, no new backup


def test_check_mode_on_a_non_compliant_host_changes_nothing_and_says_what_would(node03, tmp_path):
    root, server, interpreter = node03
    playbook = export(server, tmp_path / "export")
    before = tree(root)
    done = play(playbook, interpreter, "--check", "--diff")
    assert done.returncode == 0, done.stdout[-3000:]
    assert tree(root) == before and backups(root) == []
    assert "+blacklist mpt3sas" in done.stdout  # the diff it would apply
    assert "would run: mkinitfs -o /boot/initramfs-lts" in done.stdout
    assert "would run: xl pci-assignable-add 0000:01:00.0" in done.stdout
    assert recap(done)["failed"] == 0 and recap(done)["changed"] >= 1
    device = root / os.readlink(root / "sys/bus/pci/devices/0000:01:00.0").lstrip("/")
    assert os.readlink(device / "driver").endswith("/mpt3sas")


def test_another_connection_or_inventory_is_refused_before_anything_runs(node03, tmp_path):
    """The playbook reaches only the connection it was made for: another port given on the command line, an
    inventory that does not name the host (no silent 'no hosts matched'), or an ssh config edited since the
    export (its alias may lead elsewhere) stops it."""
    root, server, interpreter = node03
    playbook = export(server, tmp_path / "export")
    before = tree(root)
    moved = play(playbook, interpreter, "-e", "ansible_port=2")
    assert moved.returncode != 0 and "not the one the plan was made for" in moved.stdout
    other = tmp_path / "other.yml"
    other.write_text("all:\n  children:\n    node03:\n      hosts:\n        node03: {}\n")
    elsewhere = play(playbook, interpreter, inventory=other)
    assert elsewhere.returncode != 0 and "is not in the inventory" in elsewhere.stdout
    with server.ssh_config.open("a") as config:  # the alias could now lead to another machine
        config.write("# HostName edited after the export\n")
    redirected = play(playbook, interpreter)
    assert redirected.returncode != 0 and "changed since the export: the connection may lead elsewhere" in \
        redirected.stdout, redirected.stdout[-3000:]
    assert tree(root) == before


def test_host_text_in_paths_and_contents_is_never_templated(node03, tmp_path):
    """A file name and contents holding Jinja are data: the file is edited as named, the braces written as they
    are, and nothing in them runs on the controller."""
    root, server, interpreter = node03
    marker = tmp_path / "templated"
    jinja = "{{ lookup('pipe', 'touch " + str(marker) + "') }}"
    path = f"/etc/modprobe.d/{jinja}.conf"
    write(root, path, "blacklist mpt2sas\n")
    plan = Plan("node03", NODE03, (FileEdit("native-driver-blacklisted", path, "blacklist mpt2sas\n",
                                            f"# {jinja}\nblacklist mpt3sas\n", f"why {jinja}"),))
    playbook = export(server, tmp_path / "export", plan)
    done = play(playbook, interpreter)
    assert done.returncode == 0, done.stdout[-3000:]
    assert (root / path.lstrip("/")).read_text() == f"# {jinja}\nblacklist mpt3sas\n"
    assert not marker.exists()


def test_bytes_yaml_cannot_carry_go_in_a_file_beside_the_playbook(node03, tmp_path):
    """A Latin-1 byte and a NUL in a config file: the playbook copies the exact bytes."""
    root, server, interpreter = node03
    old, new = b"# caf\xe9\n\x00blacklist mpt2sas\n", b"# caf\xe9\n\x00blacklist mpt3sas\n"
    (root / "etc/modprobe.d/xen-passthrough.conf").write_bytes(old)
    decode = lambda data: data.decode("utf-8", "surrogateescape")  # noqa: E731
    plan = Plan("node03", NODE03, (FileEdit("native-driver-blacklisted", "/etc/modprobe.d/xen-passthrough.conf",
                                            decode(old), decode(new), "exact bytes"),))
    playbook = export(server, tmp_path / "export", plan)
    assert (playbook.parent / "files/step-1").read_bytes() == new
    done = play(playbook, interpreter)
    assert done.returncode == 0, done.stdout[-3000:]
    assert (root / "etc/modprobe.d/xen-passthrough.conf").read_bytes() == new


def test_a_symlinked_file_is_written_where_it_points_keeping_mode_and_owner_with_a_backup(node03, tmp_path):
    root, server, interpreter = node03
    site = write(root, "/usr/share/site/modules", MODULES, 0o640)
    os.chown(site, 123, 45)
    (root / "etc/modules").unlink()
    (root / "etc/modules").symlink_to("/usr/share/site/modules")
    playbook = export(server, tmp_path / "export", only={"hide-entry"})
    done = play(playbook, interpreter)
    assert done.returncode == 0, done.stdout[-3000:]
    assert os.readlink(root / "etc/modules") == "/usr/share/site/modules"
    assert site.read_text() == "xen_pciback hide=(0000:01:00.0)\n"
    stat = site.stat()
    assert (stat.st_mode & 0o777, stat.st_uid, stat.st_gid) == (0o640, 123, 45)
    backup = site.parent / ".modules.xenpass-20260101T000000"  # fix.sh's backup, beside the file the link names
    assert backup.read_text() == MODULES and sorted(p.name for p in site.parent.iterdir()) == [backup.name, "modules"]
    stat = backup.stat()
    assert (stat.st_mode & 0o777, stat.st_uid, stat.st_gid) == (0o640, 123, 45)  # moved back, it is as it was
    assert recap(done)["failed"] == 0


def test_a_rebuild_that_failed_runs_again_on_the_next_run_though_the_edits_are_done(node03, tmp_path):
    """The first run stops at mkinitfs (no space left) after writing the blacklist; the next run finds the edit
    applied but the image still the one the facts saw, so it rebuilds it (fix.sh would skip it), then hands the
    device over: compliant."""
    root, server, interpreter = node03
    playbook = export(server, tmp_path / "export")
    (root / "var/lib/fakehost/fail-initramfs").write_text("")
    first = play(playbook, interpreter)
    assert first.returncode != 0 and "no space left" in first.stdout, first.stdout[-3000:]
    assert (root / "etc/modprobe.d/xen-passthrough.conf").read_text() == "blacklist mpt3sas\n"
    (root / "var/lib/fakehost/fail-initramfs").unlink()
    second = play(playbook, interpreter)
    assert second.returncode == 0, second.stdout[-3000:]
    assert recap(second)["changed"] >= 2  # the rebuild and xl, not the edit
    _, after = judge(connect("ssh://node03", ssh_config=str(server.ssh_config)))
    assert set(after.values()) == {"pass"}, after


def startable(directory: Path) -> list[str]:
    """What xendomains would start from `directory`: Xen's and Alpine's scripts both take the shell's
    `$XENDOMAINS_AUTO/*` (no dot-files, nothing else filtered), bash here as in Xen's xendomains."""
    done = subprocess.run(["bash", "-c", 'cd "$1" && for f in *; do [ -e "$f" ] && printf "%s\\n" "$f"; done',
                           "-", str(directory)], capture_output=True, text=True, check=True, timeout=30)
    return done.stdout.split()


def test_a_domu_config_in_xen_auto_leaves_no_second_startable_config_there(node03, tmp_path):
    """A domU config kept as a regular file in /etc/xen/auto: xendomains starts every `*` there at boot, and a
    `NAME.PID.DATE~` backup holds the same `name =`, so if the new config failed to start the OLD one would.
    After the play the only startable file there is the config itself; the backup is the hidden
    `.nas.cfg.xenpass-WHEN` fix.sh makes beside it, with the old bytes, mode and owner; a second run adds none."""
    root, server, interpreter = node03
    auto = root / "etc/xen/auto"
    auto.mkdir()
    old = "name = 'nas'\ntype = 'pv'\nmemory = 1024\nkernel = '/boot/nas/vmlinuz'\n"  # the device not given yet
    (root / "etc/xen/nas.cfg").unlink()
    write(root, "/etc/xen/auto/nas.cfg", old, 0o600)
    playbook = export(server, tmp_path / "export", only={"domu-config"}, domus=Context(("/etc/xen/auto/nas.cfg",)))
    done = play(playbook, interpreter)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "pci = [ '01:00.0' ]" in (auto / "nas.cfg").read_text()
    assert startable(auto) == ["nas.cfg"], sorted(p.name for p in auto.iterdir())
    backup = auto / ".nas.cfg.xenpass-20260101T000000"
    assert backup.read_text() == old and backup.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in auto.iterdir()) == [backup.name, "nas.cfg"]
    again = play(playbook, interpreter)
    assert again.returncode == 0 and recap(again)["changed"] == 0, again.stdout[-3000:]
    assert sorted(p.name for p in auto.iterdir()) == [backup.name, "nas.cfg"] and backup.read_text() == old


def test_a_backup_name_another_file_holds_stops_the_play_before_any_change(node03, tmp_path):
    """fix.sh refuses a taken backup name; the playbook too, at its guards: the file there is not overwritten
    (it may be someone's only copy) and nothing is edited."""
    root, server, interpreter = node03
    (root / "etc/modules").write_text(MODULES)
    playbook = export(server, tmp_path / "export", only={"hide-entry"})
    taken = write(root, "/etc/.modules.xenpass-20260101T000000", "someone else's file\n")
    before = tree(root)
    done = play(playbook, interpreter)
    assert done.returncode != 0 and "/etc/modules: its backup name is taken by another file; nothing was changed" \
        in done.stdout, done.stdout[-3000:]
    assert recap(done)["changed"] == 0 and tree(root) == before
    assert taken.read_text() == "someone else's file\n" and (root / "etc/modules").read_text() == MODULES


def test_a_backup_an_interrupted_run_left_is_kept_and_the_edit_made(node03, tmp_path):
    """A run cut off after its backup copy, before the write: the backup holds the bytes the plan was made
    from, so the next run accepts it, keeps it as it is (force: false) and makes the edit."""
    root, server, interpreter = node03
    (root / "etc/modules").write_text(MODULES)
    playbook = export(server, tmp_path / "export", only={"hide-entry"})
    kept = write(root, "/etc/.modules.xenpass-20260101T000000", MODULES, 0o600)
    done = play(playbook, interpreter)
    assert done.returncode == 0, done.stdout[-3000:]
    assert (root / "etc/modules").read_text() == "xen_pciback hide=(0000:01:00.0)\n"
    assert kept.read_text() == MODULES and kept.stat().st_mode & 0o777 == 0o600
