"""Collecting a fleet: at most N hosts in flight, each with its own deadline, results in the targets' order."""

from __future__ import annotations

import re
import resource
import threading
import time
from dataclasses import dataclass

from xenpass.targets import FDS_PER_HOST, FDS_RESERVED, Target, gather, host_slots
from xenpass.transport import ScriptResult


@dataclass
class CountingRunner:
    """A host that answers the collector after `delay` seconds, counting how many are asked at once."""

    name: str
    board: dict
    delay: float = 0.05
    released: bool = False

    def run_script(self, script: str, timeout: float | None = None) -> ScriptResult:
        token = re.search(r"^T=(\w+)$", script, re.M).group(1)  # type: ignore[union-attr]
        with self.board["lock"]:
            self.board["now"] += 1
            self.board["peak"] = max(self.board["peak"], self.board["now"])
        time.sleep(self.delay)
        with self.board["lock"]:
            self.board["now"] -= 1
        return ScriptResult(0, f"==XP:{token}:FACT release 6.1.0-{self.name}\n".encode(), b"")

    def release(self) -> None:
        self.released = True


def fleet(count: int, delay: float = 0.05) -> tuple[list[Target], dict]:
    board = {"lock": threading.Lock(), "now": 0, "peak": 0}
    runners = [CountingRunner(f"h{i}", board, delay) for i in range(count)]
    return [Target(name=r.name, spec=f"ssh://{r.name}", runner=r) for r in runners], board


def test_no_more_than_max_hosts_are_collected_at_once_and_every_host_is_judged():
    targets, board = fleet(40)
    results = gather(targets, lambda t: t.runner, timeout=30, max_hosts=6)
    assert board["peak"] == 6
    assert [r.name for r in results] == [t.name for t in targets]
    assert all(r.error is None and r.facts.raw.release == f"6.1.0-{r.name}" for r in results)
    assert all(t.runner.released for t in targets)  # no ssh master kept per host after its facts are in


def test_a_queued_hosts_deadline_starts_with_its_own_collection():
    targets, _ = fleet(6, delay=0.4)  # three waves of 0.4 s with 2 slots: 1.2 s, past a 1 s deadline
    results = gather(targets, lambda t: t.runner, timeout=1.0, max_hosts=2)
    assert all(r.error is None for r in results), [r.error for r in results]


def test_the_open_file_limit_bounds_the_hosts_in_flight():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        assert host_slots(64) == (256 - FDS_RESERVED) // FDS_PER_HOST == 32
        assert host_slots(8) == 8
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
