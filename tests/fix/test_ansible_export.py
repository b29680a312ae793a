"""The exported playbook as data: golden files, ansible.builtin only, and exactly the plan's values once Ansible
has loaded it (its own loader: `!unsafe`, YAML 1.1 resolution and template trust as ansible-playbook sees them).
XENPASS_UPDATE_GOLDEN=1 rewrites the golden files."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import testinfra.backend
from ansible.parsing.dataloader import DataLoader
from ansible.template import is_trusted_as_template

from tests.conftest import fixture_names, load_fixture
from tests.fix.ansible_host import ansible_env, ansible_playbook
from tests.fix.test_plans import context_for
from tests.rules.test_fixture_verdicts import EXPECTED
from xenpass.fix import plan_device
from xenpass.fix.ansible_export import Connection, boot_mtimes, fix_playbook, inventory_text, ssh_connection
from xenpass.fix.base import Command, FileEdit, Plan
from xenpass.parse.bdf import parse_bdf
from xenpass.transport import runner_for

GOLDEN = Path(__file__).parent / "golden" / "ansible"
CONNECTION = Connection("node03", "root", 22, "-F /etc/xenpass/ssh_config")
WHEN = "20260101T000000"
MODULES = {"ansible.builtin.stat", "ansible.builtin.assert", "ansible.builtin.copy", "ansible.builtin.file",
           "ansible.builtin.command", "ansible.builtin.debug"}
TASK_KEYWORDS = {"name", "register", "when", "timeout", "changed_when", "failed_when", "check_mode"}


def planned(name: str) -> Plan:
    return plan_device(load_fixture(name), parse_bdf(EXPECTED[name][0]), context_for(name))


PLANNED = [n for n in fixture_names() if planned(n).steps]


def loaded(text: str, tmp_path: Path) -> list[dict]:
    """The playbook as ansible-playbook loads it (strings trusted as templates unless `!unsafe`)."""
    path = tmp_path / "fix.yml"
    path.write_text(text)
    return DataLoader().load_from_file(str(path), trusted_as_template=True)


def tasks(playbook: list[dict]) -> Iterator[dict]:
    for play in playbook:
        yield from play["tasks"]


def module_of(task: dict) -> str:
    (module,) = set(task) - TASK_KEYWORDS - {"vars"}
    return module


def strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def test_a_plan_is_exported_for_some_fixtures():
    assert len(PLANNED) >= 5, PLANNED


@pytest.mark.parametrize("name", PLANNED)
def test_playbook_matches_golden(name):
    facts = load_fixture(name)
    text, files = fix_playbook(planned(name), EXPECTED[name][0], WHEN, "2026-01-01T00:00:00Z", CONNECTION,
                               image_mtimes=boot_mtimes(facts))
    golden = GOLDEN / f"{name}.yml"
    if os.environ.get("XENPASS_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()
    assert files == {}


@pytest.mark.parametrize("name", PLANNED)
def test_only_builtin_modules_every_task_bounded_one_host_stop_on_failure(name, tmp_path):
    text, _ = fix_playbook(planned(name), "0000:01:00.0", WHEN, "", CONNECTION, timeout=77)
    checked, fixing = loaded(text, tmp_path)
    assert checked["hosts"] == "localhost"
    assert {module_of(t) for t in checked["tasks"]} <= {"ansible.builtin.assert", "ansible.builtin.stat"}
    assert fixing["hosts"] == CONNECTION.inventory_name and re.fullmatch(r"[A-Za-z0-9_.-]+", fixing["hosts"])
    assert fixing["any_errors_fatal"] is True and fixing["gather_facts"] is False
    for task in tasks([checked, fixing]):
        assert module_of(task) in MODULES, task
        assert task["timeout"] == 77, task
    copies = [t["ansible.builtin.copy"] for t in fixing["tasks"] if "ansible.builtin.copy" in t]
    assert all(c["backup"] is False for c in copies if not c.get("remote_src"))  # no NAME.PID.DATE~ in xen/auto
    assert all(c["force"] is False and c["dest"].endswith(f".xenpass-{WHEN}") for c in copies if c.get("remote_src"))
    commands = [t for t in fixing["tasks"] if "ansible.builtin.command" in t and "changed_when" not in t]
    assert all(t.get("when") or t["ansible.builtin.command"].get("creates") for t in commands), "idempotence"


@pytest.mark.parametrize("name", PLANNED)
def test_every_guard_runs_before_the_first_change(name, tmp_path):
    text, _ = fix_playbook(planned(name), "0000:01:00.0", WHEN, "", CONNECTION)
    fixing = loaded(text, tmp_path)[1]["tasks"]
    changing = [i for i, t in enumerate(fixing) if {"ansible.builtin.copy", "ansible.builtin.file"} & set(t)
                or ("ansible.builtin.command" in t and "changed_when" not in t)]
    guards = [i for i, t in enumerate(fixing) if "ansible.builtin.assert" in t]
    edits = [s for s in planned(name).steps if isinstance(s, FileEdit)]
    replaced = [s for s in edits if s.before is not None]
    assert len(guards) == 1 + len(edits) + len(replaced)  # the connection, each file, each file's backup name
    assert not changing or max(guards) < min(changing)


HOSTILE = "{{ lookup('pipe', 'touch /tmp/xenpass-pwned') }}"
AWKWARD = ["0000:01:00.0", "true", "null", "22", "0644", "~", "2026-01-01", "1:20", "<<", "=", "'q'\"q\"", "a\nb",
           " lead", "trail ", "#c", "{%raw%}", "x\r\ny", "\tTab\n  indented", "two\n\n\n", "a\n{{ b }}\n c ", HOSTILE]


def hostile_plan() -> Plan:
    steps: list[FileEdit | Command] = []
    for i, text in enumerate(AWKWARD):
        steps.append(FileEdit("hide-entry", f"/etc/modprobe.d/{text}.conf", f"old {text}\n", f"{text}\n", text))
        steps.append(Command("hide-entry", ("echo", text, f"/x/{i}"), text, backup=f"/boot/{text}"))
    return Plan("node03", parse_bdf("01:00.0"), tuple(steps))


def test_plan_text_loads_back_exactly_and_is_never_a_template(tmp_path):
    """Every path, content and argv loads back as the exact string the plan holds (not 60.0 for a BDF, not True
    for `true`), and no string holding host text is trusted as a template."""
    text, files = fix_playbook(hostile_plan(), "0000:01:00.0", WHEN, "", CONNECTION)
    assert files == {}
    fixing = loaded(text, tmp_path)[1]["tasks"]
    dests = [t["ansible.builtin.copy"]["dest"] for t in fixing if "content" in t.get("ansible.builtin.copy", {})]
    contents = [t["ansible.builtin.copy"]["content"] for t in fixing if "content" in t.get("ansible.builtin.copy", {})]
    argvs = [t["ansible.builtin.command"]["argv"] for t in fixing
             if t.get("ansible.builtin.command", {}).get("argv", [""])[0] == "echo"]
    assert dests == [f"/etc/modprobe.d/{t}.conf" for t in AWKWARD]
    assert contents == [f"{t}\n" for t in AWKWARD]
    assert argvs == [["echo", t, f"/x/{i}"] for i, t in enumerate(AWKWARD)]
    for value in strings(fixing):
        assert isinstance(value, str)
        if "lookup(" in value:
            assert not is_trusted_as_template(value), value


def test_bytes_that_are_not_utf8_go_to_a_file_copied_as_they_are():
    after = b"caf\xe9\x00\n".decode("utf-8", "surrogateescape")
    plan = Plan("node03", parse_bdf("01:00.0"), (FileEdit("hide-entry", "/etc/modules", "x\n", after, "why"),))
    text, files = fix_playbook(plan, "0000:01:00.0", WHEN, "", CONNECTION)
    assert files == {"files/step-1": b"caf\xe9\x00\n"}
    assert "src: files/step-1" in text and "content:" not in text


def test_the_inventory_name_is_the_whole_connection():
    names = {c.inventory_name for c in [CONNECTION, Connection("node03", "admin", 22, CONNECTION.ssh_args),
                                         Connection("node03", "root", 2222, CONNECTION.ssh_args),
                                         Connection("node03", "root", 22, "-F /other"),
                                         Connection("node03", "root", 22, CONNECTION.ssh_args, "root"),
                                         Connection("node03", "root", 22, CONNECTION.ssh_args, None, "/c", "0" * 64)]}
    assert len(names) == 6
    assert Connection("*,!x:[1]", "root", 22, "").inventory_name.startswith("xenpass-x_1-")


def test_the_connection_is_resolved_as_ssh_would_reach_the_host(tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text("Host node03\n  HostName 10.0.0.3\n  User admin\n  Port 2201\n")
    digest = hashlib.sha256(config.read_bytes()).hexdigest()
    found, why = ssh_connection(testinfra.backend.get_backend("ssh://node03", ssh_config=str(config)))
    assert found == Connection("node03", "admin", 2201, f"-F {config}", None, str(config), digest), why
    found, _ = ssh_connection(testinfra.backend.get_backend("ssh://root@node03:22", ssh_config=str(config),
                                                            ssh_identity_file="key", sudo=True))
    assert found == Connection("node03", "root", 22, f"-F {config} -i {Path('key').resolve()}", "root",
                               str(config), digest)
    none, why = ssh_connection(testinfra.backend.get_backend("ssh://root:secret@node03"))
    assert none is None and "password" in why and "secret" not in why
    none, why = ssh_connection(testinfra.backend.get_backend("local://"))
    assert none is None and "local" in why


def test_an_ansible_inventory_host_is_pinned_as_its_inventory_reaches_it(tmp_path, monkeypatch):
    """ansible://node9 (testinfra's ansible backend, its ssh connection): address, port, user, key and ssh
    arguments come from the user's inventory and are pinned in the playbook."""
    monkeypatch.setenv("PATH", f"{Path(ansible_playbook()).parent}:{os.environ['PATH']}")  # ansible-inventory
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[dom0s]\nnode9 ansible_host=127.0.0.1 ansible_port=2299 ansible_user=admin "
                         "ansible_ssh_private_key_file=/k ansible_ssh_common_args='-o StrictHostKeyChecking=no'\n")
    (backend,) = testinfra.backend.get_backends(["ansible://node9"], ansible_inventory=str(inventory),
                                                connection="ssh")
    found, why = ssh_connection(runner_for(backend).backend)
    assert found == Connection("127.0.0.1", "admin", 2299, "-o StrictHostKeyChecking=no -i /k"), why


