from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xenpass.parse.modules_load import ModuleLoadLine, parse_modules_load


def test_seed_line() -> None:
    # node03:~# grep pciback /etc/modules
    assert parse_modules_load("xen_pciback hide=(01:00.0)\n", "/etc/modules") == [
        ModuleLoadLine("/etc/modules", 1, "xen_pciback hide=(01:00.0)", "xen_pciback", ("hide=(01:00.0)",))
    ]


def test_alpine_default_etc_modules() -> None:
    text = "af_packet\nipv6\n# added by setup-xen-dom0\nxen_pciback\n\n"
    lines = parse_modules_load(text, "/etc/modules")
    assert [(ln.lineno, ln.module, ln.args) for ln in lines] == [
        (1, "af_packet", ()), (2, "ipv6", ()), (4, "xen_pciback", ())]


def test_comment_anywhere_is_cut_by_sed() -> None:
    (line,) = parse_modules_load("xen-pciback hide=(01:00.0) # SAS HBA\n#loop\n", "f")
    assert (line.module, line.args) == ("xen-pciback", ("hide=(01:00.0)",))
    assert line.raw == "xen-pciback hide=(01:00.0) # SAS HBA"


def test_space_inside_hide_splits_the_argument() -> None:
    # Alpine word-splits: modprobe gets `hide=(01:00.0)` and a stray `(02:00.0)`
    (line,) = parse_modules_load("xen_pciback  hide=(01:00.0) (02:00.0)\tpermissive=1\n", "f")
    assert line.args == ("hide=(01:00.0)", "(02:00.0)", "permissive=1")


def test_read_joins_backslash_newline_and_drops_escapes() -> None:
    lines = parse_modules_load("xen_pciback \\\n  hide=\\(01:00.0\\)\nloop\n", "f")
    assert [(ln.lineno, ln.module, ln.args) for ln in lines] == [
        (1, "xen_pciback", ("hide=(01:00.0)",)), (3, "loop", ())]
    assert lines[0].raw == "xen_pciback \\\n  hide=\\(01:00.0\\)"


def test_comment_before_backslash_means_no_continuation() -> None:
    lines = parse_modules_load("a # b \\\nc\n", "f")
    assert [ln.module for ln in lines] == ["a", "c"]


def test_last_line_without_newline_is_flagged() -> None:
    lines = parse_modules_load("loop\nxen_pciback hide=(01:00.0)", "f")
    assert [ln.eof_without_newline for ln in lines] == [False, True]
    assert parse_modules_load("a \\\n", "f")[0].eof_without_newline


def test_carriage_return_is_not_ifs() -> None:
    (line,) = parse_modules_load("xen_pciback\r\n", "f")
    assert line.module == "xen_pciback\r"


def test_empty() -> None:
    assert parse_modules_load("", "f") == []
    assert parse_modules_load("\n\n   \n# only\n", "f") == []


@settings(max_examples=300)
@given(st.text())
def test_never_raises(text: str) -> None:
    for line in parse_modules_load(text, "f"):
        assert line.module and "#" not in line.module
        assert all(a and "#" not in a for a in line.args)
