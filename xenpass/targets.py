"""Targets (hosts to check) from the command line or an inventory, and collecting them all at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from xenpass.facts.collector import HostUnreachable, collect
from xenpass.facts.host import HostFacts
from xenpass.facts.raw import RawFacts, SnapshotError, load_snapshot
from xenpass.parse.bdf import Bdf, parse_bdf
from xenpass.rules.declared import declared_devices


class UsageProblem(Exception):
    """Bad user input, reported before anything runs."""


@dataclass(frozen=True)
class Target:
    name: str
    spec: str | None = None  # testinfra host spec; None = local
    snapshot: str | None = None  # a saved snapshot instead of a live host
    devices: tuple[Bdf, ...] = ()
    domus: tuple[str, ...] = ()


@dataclass
class HostResult:
    target: Target
    facts: HostFacts | None = None
    error: str | None = None
    seconds: float = 0.0
    devices: list[Bdf] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.target.name


def parse_devices(values: Sequence[str]) -> tuple[Bdf, ...]:
    try:
        return tuple(dict.fromkeys(parse_bdf(v) for v in values))
    except ValueError as exc:
        raise UsageProblem(f"--device: {exc}") from None


def load_inventory(path: str) -> list[Target]:
    """hosts.yaml: {hosts: {NAME: {target: SPEC | snapshot: PATH, devices: [...], domus: [...]}}}."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UsageProblem(f"--inventory {path}: {exc}") from None
    hosts = data.get("hosts") if isinstance(data, dict) else None
    if not isinstance(hosts, dict) or not hosts:
        raise UsageProblem(f"--inventory {path}: expected a mapping 'hosts:' with at least one host")
    base = Path(path).parent
    return [inventory_target(str(name), entry or {}, base, path) for name, entry in hosts.items()]


def inventory_target(name: str, entry: object, base: Path, path: str) -> Target:
    if not isinstance(entry, dict):
        raise UsageProblem(f"--inventory {path}: host {name!r} must be a mapping")
    unknown = set(entry) - {"target", "snapshot", "devices", "domus"}
    if unknown:
        raise UsageProblem(f"--inventory {path}: host {name!r} has unknown keys: {', '.join(sorted(unknown))}")
    devices = entry.get("devices") or []
    domus = entry.get("domus") or []
    if not isinstance(devices, list) or not isinstance(domus, list):
        raise UsageProblem(f"--inventory {path}: host {name!r}: devices and domus must be lists")
    snapshot = entry.get("snapshot")
    return Target(
        name=name,
        spec=entry.get("target"),
        snapshot=str(base / snapshot) if snapshot else None,
        devices=parse_devices([str(d) for d in devices]),
        domus=tuple(str(d) for d in domus),
    )


def snapshot_targets(paths: Sequence[str], devices: tuple[Bdf, ...], domus: tuple[str, ...]) -> list[Target]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.glob("*.json"))
        elif p.is_file():
            files.append(p)
        else:
            raise UsageProblem(f"--snapshot {p}: no such file or directory")
    if not files:
        raise UsageProblem(f"--snapshot {' '.join(paths)}: no snapshot (*.json) found")
    return [Target(name=f.stem, snapshot=str(f), devices=devices, domus=domus) for f in files]


Connect = Callable[[Target], object]


def gather(targets: Sequence[Target], connect: Connect, timeout: float,
           on_done: Callable[[HostResult], None] = lambda r: None) -> list[HostResult]:
    """Collect every host at once, each in a daemon thread with its own deadline.

    A host that hangs becomes that host's error after `timeout` seconds; the others go on.
    Daemon threads, so a hung ssh cannot hold the process open at exit. Results keep the
    targets' order; `on_done` is called once per host, as each finishes.
    """
    results = [HostResult(t) for t in targets]
    finished: set[int] = set()
    lock = threading.Lock()

    def finish(index: int, outcome: HostResult) -> None:
        with lock:
            if index in finished:
                return
            finished.add(index)
            results[index] = outcome
        on_done(outcome)

    threads = [threading.Thread(target=lambda i=i, t=t: finish(i, gather_one(t, connect)), daemon=True)
               for i, t in enumerate(targets)]
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.start()
    for index, thread in enumerate(threads):
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            late = HostResult(targets[index], error=f"timed out after {timeout:g} s collecting facts", seconds=timeout)
            finish(index, late)
    return results


def gather_one(target: Target, connect: Connect) -> HostResult:
    result = HostResult(target)
    start = time.monotonic()
    try:
        raw = read_target(target, connect)
        result.facts = HostFacts(raw)
        result.devices = list(target.devices) or declared_devices(result.facts)
    except (HostUnreachable, SnapshotError) as exc:
        result.error = str(exc)
    except Exception as exc:
        result.error = one_line(exc)
    result.seconds = time.monotonic() - start
    return result


def read_target(target: Target, connect: Connect) -> RawFacts:
    if target.snapshot:
        raw = load_snapshot(target.snapshot)
        raw.host = target.name
    else:
        raw = collect(connect(target), target.name, extra_files=target.domus)  # type: ignore[arg-type]
    raw.flags["requested_domu"] = list(target.domus)
    return raw


def one_line(exc: BaseException) -> str:
    """testinfra raises RuntimeError(CommandResult) for ssh failures: keep its last stderr line."""
    arg = exc.args[0] if exc.args else exc
    stderr = getattr(arg, "stderr", None)
    if stderr:
        lines = [ln for ln in str(stderr).splitlines() if ln.strip()]
        return f"unreachable: {lines[-1].strip()}" if lines else "unreachable"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"
