"""Issue 10, the applier: `--fix` leaves every host no worse than it found it, over a real sshd.

Symlinked configs are edited where they point (the link, mode, owner, ACLs and xattrs kept), any path text
reaches the host as data, and a fault in the middle of a plan (a failing, half-writing or hanging mkinitfs,
the server or the client side of the connection killed, a full /boot, an immutable file, a host that cannot
be collected again) ends that device's plan with a report that lists every backup and rollback commands
that, run, give the original bytes back; the other hosts go on and the compliance JSON is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.fakehost import build, install_gnu_tools
from tests.support.scenarios import SCENARIOS
from tests.support.sshd import Sshd
from tests.test_checks_over_ssh import run_checks
from xenpass.fix.apply import apply_plan
from xenpass.fix.base import FileEdit, Plan
from xenpass.parse.bdf import parse_bdf
from xenpass.text import as_bytes
from xenpass.transport import connect

ROOT = Path(__file__).resolve().parents[2]
RELAY = f"{sys.executable} {ROOT / 'bench' / 'delay_relay.py'} 127.0.0.1 {{port}} 0"
NODE03 = parse_bdf("01:00.0")
pytestmark = [pytest.mark.ssh, pytest.mark.skipif(os.geteuid() != 0, reason="chroot and sshd need root")]


def plan_of(*steps) -> Plan:
    return Plan("node03", NODE03, tuple(steps))


def run_rollback(runner, commands: list[str]) -> None:
    """Run a report's rollback commands on the host, in order, as an operator would paste them."""
    for command in commands:
        done = runner.run_script(command, 30)
        assert done.rc == 0, (command, done.stderr)


def state(root: Path, tops: tuple[str, ...] = ("etc", "boot", "usr/share")) -> dict[str, tuple]:
    """What a fix may change, by path: a link's target, or a file's digest, mode and owner (never followed)."""
    out: dict[str, tuple] = {}
    for top in tops:
        for directory, dirs, names in os.walk(root / top):
            for name in dirs + names:
                path = Path(directory) / name
                info = path.lstat()
                key = str(path.relative_to(root))
                if stat.S_ISLNK(info.st_mode):
                    out[key] = ("link", os.readlink(path))
                elif stat.S_ISREG(info.st_mode):
                    out[key] = (hashlib.sha256(path.read_bytes()).hexdigest(), oct(info.st_mode & 0o7777),
                                info.st_uid, info.st_gid)
    return out


def leftovers(root: Path) -> set[str]:
    """Backups and temp files of the applier anywhere under the fake root's etc/, boot/ and usr/."""
    found = set()
    for top in ("etc", "boot", "usr"):
        for directory, _, names in os.walk(root / top):
            found |= {str(Path(directory, n).relative_to(root)) for n in names if ".xenpass" in n}
    return found


# ---------------------------------------------------------------------------------------------------------
# 1. Symlinked configs: edited where they point; link, mode, owner, ACLs and xattrs kept; rollback exact.


def xattrs_supported(directory: Path) -> str | None:
    """None when user xattrs and ACLs work on `directory`'s filesystem, else why not."""
    if not (shutil.which("setfattr") and shutil.which("getfattr") and shutil.which("setfacl")):
        return "needs setfattr/getfattr (apt package attr) and setfacl (acl): run scripts/setup --system"
    with tempfile.NamedTemporaryFile(dir=directory) as probe:
        for cmd in (["setfattr", "-n", "user.xenpass", "-v", "probe", probe.name],
                    ["setfacl", "-m", "u:65534:r", probe.name]):
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                return f"{directory}'s filesystem does not take user xattrs/ACLs: {done.stderr.strip()}"
    return None


def xattr(path: Path, name: str) -> str | None:
    done = subprocess.run(["getfattr", "--only-values", "-n", name, str(path)], capture_output=True)
    return done.stdout.decode() if done.returncode == 0 else None


def acl(path: Path) -> str:
    return subprocess.run(["getfacl", "-cp", str(path)], capture_output=True, text=True, check=True).stdout


