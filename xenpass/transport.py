"""Talking to one host: run one shell script with a deadline, and leave nothing behind.

The one module that starts ssh. A target's connection is built from testinfra's backend (so --hosts,
--ssh-config, --sudo, ansible inventories mean what they mean in testinfra), but the process is ours:
- every ssh target gets its own ControlPath in a private per-run directory (mode 0700, ours), named
  after a hash of the target's whole connection (the ssh command line and the ssh_config it reads,
  alias and ProxyCommand included), so no two targets ever share a master;
- a script that overruns its deadline is ended on both sides: the remote side runs under a watchdog
  that kills the script's process group when its stdin closes, and the local ssh process group is
  killed after that;
- at the end of the run every master this run started is told to exit, and the directory is removed.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shlex
import signal
import stat
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

# The script runs in its own session (setsid) while a watcher reads the connection's stdin: when the
# connection ends (the client was killed on a timeout, or the network dropped), the watcher's read
# returns and it kills the script's whole process group, so no remote command outlives the run.
# Background jobs of a non-interactive shell read /dev/null unless redirected: hence fd 3.
WATCHDOG = r"""exec 3<&0
if command -v setsid >/dev/null 2>&1; then setsid /bin/sh -c "$1" </dev/null & else /bin/sh -c "$1" </dev/null & fi
p=$!
{ while read -r _ <&3; do :; done; kill -TERM -"$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null; } &
w=$!
wait "$p"; rc=$?
kill "$w" 2>&-  # not 2>/dev/null: a failed redirection would skip the kill
exit "$rc"
"""

GRACE = 3.0  # seconds between closing the connection's stdin and killing the local processes


class HostTimeout(Exception):
    """The host did not finish within its deadline; both ends of the command were ended."""


class TransportProblem(Exception):
    """The connection cannot be made safely (e.g. a ControlPath that is not ours)."""


@dataclass(frozen=True)
class ScriptResult:
    rc: int
    stdout: bytes
    stderr: bytes


def remote_command(script: str) -> str:
    """`sh -c WATCHDOG sh SCRIPT`: what the host's login shell is asked to run (every byte quoted)."""
    return f"sh -c {shlex.quote(WATCHDOG)} sh {shlex.quote(script)}"


def run_local_command(argv: list[str], timeout: float | None) -> ScriptResult:
    """Run argv in its own process group; on timeout close its stdin, then kill the group."""
    stdin_read, stdin_write = os.pipe()  # held open: its EOF is the remote watchdog's signal to stop
    try:
        proc = subprocess.Popen(argv, stdin=stdin_read, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
    except OSError:
        os.close(stdin_write)
        raise
    finally:
        os.close(stdin_read)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.close(stdin_write)
        stdin_write = -1
        end_process_group(proc)
        raise HostTimeout(f"timed out after {timeout:g} s; the command was ended on the host") from None
    finally:
        if stdin_write >= 0:
            os.close(stdin_write)
    return ScriptResult(proc.returncode, stdout, stderr)


def end_process_group(proc: subprocess.Popen) -> None:
    """Give the command GRACE seconds to end on its own (its stdin is closed), then TERM and KILL it."""
    try:
        proc.communicate(timeout=GRACE)
        return
    except subprocess.TimeoutExpired:
        pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.communicate(timeout=GRACE)
            return
        except subprocess.TimeoutExpired:
            continue


class ControlDir:
    """The run's private directory for ssh ControlPath sockets, made on first use, removed at the end."""

    def __init__(self) -> None:
        self._path: Path | None = None
        self._lock = threading.Lock()
        self.masters: dict[str, tuple[list[str], str]] = {}  # socket -> (ssh options with it, destination)
        self.exiting: list[subprocess.Popen] = []  # `ssh -O exit` asked of masters no longer needed

    @property
    def path(self) -> Path:
        with self._lock:
            if self._path is None:
                self._path = Path(tempfile.mkdtemp(prefix="xp-", dir=private_base()))
                atexit.register(self.close)
            check_private(self._path)
            return self._path

    def socket_for(self, identity: str) -> str:
        digest = hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()[:20]
        return str(self.path / digest)

    def ask_to_exit(self, socket_path: str) -> None:
        """`ssh -O exit` without waiting for it (the host's result must not wait); close() reaps it, and
        still ends the master the hard way if it did not go."""
        options, destination = self.masters[socket_path]
        with contextlib.suppress(OSError):
            self.exiting.append(subprocess.Popen([*options, "-O", "exit", destination], stdin=subprocess.DEVNULL,
                                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def close(self) -> None:
        """Tell every master of this run to exit, then remove the directory."""
        for proc in self.exiting:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.exiting = []
        with self._lock:
            path, self._path = self._path, None
            masters, self.masters = dict(self.masters), {}
        if path is None:
            return
        running = [(options, destination) for path, (options, destination) in masters.items() if os.path.exists(path)]
        # 32 at once: a fleet's masters should not add a second per host to the end of the run. Plain
        # threads: this also runs from atexit, where concurrent.futures refuses new work.
        for start in range(0, len(running), 32):
            threads = [threading.Thread(target=stop_master, args=master) for master in running[start:start + 32]]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        for leftover in path.iterdir() if path.exists() else ():
            leftover.unlink(missing_ok=True)
        path.rmdir() if path.exists() else None


def private_base() -> str | None:
    """$XDG_RUNTIME_DIR when it is a private directory of ours, else the system temp dir."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        try:
            info = os.stat(runtime)
        except OSError:
            return None
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o077:
            return runtime
    return None


def check_private(path: Path) -> None:
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise TransportProblem(f"{path}: ssh control directory is not a private directory of this user")


def check_socket(socket_path: str) -> None:
    """A ControlPath socket that exists must be ours: never talk through someone else's master."""
    try:
        info = os.lstat(socket_path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode) or info.st_uid != os.geteuid():
        raise TransportProblem(f"{socket_path}: existing ControlPath is not a socket of this user; not using it")


def stop_master(options: list[str], host: str) -> None:
    """`ssh -O exit` the master; if it does not answer, kill it by the pid `-O check` reports."""
    base = options
    try:
        done = subprocess.run([*base, "-O", "exit", host], capture_output=True, timeout=5)
        if done.returncode == 0:
            return
    except subprocess.TimeoutExpired:
        pass
    try:
        check = subprocess.run([*base, "-O", "check", host], capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:
        return
    text = check.stderr + check.stdout
    if "pid=" in text:
        pid = text.split("pid=", 1)[1].split(")", 1)[0]
        if pid.isdigit():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)


CONTROL = ControlDir()


class SshRunner:
    """A target reached with OpenSSH, built from testinfra's ssh backend (options, sudo, quoting)."""

    def __init__(self, backend, control: ControlDir = CONTROL) -> None:
        self.backend = backend
        self.control = control
        self.identity = ssh_identity(backend)

    def argv(self, command: str) -> list[str]:
        """The local ssh command line: testinfra's options, our ControlPath, then `host command`."""
        cmd, args = self.backend._build_ssh_command(command)
        line = " ".join(c for c in cmd if not c.startswith("-o ControlPath="))
        argv = shlex.split(line % tuple(shlex.quote(a) for a in args))
        socket_path = self.control.socket_for(self.identity)
        check_socket(socket_path)
        # Ours first: ssh keeps the first value of an option, so a ControlPath in the user's extra args
        # (ansible's ssh_args) cannot make two targets share a master. `%` is ssh's escape: doubled.
        first = argv.index("ssh") + 1 if "ssh" in argv else 1
        argv[first:first] = ["-o", f"ControlPath={socket_path.replace('%', '%%')}", "-o", "ControlMaster=auto"]
        self.control.masters.setdefault(socket_path, (argv[:-2], argv[-2]))
        return argv

    def run_script(self, script: str, timeout: float | None = None) -> ScriptResult:
        """ssh exits 255 when it could not reach the host: the caller finds no output of the script."""
        return run_local_command(self.argv(self.backend.get_command(remote_command(script))), timeout)

    def release(self) -> None:
        """End this target's master now (a fleet must not keep one ssh process per host); the next
        command opens a new one."""
        socket_path = self.control.socket_for(self.identity)
        master = self.control.masters.get(socket_path)
        if master is not None and os.path.exists(socket_path):
            self.control.ask_to_exit(socket_path)


class LocalRunner:
    """This machine (`local://`), sudo as testinfra does it."""

    def __init__(self, backend=None) -> None:
        self.backend = backend
        self.identity = "local://"

    def run_script(self, script: str, timeout: float | None = None) -> ScriptResult:
        command = remote_command(script)
        if self.backend is not None:
            command = self.backend.get_command(command)  # sudo, as testinfra does it
        return run_local_command(["/bin/sh", "-c", command], timeout)


class TestinfraRunner:
    """Any other testinfra backend (docker, paramiko, salt, ...): its own `run`, which cannot be
    interrupted; a deadline abandons the call (reported), it cannot end the remote command."""

    def __init__(self, host) -> None:
        self.host = host
        self.identity = f"{host.backend.NAME}://{host.backend.get_hostname()}"

    def run_script(self, script: str, timeout: float | None = None) -> ScriptResult:
        box: dict[str, object] = {}

        def call() -> None:
            try:
                box["result"] = self.host.run("sh -c %s", script)
            except BaseException as exc:  # handed to the caller's thread
                box["error"] = exc

        worker = threading.Thread(target=call, daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            raise HostTimeout(f"timed out after {timeout:g} s (the {self.host.backend.NAME} backend cannot "
                              "end the remote command)")
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        result = box["result"]
        return ScriptResult(result.rc, result.stdout_bytes, result.stderr_bytes)  # type: ignore[attr-defined]


def ssh_identity(backend) -> str:
    """Everything that decides which machine an ssh command reaches: its command line without any
    ControlPath (user, port, alias, identity, extra args such as ProxyCommand) and the ssh_config
    file it reads, by path and content."""
    cmd, args = backend._build_ssh_command("true")
    line = " ".join(c for c in cmd if not c.startswith("-o ControlPath="))
    parts = [line % tuple(shlex.quote(a) for a in args)]
    config = getattr(backend, "ssh_config", None)
    if config:
        try:
            parts.append(Path(config).resolve().as_posix())
            parts.append(hashlib.sha256(Path(config).read_bytes()).hexdigest())
        except OSError as exc:
            parts.append(f"unreadable:{exc}")
    return "\0".join(parts)


def runner_for(backend):
    """The runner for a testinfra backend: ours for ssh and local, testinfra's own for the rest."""
    import testinfra.host

    name = getattr(backend, "NAME", "")
    if name in ("ssh", "safe-ssh"):
        return SshRunner(backend)
    if name == "local":
        return LocalRunner(backend)
    if name == "ansible" and not getattr(backend, "force_ansible", True):
        inner = backend.ansible_runner.get_host(
            backend.host, ssh_config=backend.ssh_config, ssh_identity_file=backend.ssh_identity_file)
        inner_backend = getattr(inner, "backend", None)
        if getattr(inner_backend, "NAME", "") in ("ssh", "safe-ssh", "local"):
            return runner_for(inner_backend)
    return TestinfraRunner(testinfra.host.Host(backend))


def connect(spec: str, **backend_options: object):
    """The runner for a testinfra host spec (`ssh://root@node03`, `local://`), as --hosts builds it."""
    import testinfra.backend

    return runner_for(testinfra.backend.get_backend(spec, **backend_options))
