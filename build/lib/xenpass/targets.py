"""Targets (hosts to check) from the command line or an inventory, and collecting them all at once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import yaml

from xenpass.facts.collector import HostUnreachable, collect
from xenpass.facts.host import HostFacts
from xenpass.facts.image_cache import ImageCache
from xenpass.facts.raw import RawFacts, SnapshotError, load_snapshot
from xenpass.parse.bdf import Bdf, parse_bdf
from xenpass.rules.declared import declared_devices
from xenpass.transport import GRACE, HostTimeout, TransportProblem, runner_for


class UsageProblem(Exception):
    """Bad user input, reported before anything runs."""


@dataclass(frozen=True)
class Target:
    """One host to check. Its identity is its whole connection (the runner's), never its name alone:
    two targets at one address (different ports, users, proxies) are two targets with two names."""

    name: str  # unique in the run, stable: what reports and test ids show
    spec: str | None = None  # testinfra host spec; None = local
    snapshot: str | None = None  # a saved snapshot instead of a live host
    devices: tuple[Bdf, ...] = ()
    domus: tuple[str, ...] = ()
    runner: object = field(default=None, compare=False, repr=False)  # xenpass.transport runner


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


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys: an inventory naming a host twice would lose one silently."""

    def construct_mapping(self, node, deep=False):  # type: ignore[no-untyped-def]
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def parse_domus(values: Sequence[str], where: str = "--domu") -> tuple[str, ...]:
    """domU config paths on the host: absolute, and one line each (the collector lists files by line)."""
    for value in values:
        if not value.startswith("/") or "\n" in value or "\0" in value:
            raise UsageProblem(f"{where} {value!r}: must be an absolute path on the host, without newline or NUL")
    return tuple(dict.fromkeys(values))


def load_inventory(path: str) -> list[Target]:
    """hosts.yaml: {hosts: {NAME: {target: SPEC | snapshot: PATH, devices: [...], domus: [...]}}}."""
    try:
        data = yaml.load(Path(path).read_bytes(), Loader=UniqueKeyLoader)
    except (OSError, yaml.YAMLError) as exc:
        raise UsageProblem(f"--inventory {path}: {' '.join(str(exc).split())}") from None
    hosts = data.get("hosts") if isinstance(data, dict) else None
    if not isinstance(hosts, dict) or not hosts:
        raise UsageProblem(f"--inventory {path}: expected a mapping 'hosts:' with at least one host")
    base = Path(path).parent
    targets = [inventory_target(str(name), entry or {}, base, path) for name, entry in hosts.items()]
    twice = [name for name, n in Counter(t.name for t in targets).items() if n > 1]
    if twice:  # 1 and "1" are two YAML keys but one name
        raise UsageProblem(f"--inventory {path}: host name(s) given twice: {', '.join(map(repr, twice))}")
    return targets


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
    parsed = parse_devices([str(d) for d in devices])
    if bool(snapshot) == bool(entry.get("target")):
        raise UsageProblem(f"--inventory {path}: host {name!r} needs exactly one of 'target' and 'snapshot'")
    return Target(
        name=name,
        spec=str(entry["target"]) if entry.get("target") else None,
        snapshot=str(base / snapshot) if snapshot else None,
        devices=parsed,
        domus=parse_domus([str(d) for d in domus], f"--inventory {path}: host {name!r}: domus:"),
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
    files = list(dict.fromkeys(f.resolve() for f in files))  # one file named twice is one target
    stems = [unquote(f.stem, errors="surrogatepass") for f in files]  # save_snapshot percent-encodes names
    names = unique_names([[stem, f"{f.parent.name}/{stem}", str(f)] for stem, f in zip(stems, files, strict=True)])
    return [Target(name=n, snapshot=str(f), devices=devices, domus=domus) for n, f in zip(names, files, strict=True)]


def unique_names(candidates: list[list[str]]) -> list[str]:
    """For each target, the first of its candidate names (short to long) that no other target shares.

    Stable: the same targets always get the same names. `host`, then `host:port`, then `user@host:port`,
    then the whole spec; `#2`, `#3` only if even the specs are equal.
    """
    level = [0] * len(candidates)
    while True:
        names = [c[min(lv, len(c) - 1)] for c, lv in zip(candidates, level, strict=True)]
        counts = Counter(names)
        clashing = [i for i, n in enumerate(names) if counts[n] > 1 and level[i] < len(candidates[i]) - 1]
        if not clashing:
            break
        for i in clashing:
            level[i] += 1
    seen: Counter[str] = Counter()
    out = []
    for name in names:
        seen[name] += 1
        out.append(name if counts[name] == 1 or seen[name] == 1 else f"{name}#{seen[name]}")
    return out


def spec_name_candidates(backend, spec: str) -> list[str]:
    """Names for a testinfra backend, shortest first: host, host:port, user@host:port, the spec."""
    host = backend.get_hostname() if backend.NAME != "local" else "localhost"
    parsed = getattr(backend, "host", None)
    port = getattr(parsed, "port", None)
    user = getattr(parsed, "user", None)
    shown_host = f"[{host}]" if ":" in host else host
    with_port = f"{shown_host}:{port}" if port else host
    with_user = f"{user}@{with_port}" if user else with_port
    return list(dict.fromkeys([host, with_port, with_user, spec]))


def targets_from_backends(pairs: Sequence[tuple[str, object]], devices: tuple[Bdf, ...],
                          domus: tuple[str, ...]) -> list[Target]:
    """One target per distinct connection (a spec given twice is checked once), named uniquely."""
    runners, specs, candidates = [], [], []
    seen: set[str] = set()
    for spec, backend in pairs:
        runner = runner_for(backend)
        if runner.identity in seen:
            continue
        seen.add(runner.identity)
        runners.append(runner)
        specs.append(spec)
        candidates.append(spec_name_candidates(backend, spec))
    names = unique_names(candidates)
    return [Target(name=n, spec=spec, devices=devices, domus=domus, runner=r)
            for n, spec, r in zip(names, specs, runners, strict=True)]


Connect = Callable[[Target], object]

DEFAULT_MAX_HOSTS = 64
FDS_PER_HOST = 6  # an ssh child's three pipes, plus the pipes of the one being spawned
FDS_RESERVED = 64  # python, pytest, the reports


def host_slots(requested: int) -> int:
    """Hosts in flight at once: as asked, but never more than the open-file limit can carry."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return max(1, requested)
    if soft == resource.RLIM_INFINITY:
        return max(1, requested)
    return max(1, min(requested, (soft - FDS_RESERVED) // FDS_PER_HOST))


def gather(targets: Sequence[Target], connect: Connect, timeout: float,
           on_done: Callable[[HostResult], None] = lambda r: None, max_hosts: int = DEFAULT_MAX_HOSTS,
           cache: ImageCache | None = None) -> list[HostResult]:
    """Collect every host, at most `host_slots(max_hosts)` at once, each with its own deadline.

    A host that hangs becomes that host's error after `timeout` seconds from its own start (the runner
    ends its command on both sides); the others go on. The backstop below is only for runners that cannot
    be interrupted: such a host is given up and its slot goes to a new worker. Results keep the targets'
    order; `on_done` is called once per host.
    """
    results = [HostResult(t) for t in targets]
    pending = list(range(len(targets)))[::-1]
    started: dict[int, float] = {}
    finished: set[int] = set()
    lock = threading.Lock()
    all_done = threading.Event()

    def finish(index: int, outcome: HostResult) -> None:
        with lock:
            if index in finished:
                return
            finished.add(index)
            results[index] = outcome
            if len(finished) == len(targets):
                all_done.set()
        on_done(outcome)

    def worker() -> None:
        while True:
            with lock:
                if not pending:
                    return
                index = pending.pop()
                started[index] = time.monotonic()
            finish(index, gather_one(targets[index], connect, timeout, cache))

    def add_worker() -> None:
        threading.Thread(target=worker, daemon=True).start()

    if not targets:
        return results
    for _ in range(min(host_slots(max_hosts), len(targets))):
        add_worker()
    backstop = timeout + 3 * GRACE + 2
    while not all_done.wait(0.5):
        now = time.monotonic()
        with lock:
            stuck = [i for i, t0 in started.items() if i not in finished and now - t0 > backstop]
        for index in stuck:
            finish(index, HostResult(targets[index], error=f"timed out after {timeout:g} s collecting facts",
                                     seconds=timeout))
            add_worker()  # the stuck thread keeps its slot until it returns; the queue must go on
    return results


def gather_one(target: Target, connect: Connect, timeout: float | None = None,
               cache: ImageCache | None = None) -> HostResult:
    result = HostResult(target)
    start = time.monotonic()
    try:
        raw = read_target(target, connect, timeout, cache)
        result.facts = HostFacts(raw)
        result.devices = list(target.devices) or declared_devices(result.facts)
    except (HostUnreachable, SnapshotError, HostTimeout, TransportProblem) as exc:
        result.error = str(exc)
    except Exception as exc:
        result.error = one_line(exc)
    result.seconds = time.monotonic() - start
    return result


def read_target(target: Target, connect: Connect, timeout: float | None = None,
                cache: ImageCache | None = None) -> RawFacts:
    if target.snapshot:
        raw = load_snapshot(target.snapshot)
        raw.host = target.name
    else:
        runner = connect(target)
        try:
            raw = collect(runner, target.name, extra_files=target.domus, timeout=timeout,  # type: ignore[arg-type]
                          cache=cache, identity=getattr(runner, "identity", None))
        finally:
            release = getattr(runner, "release", None)
            if release is not None:
                release()  # no ssh master left per host between the collection and the end of the run
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
