"""fixtures/*.json are what the real collector says about each scenario's fake root (chroot, as root)."""

from __future__ import annotations

import dataclasses
import os

import pytest

from tests.conftest import load_fixture
from tests.support.make_fixtures import snapshot_of
from tests.support.scenarios import SCENARIOS

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")


def comparable(raw) -> dict:
    data = dataclasses.asdict(raw)
    data.pop("collected_at")
    data.pop("bytes_received")  # the cost of this collection, not a fact
    return data


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_fixture_matches_a_fresh_collection(name):
    assert comparable(snapshot_of(name)) == comparable(load_fixture(name).raw)