def test_ansible_playbook_accepts_the_export(tmp_path):
    """`--list-tasks` with the exported inventory (it parses the whole playbook): what a reviewer runs first."""
    text, _ = fix_playbook(planned("node03-broken-mpt2sas-alias"), "0000:01:00.0", WHEN, "", CONNECTION)
    (tmp_path / "fix.yml").write_text(text)
    (tmp_path / "inventory.yml").write_text(inventory_text(CONNECTION))
    done = subprocess.run([ansible_playbook(), "-i", "inventory.yml", "fix.yml", "--list-tasks"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env=ansible_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "play #2 (xenpass-node03-" in done.stdout and "step 3: run xl pci-assignable-add" in done.stdout


def test_a_snapshot_gets_fix_sh_and_says_why_there_is_no_playbook(tmp_path):
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "pytest", "checks/", "-q", "-p", "no:cacheprovider", "--snapshot",
                           str(root / "fixtures/node03-broken-mpt2sas-alias.json"), f"--fix-export={tmp_path / 'x'}",
                           f"--html={tmp_path / 'r.html'}"], cwd=root, capture_output=True, text=True, timeout=300)
    assert "fix export: 1 fix.sh written under" in done.stdout and "0 Ansible fix.yml" in done.stdout, done.stdout
    assert "no fix.yml: a snapshot is not a host" in done.stdout
    assert sorted(p.name for p in (tmp_path / "x").rglob("*") if p.is_file()) == ["fix.sh", "plan.json"]
