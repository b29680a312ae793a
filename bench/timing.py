"""pytest plugin for the benchmark: how long writing the reports takes (session finish -> unconfigure)."""

from __future__ import annotations

import sys
import time

import pytest

START: list[float] = []


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    START.append(time.monotonic())


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if START:
        sys.stderr.write(f"xenpass-bench: reports written in {time.monotonic() - START[0]:.2f} s\n")
