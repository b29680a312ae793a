"""Regenerate fixtures/*.json: build each scenario's fake root, run the real collector in it, save.

    .venv/bin/python -m tests.support.make_fixtures [NAME ...]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.support.chroot import ChrootHost
from tests.support.fakehost import build
from tests.support.scenarios import SCENARIOS
from xenpass.facts.collector import collect
from xenpass.facts.raw import RawFacts, save_snapshot

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
STAMP = "2026-11-24T00:00:00+00:00"  # fixed, so regenerating an unchanged scenario changes nothing


def snapshot_of(name: str) -> RawFacts:
    with tempfile.TemporaryDirectory(prefix=f"xenpass-{name}-") as tmp:
        host = SCENARIOS[name]()
        root = build(host, Path(tmp) / "root")
        raw = collect(ChrootHost(root, userspec=host.collect_as), name)
    raw.collected_at = STAMP
    return raw


def main(names: list[str]) -> None:
    for name in names or sorted(SCENARIOS):
        path = save_snapshot(snapshot_of(name), FIXTURES)
        print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
