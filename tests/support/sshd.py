"""A real OpenSSH server on 127.0.0.1 for tests and the benchmark, optionally chrooting into a fake host.

Each session's command runs as `chroot ROOT /bin/sh -c "$SSH_ORIGINAL_COMMAND"` (ForceCommand), so the
client sees the fake host's files at their real paths. Everything lives under `workdir`; stop() kills it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> None:
    if not path.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@dataclass
class Sshd:
    workdir: Path
    root: Path | None = None  # fake host root to chroot into; None = this machine
    name: str = "testhost"
    port: int = field(default_factory=free_port)
    force_command: str | None = None  # overrides the chroot, e.g. to simulate a host that hangs
    proc: subprocess.Popen | None = None

    @property
    def key(self) -> Path:
        return self.workdir / "client_key"

    @property
    def ssh_config(self) -> Path:
        return self.workdir / "ssh_config"

    def config_block(self, proxy: str | None = None) -> str:
        """A client ssh_config block for this server (optionally through a ProxyCommand)."""
        lines = [f"Host {self.name}", "  HostName 127.0.0.1", f"  Port {self.port}", "  User root",
                 f"  IdentityFile {self.key}", "  IdentitiesOnly yes", "  StrictHostKeyChecking no",
                 "  UserKnownHostsFile /dev/null", "  LogLevel ERROR", "  BatchMode yes"]
        if proxy:
            lines.append(f"  ProxyCommand {proxy}")
        return "\n".join(lines) + "\n"

    def start(self) -> Sshd:
        if not Path(SSHD).exists():
            raise RuntimeError("sshd not found: install openssh-server (scripts/setup does)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
        keygen(self.workdir / "host_key")
        keygen(self.key)
        shutil.copy(self.key.with_suffix(".pub"), self.workdir / "authorized_keys")
        config = self.workdir / "sshd_config"
        config.write_text(self.server_config())
        self.ssh_config.write_text(self.config_block())
        log = (self.workdir / "sshd.log").open("w")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
        self.wait_ready()
        return self

    def server_config(self) -> str:
        lines = [f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.workdir / 'host_key'}",
                 f"PidFile {self.workdir / 'sshd.pid'}", f"AuthorizedKeysFile {self.workdir / 'authorized_keys'}",
                 "StrictModes no", "PermitRootLogin prohibit-password", "PasswordAuthentication no",
                 "KbdInteractiveAuthentication no", "UsePAM no", "LogLevel ERROR", "MaxStartups 200:30:400",
                 "MaxSessions 200", "PrintMotd no", "AcceptEnv LANG LC_*"]
        if self.force_command:
            lines.append(f"ForceCommand {self.force_command}")
        elif self.root is not None:
            lines.append(f'ForceCommand /usr/sbin/chroot {self.root} /bin/sh -c "$SSH_ORIGINAL_COMMAND"')
        return "\n".join(lines) + "\n"

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.workdir / 'sshd.log').read_text()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd on 127.0.0.1:{self.port} did not start within {timeout} s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def __enter__(self) -> Sshd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def env_without_ssh_agent() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SSH_AUTH_SOCK", None)
    return env


def ssh_pids() -> set[int]:
    """Process ids of every ssh client and master on this machine (to prove a run leaves none behind)."""
    done = subprocess.run(["pgrep", "-x", "ssh"], capture_output=True, text=True)
    return {int(pid) for pid in done.stdout.split()}


def new_ssh_pids(before: set[int], settle: float = 5.0) -> set[int]:
    """ssh processes that appeared since `before` and are still alive after `settle` seconds at most
    (a master told to exit takes a moment to go)."""
    deadline = time.monotonic() + settle
    while (left := ssh_pids() - before) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left