@pytest.fixture(params=["busybox", "gnu"])
def linked_host(request, tmp_path):
    """node03 whose /etc/modules is a link to /usr/share/site/modules (0640, 123:45, an xattr and an ACL) and
    whose domU config is linked from /etc/xen/auto. `gnu`: dash and GNU cp instead of busybox's."""
    root = build(SCENARIOS["node03-broken-mpt2sas-alias"](), tmp_path / "root")
    if request.param == "gnu":
        install_gnu_tools(root)
    site = root / "usr/share/site"
    site.mkdir(parents=True)
    (site / "modules").write_bytes(b"af_packet\nxen_pciback hide=(01:00.0)\n")
    (site / "modules").chmod(0o640)
    os.chown(site / "modules", 123, 45)
    (root / "etc/modules").unlink()
    os.symlink("/usr/share/site/modules", root / "etc/modules")  # absolute: never followed from out here
    (root / "etc/xen/auto").mkdir()
    os.symlink("../nas.cfg", root / "etc/xen/auto/nas.cfg")
    problem = xattrs_supported(tmp_path)
    if problem is None:
        for target in (site / "modules", root / "etc/xen/nas.cfg"):
            subprocess.run(["setfattr", "-n", "user.site", "-v", "kept", str(target)], check=True)
            subprocess.run(["setfacl", "-m", "u:65534:r", str(target)], check=True)
    with Sshd(tmp_path / "sshd", root, name="node03") as server:
        yield request.param, root, connect("ssh://node03", ssh_config=str(server.ssh_config)), problem


def test_symlinked_configs_are_edited_where_they_point_and_rolled_back_exactly(linked_host):
    """Before: each link became a regular file of mode 0777 (`stat -c %a` of the link), the real target was left
    unedited, rollback restored a copy in place of the link, and ACLs and xattrs were dropped on every rewrite.

    Busybox's `cp -a` keeps mode, owner and times but no xattrs or ACLs, and Debian's static busybox runs its
    own `cp` whatever PATH says: on the busybox host only the link, mode and owner are proved; the `gnu` host
    (dash and GNU cp in the fake root) proves xattrs and ACLs are kept too."""
    flavour, root, runner, xattr_problem = linked_host
    site, xen = root / "usr/share/site/modules", root / "etc/xen/nas.cfg"
    before = state(root)
    old_modules, old_cfg = site.read_text(), xen.read_text()
    acls = {p: acl(p) for p in (site, xen)} if xattr_problem is None else {}
    edits = (FileEdit("hide-entry", "/etc/modules", old_modules, old_modules + "# xenpass was here\n", "test"),
             FileEdit("domu-config", "/etc/xen/auto/nas.cfg", old_cfg, old_cfg + "# and here\n", "test"))
    report = apply_plan(runner, plan_of(*edits), 30)
    assert report.failed is None, report.render()
    assert report.applied == ["edit /etc/modules", "edit /etc/xen/auto/nas.cfg"]
    assert os.readlink(root / "etc/modules") == "/usr/share/site/modules"
    assert os.readlink(root / "etc/xen/auto/nas.cfg") == "../nas.cfg"
    assert site.read_text() == old_modules + "# xenpass was here\n"
    assert xen.read_text() == old_cfg + "# and here\n"
    info = site.stat()
    assert (oct(info.st_mode & 0o7777), info.st_uid, info.st_gid) == ("0o640", 123, 45)
    # the backups are of the real files, beside them (never a second domU config in /etc/xen/auto)
    assert [re.sub(r"xenpass-\d{8}T\d{6}", "xenpass-T", b) for b in report.backups] == [
        "/usr/share/site/.modules.xenpass-T", "/etc/xen/.nas.cfg.xenpass-T"]
    assert leftovers(root) == {b.lstrip("/") for b in report.backups}
    if flavour == "gnu" and xattr_problem is None:
        for path in (site, xen):
            assert xattr(path, "user.site") == "kept"
            assert acl(path) == acls[path]
    run_rollback(runner, report.rollback)
    assert state(root) == before
    assert leftovers(root) == set()
    if flavour == "gnu" and xattr_problem is None:
        assert all(xattr(p, "user.site") == "kept" and acl(p) == acls[p] for p in (site, xen))
    elif flavour == "gnu":
        pytest.skip(f"link, mode and owner proved; xattrs and ACLs not: {xattr_problem}")


