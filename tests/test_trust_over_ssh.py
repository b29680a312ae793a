"""Issue 9, over real SSH: every verdict belongs to the host it names and rests on what that host said.

Hostile fleets: two hosts at one address, two ssh aliases that differ only in their ProxyCommand, a socket
planted where the old ControlPath was, host files with Latin-1, NUL and ESC bytes, a host whose `xl` hangs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.fakehost import build
from tests.support.scenarios import SCENARIOS
from tests.support.sshd import Sshd, new_ssh_pids, ssh_pids
from tests.test_checks_over_ssh import run_checks
from xenpass.engine import evaluate
from xenpass.facts.collector import collect
from xenpass.facts.host import HostFacts
from xenpass.parse.bdf import parse_bdf
from xenpass.rules.base import Context
from xenpass.text import as_bytes
from xenpass.transport import connect

ROOT = Path(__file__).resolve().parent.parent
RELAY = f"{sys.executable} {ROOT / 'bench' / 'delay_relay.py'} 127.0.0.1 {{port}} 0"
pytestmark = [pytest.mark.ssh, pytest.mark.skipif(os.geteuid() != 0, reason="chroot and sshd need root")]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """An Alpine node03 and a Debian dom0, each behind its own sshd on 127.0.0.1."""
    base = tmp_path_factory.mktemp("pair")
    servers = {}
    for name, scenario in (("alpine", "node03-broken-mpt2sas-alias"), ("debian", "debian12-kmod-compliant")):
        root = build(SCENARIOS[scenario](), base / name / "root")
        servers[name] = Sshd(base / name / "sshd", root, name=name).start()
    yield servers
    for server in servers.values():
        server.stop()


def client_options(*servers: Sshd) -> str:
    keys = "".join(f"  IdentityFile {s.key}\n" for s in servers)
    return (f"{keys}  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
            "  LogLevel ERROR\n  BatchMode yes\n")


def hosts_of(path: Path) -> dict[str, dict]:
    return {h["host"]: h for h in json.loads(path.read_text())["hosts"]}


def test_two_targets_at_one_address_are_two_hosts(pair, tmp_path):
    """Before: both rows showed one host's facts (backends keyed by address), the other was never judged."""
    config = tmp_path / "ssh_config"
    config.write_text("Host 127.0.0.1\n" + client_options(*pair.values()))
    alpine, debian = pair["alpine"].port, pair["debian"].port
    done = run_checks(f"--hosts=ssh://root@127.0.0.1:{alpine},ssh://root@127.0.0.1:{debian}",
                      f"--ssh-config={config}", f"--compliance-json={tmp_path / 'c.json'}",
                      f"--html={tmp_path / 'r.html'}")
    hosts = hosts_of(tmp_path / "c.json")
    assert set(hosts) == {f"127.0.0.1:{alpine}", f"127.0.0.1:{debian}"}, done.stdout
    assert hosts[f"127.0.0.1:{alpine}"]["distro"] == "Alpine Linux v3.20"
    assert hosts[f"127.0.0.1:{debian}"]["distro"] == "Debian GNU/Linux 12 (bookworm)"
    assert hosts[f"127.0.0.1:{debian}"]["devices"][0]["bdf"] == "0000:00:05.0"
    assert done.returncode == 1  # the Alpine host is the broken node03


def proxied_config(tmp_path: Path, pair: dict[str, Sshd]) -> Path:
    """Two sites whose dom0 has the same internal name, reached through different ProxyCommands.

    `dom0.internal` is never resolved or contacted: ssh hands the connection to the ProxyCommand,
    which relays to the site's sshd on 127.0.0.1."""
    config = tmp_path / "ssh_config"
    blocks = [f"Host {site}\n  HostName dom0.internal\n  Port 22\n  User root\n"
              f"  ProxyCommand {RELAY.format(port=server.port)}\n" + client_options(server)
              for site, server in (("siteA", pair["alpine"]), ("siteB", pair["debian"]))]
    config.write_text("".join(blocks))
    return config


