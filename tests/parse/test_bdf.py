from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xenpass.parse.bdf import Bdf, parse_bdf

bdfs = st.builds(Bdf, st.integers(0, 0xFFFF), st.integers(0, 0xFF), st.integers(0, 0x1F), st.integers(0, 7))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("01:00.0", Bdf(0, 1, 0, 0)),  # the seed's lspci address
        ("0000:01:00.0", Bdf(0, 1, 0, 0)),  # xl pci-assignable-list
        ("0000:01:00.0 ", Bdf(0, 1, 0, 0)),  # Xen >= 4.15 prints a trailing space
        ("0000:00:1F.3", Bdf(0, 0, 0x1F, 3)),
        ("ffff:ff:1f.7", Bdf(0xFFFF, 0xFF, 0x1F, 7)),
    ],
)
def test_parse_bdf_accepts(text: str, expected: Bdf) -> None:
    assert parse_bdf(text) == expected


def test_str_and_short() -> None:
    bdf = Bdf(0, 0x1, 0x0A, 1)
    assert str(bdf) == "0000:01:0a.1"
    assert bdf.short == "01:0a.1"


@pytest.mark.parametrize("text", ["", "01:00", "01.00.0", "0000:01:00:0", "g1:00.0", "01:00.0.1", "(01:00.0)",
                                  "01:٠٠.0"])
def test_parse_bdf_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError, match=r"malformed PCI address .*expected \[DDDD:\]BB:SS\.F"):
        parse_bdf(text)


@pytest.mark.parametrize(("text", "what"), [("01:00.8", "function"), ("01:20.0", "slot"), ("100:00.0", "bus"),
                                            ("10000:00:00.0", "domain")])
def test_parse_bdf_rejects_out_of_range(text: str, what: str) -> None:
    with pytest.raises(ValueError, match=what):
        parse_bdf(text)


def test_ordering_follows_fields() -> None:
    assert sorted([Bdf(0, 2, 0, 0), Bdf(0, 1, 0, 1), Bdf(0, 1, 0, 0)]) == [
        Bdf(0, 1, 0, 0), Bdf(0, 1, 0, 1), Bdf(0, 2, 0, 0)]


@settings(max_examples=200)
@given(bdfs)
def test_round_trip(bdf: Bdf) -> None:
    assert parse_bdf(str(bdf)) == bdf
    if bdf.domain == 0:
        assert parse_bdf(bdf.short) == bdf


@settings(max_examples=200)
@given(st.text())
def test_only_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        parse_bdf(text)
