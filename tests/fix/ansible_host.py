"""A fake dom0 root that Ansible's builtin modules can run on: this machine's Python copied in.

ansible.builtin.stat, copy, file and command are Python programs run on the host, so the busybox root of
tests/support/fakehost.py gets /usr/bin/python3.X, the libraries it and its extension modules link, and the
standard library. The copy is made once per session; each root gets hard links to it (same filesystem), so a
test costs milliseconds, and nothing a test does inside a root can reach this machine's own Python.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

PYTHON = Path(f"/usr/bin/python3.{sys.version_info.minor}")  # the system interpreter the venv was made from
SKIP = shutil.ignore_patterns("test", "idlelib", "tkinter", "turtledemo", "ensurepip", "site-packages",
                              "dist-packages", "config-*")


def stdlib_of(python: Path) -> Path:
    done = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
                          capture_output=True, text=True, check=True)
    return Path(done.stdout.strip())


def linked_libraries(binaries: list[Path]) -> set[Path]:
    libs: set[Path] = set()
    for binary in binaries:
        done = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
        libs |= {Path(w) for w in done.stdout.split() if w.startswith("/")}
    return libs


def python_tree(cache: Path, python: Path = PYTHON) -> Path:
    """A private copy of `python` and everything it loads, laid out as a root (cache/usr/bin/python3.X, ...)."""
    if (cache / "done").exists():
        return cache
    stdlib = stdlib_of(python)
    shutil.copytree(stdlib, cache / stdlib.relative_to("/"), ignore=SKIP, symlinks=True)
    (cache / python.parent.relative_to("/")).mkdir(parents=True, exist_ok=True)
    shutil.copy2(python, cache / python.relative_to("/"))
    extensions = list((stdlib / "lib-dynload").glob("*.so"))
    for lib in linked_libraries([python, *extensions]):
        (cache / lib.relative_to("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lib.resolve(), cache / lib.relative_to("/"))
    (cache / "done").write_text("")
    return cache


def install_python(root: Path, cache: Path) -> str:
    """Hard-link the cached Python into a built fake root; returns the interpreter path on the host."""
    for directory, _, names in os.walk(cache):
        for name in names:
            source = Path(directory) / name
            if source == cache / "done":
                continue
            target = root / source.relative_to(cache)
            if target.exists() or target.is_symlink():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_symlink():
                os.symlink(os.readlink(source), target)
            else:
                os.link(source, target)
    return "/" + str(PYTHON.relative_to("/"))


def ansible_env() -> dict[str, str]:
    """ansible-playbook's environment for tests: no agent, no host key prompts, a private home for its files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k != "SSH_AUTH_SOCK"}
    env |= {"ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "False", "ANSIBLE_STDOUT_CALLBACK": "default",
            "ANSIBLE_DEPRECATION_WARNINGS": "False", "PYTHONWARNINGS": "ignore"}
    return env


def ansible_playbook() -> str:
    return str(Path(sys.executable).parent / "ansible-playbook")


def host_settings(interpreter: str) -> list[str]:
    """What this fake host needs that a real one may not: its interpreter, a remote tmp, and files piped
    through the chrooting ForceCommand (no sftp subsystem behind it); modules piped too (fewer round trips)."""
    return ["-e", f"ansible_python_interpreter={interpreter}", "-e", "ansible_remote_tmp=/tmp/.ansible",
            "-e", "ansible_ssh_transfer_method=piped", "-e", "ansible_pipelining=true"]