def test_aliases_behind_different_proxies_never_share_a_master(pair, tmp_path):
    """Before: OpenSSH's %C does not hash the ProxyCommand, so siteB reused siteA's master and was judged
    (and with --fix, changed) as siteA."""
    config = proxied_config(tmp_path, pair)
    # siteA first, alone: a master that outlived its run (ControlPersist) would then answer for siteB
    run_checks("--hosts=ssh://siteA", f"--ssh-config={config}", f"--compliance-json={tmp_path / 'a.json'}",
               f"--html={tmp_path / 'a.html'}")
    alone = run_checks("--hosts=ssh://siteB", f"--ssh-config={config}", f"--compliance-json={tmp_path / 'b.json'}",
                       f"--html={tmp_path / 'b.html'}")
    assert hosts_of(tmp_path / "b.json")["siteB"]["distro"] == "Debian GNU/Linux 12 (bookworm)", alone.stdout
    both = run_checks("--hosts=ssh://siteA,ssh://siteB", f"--ssh-config={config}",
                      f"--compliance-json={tmp_path / 'c.json'}", f"--html={tmp_path / 'r.html'}")
    hosts = hosts_of(tmp_path / "c.json")
    assert hosts["siteA"]["distro"] == "Alpine Linux v3.20", both.stdout
    assert hosts["siteB"]["distro"] == "Debian GNU/Linux 12 (bookworm)", both.stdout


def test_a_socket_planted_at_the_old_predictable_path_is_never_used(pair, tmp_path):
    """Before: ControlPath=/tmp/xenpass-ssh-%C, a path any local user can create first."""
    config = proxied_config(tmp_path, pair)
    expanded = subprocess.run(["ssh", "-F", str(config), "-o", "ControlPath=/tmp/xenpass-ssh-%C", "-G", "siteA"],
                              capture_output=True, text=True, check=True).stdout
    old_path = next(ln.split(" ", 1)[1] for ln in expanded.splitlines() if ln.startswith("controlpath "))
    trap = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    Path(old_path).unlink(missing_ok=True)
    trap.bind(old_path)
    os.chown(old_path, 65534, 65534)  # another local user's socket
    trap.listen(8)
    trap.setblocking(False)
    try:
        run_checks("--hosts=ssh://siteA", f"--ssh-config={config}", f"--compliance-json={tmp_path / 'c.json'}",
                   f"--html={tmp_path / 'r.html'}")
        with pytest.raises(BlockingIOError):
            trap.accept()  # nobody connected to it
    finally:
        trap.close()
        Path(old_path).unlink(missing_ok=True)
    assert hosts_of(tmp_path / "c.json")["siteA"]["reachable"] is True


NODE03 = parse_bdf("01:00.0")


@pytest.fixture(scope="module")
def odd_bytes_host(tmp_path_factory):
    """node03 with a typo in its hide= line (so --fix rewrites /etc/modules), a NUL in /etc/modules and a
    Latin-1 byte and an ESC sequence in a modprobe.d comment."""
    base = tmp_path_factory.mktemp("bytes")
    root = build(SCENARIOS["node03-hide-typo"](), base / "root")
    modules = root / "etc/modules"
    modules.write_bytes(b"# site note \x00 kept\n" + modules.read_bytes())
    blacklist = root / "etc/modprobe.d/blacklist.conf"
    blacklist.write_bytes(blacklist.read_bytes() + b"# caf\xe9 \x1b[2J\x1b]0;owned\x07\n")
    with Sshd(base / "sshd", root, name="node03") as server:
        yield root, server


def test_latin1_nul_and_esc_bytes_are_collected_exactly_and_judged(odd_bytes_host):
    """Before: one Latin-1 byte made the whole host an error (UnicodeDecodeError in the transport)."""
    root, server = odd_bytes_host
    facts = HostFacts(collect(connect("ssh://node03", ssh_config=str(server.ssh_config)), "node03"))
    for path in ("/etc/modules", "/etc/modprobe.d/blacklist.conf"):
        on_disk = (root / path.lstrip("/")).read_bytes()
        assert as_bytes(facts.raw.file(path)) == on_disk
        assert facts.raw.files[path].sha256 == hashlib.sha256(on_disk).hexdigest()
    verdicts = evaluate(facts, NODE03, Context())
    assert verdicts["hide-entry"].status == "fail"  # the typo, judged; not an error about bytes
    assert not any(v.reason.startswith("could not judge") for v in verdicts.values())


