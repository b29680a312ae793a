"""Issue 9: every bad option or unwritable output path is one line and exit 4, before any host is asked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = str(ROOT / "fixtures" / "node03-broken-mpt2sas-alias.json")


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    defaults = {"--html": str(tmp_path / "r.html"), "--compliance-json": str(tmp_path / "c.json")}
    given = {a.split("=", 1)[0] for a in args}
    extra = [f"{k}={v}" for k, v in defaults.items() if k not in given]
    hosts = [] if given & {"--inventory", "--hosts"} else ["--snapshot", SNAPSHOT]
    cmd = [sys.executable, "-m", "pytest", "checks/", "-q", "-p", "no:cacheprovider", *hosts, *extra, *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def a_file(tmp_path: Path) -> str:
    path = tmp_path / "plain-file"
    path.write_text("not a directory\n")
    return str(path)


CASES = {
    "html under a file": (lambda t: f"--html={a_file(t)}/r.html", "--html"),
    "html in /proc": (lambda t: "--html=/proc/xenpass-nope/r.html", "--html"),
    "json is a directory": (lambda t: f"--compliance-json={t}", "is a directory"),
    "json under a file": (lambda t: f"--compliance-json={a_file(t)}/c.json", "--compliance-json"),
    "record names a file": (lambda t: f"--record={a_file(t)}", "--record"),
    "unknown rule in fix-only": (lambda t: "--fix-only=hide-entry,no-such-rule", "no-such-rule"),
    "fix-only without fix": (lambda t: "--fix-only=hide-entry", "only means something with --fix"),
    "negative timeout": (lambda t: "--host-timeout=-5", "--host-timeout"),
    "zero timeout": (lambda t: "--host-timeout=0", "--host-timeout"),
    "nan timeout": (lambda t: "--host-timeout=nan", "--host-timeout"),
    "no host slot": (lambda t: "--max-hosts=0", "--max-hosts: must be at least 1"),
    "negative step timeout": (lambda t: "--step-timeout=-1", "--step-timeout"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_option_is_one_line_and_exit_4(tmp_path, case):
    """Before: tracebacks with exit 1, 2 or 3, or accepted silently (negative timeout, --fix-only alone)."""
    make_arg, words = CASES[case]
    args = [make_arg(tmp_path)]
    if "unknown rule" in case:
        args.append("--fix")
    done = run(tmp_path, *args)
    output = done.stdout + done.stderr
    assert done.returncode == 4, output
    assert "Traceback" not in output and "INTERNALERROR" not in output
    errors = [ln for ln in output.splitlines() if ln.startswith("ERROR")]
    assert len(errors) == 1 and words in errors[0], output
    assert not (tmp_path / "c.json").exists()  # nothing ran


def test_inventory_naming_a_host_twice_is_a_usage_error(tmp_path):
    """PyYAML keeps the last of two equal keys: one host would silently not be checked."""
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text(f"hosts:\n  node03:\n    snapshot: {SNAPSHOT}\n  node03:\n    snapshot: {SNAPSHOT}\n")
    done = run(tmp_path, f"--inventory={inventory}")
    assert done.returncode == 4
    assert "duplicate key 'node03'" in done.stdout + done.stderr


def test_inventory_host_with_neither_target_nor_snapshot_is_a_usage_error(tmp_path):
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text("hosts:\n  node03:\n    devices: ['01:00.0']\n")
    done = run(tmp_path, f"--inventory={inventory}")
    assert done.returncode == 4
    assert "exactly one of 'target' and 'snapshot'" in done.stdout + done.stderr


def test_hosts_named_two_ways_is_a_usage_error(tmp_path):
    """Before, --snapshot silently won over --hosts: a gate passed on hosts it never looked at."""
    done = run(tmp_path, "--hosts=ssh://root@127.0.0.1:1", f"--snapshot={SNAPSHOT}")
    assert done.returncode == 4
    assert "--snapshot and --hosts: name the hosts one way" in done.stderr