SLOW_BASE64 = """#!/bin/sh
[ -e /var/lib/fakehost/hang-base64 ] && sleep 3600
exec /bin/busybox base64 "$@"
"""


def test_an_edit_cut_short_is_rolled_back_from_what_the_host_says(tmp_path):
    """A step that overruns its deadline loses its output: the host is asked (read-only) what the step left,
    and the report lists the backup it made and puts it back. Here the edit hangs after its backup, while
    writing the new bytes (a `base64` that never returns: on the `gnu` host, dash finds commands on PATH)."""
    root = build(SCENARIOS["node03-broken-mpt2sas-alias"](), tmp_path / "root")
    install_gnu_tools(root)
    (root / "usr/local/bin/base64").write_text(SLOW_BASE64)
    (root / "usr/local/bin/base64").chmod(0o755)
    old = (root / "etc/modules").read_text()
    with Sshd(tmp_path / "sshd", root, name="node03") as server:
        runner = connect("ssh://node03", ssh_config=str(server.ssh_config))
        before = state(root)
        (root / "var/lib/fakehost/hang-base64").write_text("")
        start = time.monotonic()
        report = apply_plan(runner, plan_of(FileEdit("hide-entry", "/etc/modules", old, old + "# more\n", "t")), 2)
        assert time.monotonic() - start < 15
        (root / "var/lib/fakehost/hang-base64").unlink()
        assert report.applied == [] and report.fault == "timeout", report.render()
        assert report.failed == "edit /etc/modules: timed out after 2 s; the command was ended on the host"
        (backup,) = report.backups
        assert re.fullmatch(r"/etc/\.modules\.xenpass-\d{8}T\d{6}", backup)
        assert report.rollback[-1] == f"mv -f -- {backup} /etc/modules"
        assert_nothing_left_running(root)
        assert leftovers(root) == {backup.lstrip("/")}  # the temp file went with the step's shell
        run_rollback(runner, report.rollback)
    assert state(root) == before and leftovers(root) == set()


class BrokenRunner:
    """A host connection that fails in one way on every call."""

    def __init__(self, error: Exception) -> None:
        self.error, self.calls = error, 0

    def run_script(self, script: str, timeout: float | None = None):
        self.calls += 1
        raise self.error


def test_remediate_never_raises_and_every_host_gets_a_report():
    """Before: one host's exception (here: ssh cannot start; a deadline on every call) left --fix, so the hosts
    after it were neither fixed nor judged, and the run had no JSON."""
    from tests.conftest import load_fixture
    from xenpass.remediate import remediate
    from xenpass.report.results import RunResults
    from xenpass.targets import HostResult, Target
    from xenpass.transport import HostTimeout

    runners = {"nossh": BrokenRunner(FileNotFoundError("ssh")), "stuck": BrokenRunner(HostTimeout("timed out"))}
    hosts = [HostResult(Target(n, spec=f"ssh://{n}", devices=(NODE03,), runner=r),
                        facts=load_fixture("node03-broken-mpt2sas-alias"), devices=[NODE03])
             for n, r in runners.items()]
    run = RunResults(targets=[h.target for h in hosts], hosts=hosts)
    said: list[str] = []
    remediate(run, lambda target: target.runner, None, said.append, timeout=1)
    for name, runner in runners.items():
        report = run.applied[(name, NODE03)]
        assert report.applied == [] and report.failed.startswith("edit /etc/modprobe.d/xen-passthrough.conf")
        verdicts = run.evaluated[(name, NODE03)]
        assert {v.status.value for v in verdicts.values()} == {"error"}
        assert all("could not collect the host again after --fix" in v.reason for v in verdicts.values())
        assert runner.calls >= 2  # the plan's first step, then collecting it again
    assert run.applied[("nossh", NODE03)].fault == "error"
    assert run.applied[("stuck", NODE03)].fault == "timeout"


# ---------------------------------------------------------------------------------------------------------
# 2. Any path text is data on the host: the edit lands exactly there, and nothing in it runs.