def test_fix_keeps_the_nul_byte_and_does_not_refuse_falsely(odd_bytes_host, tmp_path):
    """Before: the NUL was lost on the way, so the host's sha256 never matched: "changed since facts were
    collected", and nothing was fixed."""
    root, server = odd_bytes_host
    done = run_checks("--hosts=ssh://node03", f"--ssh-config={server.ssh_config}", "--device=01:00.0", "--fix",
                      "--fix-only=hide-entry", f"--compliance-json={tmp_path / 'c.json'}",
                      f"--html={tmp_path / 'r.html'}")
    device = hosts_of(tmp_path / "c.json")["node03"]["devices"][0]
    assert device["applied"]["failed"] is None, done.stdout + done.stderr
    rules = {r["id"]: r for r in device["rules"]}
    assert (rules["hide-entry"]["before"], rules["hide-entry"]["status"]) == ("fail", "pass")
    assert (root / "etc/modules").read_bytes().startswith(b"# site note \x00 kept\n")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(modules=st.binary(max_size=200), conf=st.binary(max_size=200))
def test_any_bytes_in_host_files_arrive_exactly_and_never_stop_a_verdict(served_node03, modules, conf):
    root, runner = served_node03
    (root / "etc/modules").write_bytes(modules)
    (root / "etc/modprobe.d/fuzz.conf").write_bytes(conf)
    facts = HostFacts(collect(runner, "node03"))
    assert as_bytes(facts.raw.file("/etc/modules")) == modules
    assert as_bytes(facts.raw.file("/etc/modprobe.d/fuzz.conf")) == conf
    verdicts = evaluate(facts, NODE03, Context())
    assert not any(v.reason.startswith("could not judge") for v in verdicts.values()), verdicts


HANG = f"sleep {6000 + os.getpid() % 3000}"  # an unusual duration, so the test finds exactly this process


def hung_processes() -> list[str]:
    done = subprocess.run(["pgrep", "-f", HANG], capture_output=True, text=True)
    return done.stdout.split()


def test_a_timed_out_host_leaves_no_process_behind(tmp_path):
    """Before: after the deadline the ssh client and master stayed alive (ppid 1) and `xl` kept running."""
    root = build(SCENARIOS["node03-broken-mpt2sas-alias"](), tmp_path / "root")
    (root / "usr/local/sbin/xl").write_text(f"#!/bin/sh\n{HANG}\n")
    with Sshd(tmp_path / "sshd", root, name="stuck") as server:
        before = ssh_pids()
        start = time.monotonic()
        done = run_checks("--hosts=ssh://stuck", f"--ssh-config={server.ssh_config}", "--host-timeout=3",
                          f"--compliance-json={tmp_path / 'c.json'}", f"--html={tmp_path / 'r.html'}")
        elapsed = time.monotonic() - start
        host = hosts_of(tmp_path / "c.json")["stuck"]
        assert host["reachable"] is False and "timed out after 3 s" in host["error"], done.stdout
        assert elapsed < 30
        deadline = time.monotonic() + 5
        while hung_processes() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert hung_processes() == []  # the remote command was ended
        assert (root / "tmp").is_dir() and not list((root / "tmp").iterdir())  # with its private directories
        assert new_ssh_pids(before) == set()  # and no ssh client or master of the run survives


PATH_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00\n/"), min_size=1, max_size=40)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=PATH_TEXT)
@example(name="$(touch /pwned)")
@example(name="`touch /pwned`")
@example(name="'; touch /pwned; echo '")
@example(name='" ; touch /pwned #')
@example(name="-rf *")
@example(name=" spaced\tname ")
@example(name="\\")
@example(name="[n][a]?")  # found by hypothesis: the collector globbed the names it was given
def test_domu_paths_reach_the_host_as_data(served_node03, name):
    """A path given on the command line is data on the host: it is read exactly, and nothing in it runs."""
    root, runner = served_node03
    path = f"/etc/xen/{name}.cfg"
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)  # the explicit examples hold slashes
    target.write_bytes(b"pci = [ '01:00.0' ]\n")
    try:
        facts = collect(runner, "node03", extra_files=[path])
        assert facts.file(path) == "pci = [ '01:00.0' ]\n"
    finally:
        target.unlink()
    assert not (root / "pwned").exists()


