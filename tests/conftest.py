"""Shared helpers for the project's own tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xenpass.facts.host import HostFacts
from xenpass.facts.raw import RawFacts

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def load_fixture(name: str) -> HostFacts:
    return HostFacts(RawFacts.from_dict(json.loads((FIXTURES / f"{name}.json").read_text())))


def fixture_names() -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob("*.json"))


@pytest.fixture
def fixture_facts():
    return load_fixture