UNDECODABLE = st.sampled_from([chr(c) for c in range(0xDC80, 0xDD00)])  # a byte 0x80-0xff that is not UTF-8
NAME = st.lists(st.one_of(st.characters(exclude_categories=("Cs",), exclude_characters="\x00/"), UNDECODABLE),
                min_size=1, max_size=24).map("".join).filter(lambda n: n not in (".", "..", "ab"))
BEFORE, AFTER = "old line\n", "new line\n"


def files_under(top: bytes) -> list[bytes]:
    return [os.path.relpath(os.path.join(d, n), top) for d, _, names in os.walk(top) for n in names]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=NAME)
@example(name="'; touch /pwned; echo '$(touch /pwned)`touch /pwned`")  # quotes, $(...), backticks
@example(name='" ; touch /pwned #')
@example(name="-rf [a]? *")  # an option to rm/mv/cp, and globs (`[a]?` matches the decoy `ab`)
@example(name=" spaced\tname \nnext line\n")  # blanks, newlines, one at the end (what $(...) strips)
@example(name="caf\udce9 \udcc3\udca9")  # bytes that are not UTF-8 (0xe9), and a pair that is (é)
def test_any_path_text_reaches_the_host_as_data(served_node03, name):
    """Before: a single quote in a path was `sh: syntax error`, and with the content guard's error branch taken
    a path holding `$(...)` ran it on the host as root (the path sat unquoted inside `echo '…'`).

    One plan per example: edit the file at that path, create one beside it, then an edit whose content guard
    fails (the path is in its message); then the report's rollback is run."""
    root, runner = served_node03
    where = root / "etc/xp"
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir()
    (where / "ab").write_bytes(b"decoy\n")  # what `[a]?` would match if it were globbed
    (root / "pwned").unlink(missing_ok=True)  # the canary: what `touch /pwned` in a name would make
    host_path = "/etc/xp/" + name  # the explicit examples hold slashes: a directory or two
    local = os.fsencode(where) + b"/" + as_bytes(name)
    os.makedirs(os.path.dirname(local), exist_ok=True)
    Path(os.fsdecode(local)).write_bytes(BEFORE.encode())

    stale = FileEdit("t", host_path, BEFORE, "never written\n", "t")  # the first edit changed it
    report = apply_plan(runner, plan_of(FileEdit("t", host_path, BEFORE, AFTER, "t"),
                                        FileEdit("t", host_path + "-new", None, AFTER, "t"), stale), 30)
    assert not (root / "pwned").exists()
    assert Path(os.fsdecode(local)).read_bytes() == AFTER.encode(), report.render()
    assert len(report.applied) == 2, report.render()
    said = f"edit {host_path}: {host_path}: changed since facts were collected"  # the host's bytes, echoed
    assert as_bytes(report.failed or "") == as_bytes(said)
    created = Path(os.fsdecode(local + b"-new"))
    info = created.stat()
    assert created.read_bytes() == AFTER.encode()
    assert (info.st_mode & 0o7777, info.st_uid, info.st_gid) == (0o644, 0, 0)
    assert [as_bytes(b) for b in report.backups] == [
        b"/etc/xp/" + p for p in files_under(os.fsencode(where)) if b".xenpass-" in os.path.basename(p)]
    assert runner.run_script("set -e\n" + "\n".join(report.rollback), 30).rc == 0
    assert sorted(files_under(os.fsencode(where))) == sorted([b"ab", as_bytes(name)])
    assert Path(os.fsdecode(local)).read_bytes() == BEFORE.encode()
    assert (where / "ab").read_bytes() == b"decoy\n"
    assert not (root / "pwned").exists()


def test_a_file_that_appeared_is_not_overwritten(served_node03):
    root, runner = served_node03
    path = root / "etc/xp-appeared"
    path.write_bytes(b"someone else's\n")
    report = apply_plan(runner, plan_of(FileEdit("t", "/etc/xp-appeared", None, AFTER, "t")), 30)
    assert report.failed == "edit /etc/xp-appeared: /etc/xp-appeared: appeared since facts were collected"
    assert (report.backups, report.rollback, report.fault) == ([], [], "exit")
    assert path.read_bytes() == b"someone else's\n"