def test_sudo_reaches_the_host_through_sudo(tmp_path):
    """--sudo is testinfra's (`sudo /bin/sh -c …`) around the watchdog: the host is asked through sudo."""
    root = build(SCENARIOS["node03-broken-mpt2sas-alias"](), tmp_path / "root")
    (root / "usr/local/bin/sudo").write_text("#!/bin/sh\ntouch /var/lib/fakehost/sudo-was-used\nexec \"$@\"\n")
    (root / "usr/local/bin/sudo").chmod(0o755)
    with Sshd(tmp_path / "sshd", root, name="node03") as server:
        facts = collect(connect("ssh://node03", ssh_config=str(server.ssh_config), sudo=True), "node03")
    assert facts.release == "6.6.31-0-lts"
    assert (root / "var/lib/fakehost/sudo-was-used").exists()


def test_a_non_root_user_gets_errors_not_a_confident_fail(tmp_path):
    """Before: the mode-600 file holding the real blacklist was flagged unreadable by the collector, and the
    rule still said FAIL and planned a duplicate blacklist line."""
    root = build(SCENARIOS["node03-fixed"](), tmp_path / "root")
    (root / "etc/modprobe.d/blacklist.conf").chmod(0o600)
    as_nobody = f'/usr/sbin/chroot --userspec=65534:65534 {root} /bin/sh -c "$SSH_ORIGINAL_COMMAND"'
    with Sshd(tmp_path / "sshd", root, name="node03", force_command=as_nobody) as server:
        done = run_checks("--hosts=ssh://node03", f"--ssh-config={server.ssh_config}", "--device=01:00.0",
                          f"--compliance-json={tmp_path / 'c.json'}", f"--html={tmp_path / 'r.html'}")
    device = hosts_of(tmp_path / "c.json")["node03"]["devices"][0]
    rules = {r["id"]: r for r in device["rules"]}
    blacklisted = rules["native-driver-blacklisted"]
    assert blacklisted["status"] == "error", done.stdout
    assert "cannot read /etc/modprobe.d/blacklist.conf" in blacklisted["reason"]
    assert "--sudo" in blacklisted["reason"]
    assert "fix" not in blacklisted and not any(
        s.get("path") == "/etc/modprobe.d/xen-passthrough.conf" for s in device.get("plan", {}).get("steps", []))
    assert rules["driver-pciback"]["status"] == "pass"  # what could be read is still judged
    assert done.returncode == 1


def root_disk_controller() -> str | None:
    """The PCI address nearest to a disk of this machine (the root disk's controller on a plain VM)."""
    for block in sorted(Path("/sys/block").iterdir()):
        device = block / "device"
        if device.exists():
            found = [p for p in device.resolve().parts if len(p) == 12 and p[4] == ":" and p[7] == ":"]
            if found:
                return found[-1]
    return None


def test_an_ordinary_vm_is_not_a_dom0_and_nothing_is_planned(tmp_path):
    """Before: on a machine that is no Xen dom0, `--hosts=local://` never said so, and planned to hide the
    controller of the mounted root disk at the next boot. (No --fix here: this test runs on a real machine.)"""
    bdf = root_disk_controller()
    if bdf is None or Path("/proc/xen/capabilities").exists() or shutil.which("xl"):
        pytest.skip("needs a machine that is not a Xen domain and has a PCI disk controller")
    done = run_checks("--hosts=local://", f"--device={bdf}", f"--compliance-json={tmp_path / 'c.json'}",
                      f"--html={tmp_path / 'r.html'}")
    device = hosts_of(tmp_path / "c.json")["localhost"]["devices"][0]
    assert all(r["status"] == "error" and "not a Xen dom0" in r["reason"] for r in device["rules"]), done.stdout
    assert "plan" not in device and not any("fix" in r for r in device["rules"])
    assert done.returncode == 1
