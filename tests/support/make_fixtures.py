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
    stable_directory_order(raw)
    return raw


def stable_directory_order(raw: RawFacts) -> None:
    """Readdir order is the filesystem's (ext4 hashes names with a per-filesystem seed): fixtures keep the
    listing sorted, so a scenario regenerates the same on any machine."""
    listing = raw.commands.get("readdir /etc/modprobe.d")
    if listing is not None and listing.output is not None:
        listing.output = "".join(sorted(listing.output.splitlines(keepends=True)))


def main(names: list[str]) -> None:
    for name in names or sorted(SCENARIOS):
        path = save_snapshot(snapshot_of(name), FIXTURES)
        print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