# ---------------------------------------------------------------------------------------------------------
# 3-5. Faults in the middle of a plan, over the CLI: one run, one host per fault, a healthy host last.

HOST_TIMEOUT = 4
FAULTS = ("halfway", "failing", "hang", "serverkill", "clientkill", "fullboot", "immutable", "recollect", "fine")


def chrooted_pids(root: Path) -> list[int]:
    """Processes running inside the fake root (their /proc/PID/root is it)."""
    real = os.path.realpath(root)
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "root") == real:
                    found.append(int(entry.name))
    return found


def parent(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1])


def kill_server_side(server: Sshd, root: Path) -> list[int]:
    """SIGKILL the sshd processes serving the sessions chrooted into `root` (not the listener)."""
    victims = set()
    for pid in chrooted_pids(root):
        with contextlib.suppress(OSError, ValueError):
            while pid > 1 and pid != server.proc.pid:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "sshd":
                    victims.add(pid)
                pid = parent(pid)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return sorted(victims)


def kill_client_side(server: Sshd) -> list[int]:
    """SIGKILL the ProxyCommand relays this test's ssh started for `server`'s port."""
    needle = f"delay_relay.py 127.0.0.1 {server.port} ".encode()
    victims = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if needle in (entry / "cmdline").read_bytes().replace(b"\0", b" "):
                    victims.append(int(entry.name))
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return victims


class Killer(threading.Thread):
    """Waits until the host's mkinitfs has started (the fake tool's marker), then cuts the connection."""

    def __init__(self, root: Path, cut) -> None:
        super().__init__(daemon=True)
        self.root, self.cut, self.stop, self.killed = root, cut, threading.Event(), []

    def run(self) -> None:
        marker = self.root / "var/lib/fakehost/initramfs-started"
        while not self.stop.is_set():
            if marker.exists():
                time.sleep(0.3)
                self.killed = self.cut()
                return
            time.sleep(0.05)


def hang_xl_after_assigning(root: Path) -> None:
    """`xl pci-assignable-add` works, then every later `xl` hangs: the host cannot be collected again."""
    xl = root / "usr/local/sbin/xl"
    xl.rename(xl.with_name("xl.real"))
    xl.write_text("#!/bin/sh\n[ -e /var/lib/fakehost/xl-hangs ] && sleep 3600\n"
                  "/usr/local/sbin/xl.real \"$@\"; rc=$?\n"
                  "[ \"$1\" = pci-assignable-add ] && : > /var/lib/fakehost/xl-hangs\nexit $rc\n")
    xl.chmod(0o755)


