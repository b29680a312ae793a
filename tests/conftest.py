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


@pytest.fixture(scope="session", autouse=True)
def private_image_cache(tmp_path_factory):
    """The product's image cache (and every pytest it starts) writes under this run's tmp dir, not ~/.cache."""
    import os

    os.environ["XENPASS_CACHE_DIR"] = str(tmp_path_factory.mktemp("image-cache"))
    yield
    os.environ.pop("XENPASS_CACHE_DIR", None)


@pytest.fixture
def fixture_facts():
    return load_fixture


@pytest.fixture(scope="module")
def served_node03(tmp_path_factory):
    """The seed's broken node03 as a fake root behind a real sshd: (root directory, runner to it)."""
    from tests.support.fakehost import build
    from tests.support.scenarios import SCENARIOS
    from tests.support.sshd import Sshd
    from xenpass.transport import connect

    base = tmp_path_factory.mktemp("node03")
    root = build(SCENARIOS["node03-broken-mpt2sas-alias"](), base / "root")
    with Sshd(base / "sshd", root, name="node03") as server:
        yield root, connect("ssh://node03", ssh_config=str(server.ssh_config))
