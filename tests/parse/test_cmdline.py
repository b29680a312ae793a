from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xenpass.parse.cmdline import parse_cmdline


def test_debian_dom0_cmdline() -> None:
    text = ("placeholder root=UUID=0b1c ro quiet xen-pciback.hide=(0000:01:00.0)(02:00.0) "
            "modprobe.blacklist=mpt3sas,mpt2sas\n")
    assert parse_cmdline(text) == [
        ("placeholder", None),
        ("root", "UUID=0b1c"),
        ("ro", None),
        ("quiet", None),
        ("xen-pciback.hide", "(0000:01:00.0)(02:00.0)"),
        ("modprobe.blacklist", "mpt3sas,mpt2sas"),
    ]


def test_quotes_like_next_arg() -> None:
    assert parse_cmdline('a="b c" "d=e f" g="h"i') == [("a", "b c"), ("d", "e f"), ("g", 'h"i')]
    assert parse_cmdline('"quoted param"') == [("quoted param", None)]


def test_double_dash_ends_kernel_params() -> None:
    assert parse_cmdline("ro -- single xen-pciback.hide=(01:00.0)") == [("ro", None)]
    assert parse_cmdline("--=x ro") == [("--", "x"), ("ro", None)]


def test_leading_equals_does_not_count() -> None:
    assert parse_cmdline("=a=b") == [("=a", "b")]


def test_blank() -> None:
    assert parse_cmdline("") == []
    assert parse_cmdline(" \n") == []


@settings(max_examples=300)
@given(st.text())
def test_never_raises(text: str) -> None:
    for param, value in parse_cmdline(text):
        assert isinstance(param, str)
        assert value is None or isinstance(value, str)