def full_boot(root: Path, cleanups: list) -> str | None:
    """/boot as a small tmpfs holding the host's images and a filler: not one more byte fits. None, or why not."""
    boot = root / "boot"
    saved = Path(tempfile.mkdtemp())
    shutil.copytree(boot, saved / "boot", symlinks=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=755", "tmpfs", str(boot)],
                           capture_output=True, text=True)
    if mount.returncode:
        shutil.rmtree(saved)
        return f"cannot mount a tmpfs at the fake root's /boot: {mount.stderr.strip()}"
    cleanups.append(lambda: subprocess.run(["umount", "-l", str(boot)], check=False))
    shutil.copytree(saved / "boot", boot, symlinks=True, dirs_exist_ok=True)
    shutil.rmtree(saved)
    filler = os.open(boot / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with contextlib.suppress(OSError):
            while os.write(filler, b"\0" * 512):
                pass
    finally:
        os.close(filler)
    return None


def immutable(path: Path, cleanups: list) -> str | None:
    """`chattr +i` from outside; None, or why it cannot be done here."""
    if not shutil.which("chattr"):
        return "no chattr here (e2fsprogs)"
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode:
        return f"chattr +i does not work on this filesystem: {done.stderr.strip()}"
    cleanups.append(lambda: subprocess.run(["chattr", "-i", str(path)], check=False))
    return None


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory):
    """Every fault host, then `fine`, in one `pytest checks/ --fix` run; what each host held before it.
    A fault this machine cannot make (no tmpfs mount, no chattr) leaves its host out, and its test skips."""
    base = tmp_path_factory.mktemp("faults")
    servers, roots, cleanups, killers, skipped = {}, {}, [], [], {}
    try:
        for name in FAULTS:
            scenario = "node03-hide-typo" if name == "immutable" else "node03-broken-mpt2sas-alias"
            root = build(SCENARIOS[scenario](), base / name / "root")
            switch = {"halfway": "half-initramfs", "failing": "fail-initramfs", "hang": "hang-initramfs",
                      "serverkill": "hang-initramfs", "clientkill": "hang-initramfs"}.get(name)
            if switch:
                (root / "var/lib/fakehost" / switch).write_text("")
            if name == "recollect":
                hang_xl_after_assigning(root)
            why_not = (full_boot(root, cleanups) if name == "fullboot" else
                       immutable(root / "etc/modules", cleanups) if name == "immutable" else None)
            if why_not:
                skipped[name] = why_not
                continue
            roots[name] = root
            servers[name] = Sshd(base / name / "sshd", root, name=name).start()
        killers = [Killer(roots["serverkill"], lambda: kill_server_side(servers["serverkill"], roots["serverkill"])),
                   Killer(roots["clientkill"], lambda: kill_client_side(servers["clientkill"]))]
        config = base / "ssh_config"
        config.write_text("".join(s.config_block(RELAY.format(port=s.port) if n == "clientkill" else None)
                                  for n, s in servers.items()))
        before = {name: state(root) for name, root in roots.items()}
        for killer in killers:
            killer.start()
        start = time.monotonic()
        done = run_checks("--hosts=" + ",".join(f"ssh://{n}" for n in servers), f"--ssh-config={config}",
                          "--device=01:00.0", "--fix", f"--host-timeout={HOST_TIMEOUT}",
                          f"--step-timeout={HOST_TIMEOUT}",
                          f"--compliance-json={base / 'c.json'}", f"--html={base / 'r.html'}")
        elapsed = time.monotonic() - start
        hosts = {}
        if (base / "c.json").exists():
            hosts = {h["host"]: h for h in json.loads((base / "c.json").read_text())["hosts"]}
        yield {"done": done, "elapsed": elapsed, "hosts": hosts, "roots": roots, "before": before,
               "killers": {k.root: k.killed for k in killers}, "config": config, "skipped": skipped}
    finally:
        for killer in killers:
            killer.stop.set()
        for server in servers.values():
            server.stop()
        for cleanup in cleanups:
            cleanup()


def applied(fault_run, name: str) -> dict:
    if name in fault_run["skipped"]:
        pytest.skip(fault_run["skipped"][name])
    host = fault_run["hosts"].get(name)
    assert host is not None, fault_run["done"].stdout[-3000:] + fault_run["done"].stderr[-3000:]
    return host["devices"][0]["applied"]


def runner_for_host(fault_run, name: str):
    return connect(f"ssh://{name}", ssh_config=str(fault_run["config"]))


def assert_no_worse(fault_run, name: str, report: dict) -> None:
    """Every backup on the host is listed, and the rollback commands, run, give back the original files."""
    root = fault_run["roots"][name]
    assert leftovers(root) == {b.lstrip("/") for b in report["backups"]}, report
    run_rollback(runner_for_host(fault_run, name), report["rollback"])
    assert state(root) == fault_run["before"][name]
    assert leftovers(root) == set()


def assert_nothing_left_running(root: Path) -> None:
    deadline = time.monotonic() + 5
    while chrooted_pids(root) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert chrooted_pids(root) == []


IMAGE_ROLLBACK = re.compile(r"mv -f -- /boot/\.initramfs-lts\.xenpass-\d{8}T\d{6} /boot/initramfs-lts")
EDIT_ROLLBACK = "rm -f -- /etc/modprobe.d/xen-passthrough.conf"


def test_the_run_ends_with_exit_1_and_the_json_written(fault_run):
    """Before: the dropped connection raised out of --fix: a traceback, exit 2, no JSON and no verdicts."""
    done = fault_run["done"]
    assert set(fault_run["hosts"]) == set(FAULTS) - set(fault_run["skipped"]), done.stdout[-3000:] + done.stderr[-3000:]
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr
    assert fault_run["elapsed"] < 75


def test_a_host_after_the_faulty_ones_is_still_fixed_and_judged(fault_run):
    report = applied(fault_run, "fine")
    assert report["failed"] is None and len(report["applied"]) == 3, report
    rules = {r["id"]: r for r in fault_run["hosts"]["fine"]["devices"][0]["rules"]}
    assert rules["native-driver-blacklisted"]["before"] == "fail"
    assert {r["status"] for r in rules.values()} == {"pass"}, rules
    assert_no_worse(fault_run, "fine", report)  # the files; `xl pci-assignable-add` has no rollback


@pytest.mark.parametrize("name", ["halfway", "failing"])
def test_a_failing_mkinitfs_is_rolled_back_to_the_intact_image(fault_run, name):
    """Before (halfway): the truncated image stayed, and the intact copy saved first was in neither `backups` nor
    `rollback`."""
    report = applied(fault_run, name)
    assert report["applied"] == ["edit /etc/modprobe.d/xen-passthrough.conf"]
    assert "mkinitfs" in report["failed"] and "no space left" in report["failed"]
    assert [re.sub(r"\d{8}T\d{6}", "T", b) for b in report["backups"]] == ["/boot/.initramfs-lts.xenpass-T"]
    assert IMAGE_ROLLBACK.fullmatch(report["rollback"][0]) and report["rollback"][1:] == [EDIT_ROLLBACK], report
    assert_no_worse(fault_run, name, report)


@pytest.mark.parametrize("name, says", [("hang", f"timed out after {HOST_TIMEOUT} s"),
                                        ("serverkill", "connection"), ("clientkill", "connection")])
def test_a_step_cut_short_is_reported_and_can_be_rolled_back(fault_run, name, says):
    """Before: a dropped connection raised (exit 2, no JSON); a hung step was neither reported as such nor
    given rollback for the image it was rewriting."""
    if name != "hang":
        assert fault_run["killers"][fault_run["roots"][name]], f"{name}: nothing was killed: the fault never happened"
    report = applied(fault_run, name)
    assert report["applied"] == ["edit /etc/modprobe.d/xen-passthrough.conf"]
    assert report["failed"].startswith("run mkinitfs") and says in report["failed"], report
    assert report["fault"] == ("timeout" if name == "hang" else "connection")
    assert IMAGE_ROLLBACK.fullmatch(report["rollback"][0]) and report["rollback"][1:] == [EDIT_ROLLBACK], report
    assert_nothing_left_running(fault_run["roots"][name])
    assert_no_worse(fault_run, name, report)


def test_a_full_boot_stops_before_the_image_is_touched(fault_run):
    report = applied(fault_run, "fullboot")
    assert report["applied"] == ["edit /etc/modprobe.d/xen-passthrough.conf"]
    assert "mkinitfs" in report["failed"] and "No space left" in report["failed"], report
    assert report["backups"] == [] and report["rollback"] == [EDIT_ROLLBACK]
    assert_no_worse(fault_run, "fullboot", report)


def test_an_immutable_file_is_left_as_it_was_and_its_backup_reported(fault_run):
    """Before: the failed edit left a backup nobody was told about."""
    report = applied(fault_run, "immutable")
    assert report["applied"] == [] and report["failed"].startswith("edit /etc/modules"), report
    assert [re.sub(r"\d{8}T\d{6}", "T", b) for b in report["backups"]] == ["/etc/.modules.xenpass-T"]
    assert_no_worse(fault_run, "immutable", report)


def test_a_host_that_cannot_be_collected_after_fixing_is_an_error_with_its_report(fault_run):
    report = applied(fault_run, "recollect")
    assert report["failed"] is None and len(report["applied"]) == 3, report
    rules = fault_run["hosts"]["recollect"]["devices"][0]["rules"]
    assert {r["status"] for r in rules} == {"error"}, rules
    assert all("could not collect the host again after --fix" in r["reason"] for r in rules)
    assert_no_worse(fault_run, "recollect", report)
