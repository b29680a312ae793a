from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xenpass.parse.modprobe import (
    ModprobeDirective,
    Softdep,
    normalize_module,
    parse_modprobe_conf,
    parse_options,
    parse_softdep,
)


def test_seed_blacklist() -> None:
    # node03:~# grep sas /etc/modprobe.d/blacklist.conf
    text = "# sas\nblacklist mpt2sas\n"
    assert parse_modprobe_conf(text, "/etc/modprobe.d/blacklist.conf") == [
        ModprobeDirective("/etc/modprobe.d/blacklist.conf", 2, "blacklist mpt2sas", "blacklist", "mpt2sas", "")
    ]


def test_debian_lab_options_line() -> None:
    (d,) = parse_modprobe_conf("options xen-pciback hide=(0000:00:05.0)\n", "/etc/modprobe.d/xen.conf")
    assert (d.keyword, d.module, d.args) == ("options", "xen-pciback", "hide=(0000:00:05.0)")
    assert normalize_module(d.module) == "xen_pciback"


def test_well_known_alternatives() -> None:
    text = (
        "softdep mpt3sas pre: xen-pciback\n"
        "install mpt3sas /sbin/modprobe xen-pciback; /sbin/modprobe --ignore-install mpt3sas\n"
        "install mpt3sas /bin/false\n"
        "remove  mpt3sas /bin/true\n"
        "alias mpt2sas mpt3sas\n"
        "include /etc/modprobe.d/other\n"
    )
    found = [(d.lineno, d.keyword, d.module, d.args) for d in parse_modprobe_conf(text, "f")]
    assert found == [
        (1, "softdep", "mpt3sas", "pre: xen-pciback"),
        (2, "install", "mpt3sas", "/sbin/modprobe xen-pciback; /sbin/modprobe --ignore-install mpt3sas"),
        (3, "install", "mpt3sas", "/bin/false"),
        (4, "remove", "mpt3sas", "/bin/true"),
        (5, "alias", "mpt2sas", "mpt3sas"),
        (6, "include", "/etc/modprobe.d/other", ""),
    ]


def test_kmod_comments_only_at_line_start() -> None:
    text = "#blacklist a\n  # blacklist b\n\t#options c x=1\noptions d x=1 # keep\nblacklist e # ignored words\n"
    found = [(d.keyword, d.module, d.args) for d in parse_modprobe_conf(text, "f")]
    # kmod: `options` keeps the rest of the line, `#` included; `blacklist` ignores extra words
    assert found == [("options", "d", "x=1 # keep"), ("blacklist", "e", "")]


def test_backslash_continuation_and_escapes() -> None:
    text = "options xen_pciback \\\n  hide=(01:00.0)\\\n(02:00.0)\nblacklist a\\b\n"
    found = [(d.lineno, d.module, d.args) for d in parse_modprobe_conf(text, "f")]
    assert found == [(1, "xen_pciback", "hide=(01:00.0)(02:00.0)"), (4, "ab", "")]


def test_bad_and_unknown_lines_are_skipped() -> None:
    text = "blacklist\noptions mod\nalias onlyone\nweakdep a b\nfrobnicate x\nBLACKLIST y\nconfig z\n"
    assert parse_modprobe_conf(text, "f") == []


def test_options_with_only_trailing_blank_is_kept_like_kmod() -> None:
    (d,) = parse_modprobe_conf("options mod  \n", "f")
    assert (d.module, d.args) == ("mod", "")


def test_tabs_and_last_line_without_newline() -> None:
    (d,) = parse_modprobe_conf("options\txen-pciback\thide=(01:00.0)\tpermissive=1", "f")
    assert d.args == "hide=(01:00.0)\tpermissive=1"
    assert parse_options(d.args) == [("hide", "(01:00.0)"), ("permissive", "1")]


def test_parse_options() -> None:
    assert parse_options("hide=(01:00.0) permissive=1") == [("hide", "(01:00.0)"), ("permissive", "1")]
    assert parse_options('hide="(01:00.0) (02:00.0)" verbose_request') == [
        ("hide", "(01:00.0) (02:00.0)"), ("verbose_request", None)]
    assert parse_options('"hide=(01:00.0)"') == [("hide", "(01:00.0)")]
    assert parse_options("") == []


def test_parse_softdep() -> None:
    assert parse_softdep("pre: xen-pciback") == Softdep(("xen-pciback",), ())
    assert parse_softdep("ignored pre: a b post: c pre: d") == Softdep(("a", "b", "d"), ("c",))
    assert parse_softdep("pre:a") == Softdep((), ())  # "pre:a" is neither keyword


def test_normalize_module() -> None:
    assert normalize_module("xen-pciback") == normalize_module("xen_pciback") == "xen_pciback"


values = st.text(alphabet=st.characters(blacklist_characters=' \t\n\v\f\r"\0', blacklist_categories=("Cs",)),
                 min_size=1)
names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)


@settings(max_examples=150)
@given(st.lists(st.tuples(names, values), max_size=5))
def test_parse_options_generated(pairs: list[tuple[str, str]]) -> None:
    text = " ".join(f"{k}={v}" for k, v in pairs)
    assert parse_options(text) == [(k, v) for k, v in pairs]


@settings(max_examples=150)
@given(st.lists(st.tuples(names, st.text(alphabet=st.characters(blacklist_characters='"\0',
                                                                  blacklist_categories=("Cs",)))), max_size=4))
def test_parse_options_quoted_values(pairs: list[tuple[str, str]]) -> None:
    text = " ".join(f'{k}="{v}"' for k, v in pairs)
    assert parse_options(text) == [(k, v) for k, v in pairs]


@settings(max_examples=300)
@given(st.text())
def test_never_raises(text: str) -> None:
    for d in parse_modprobe_conf(text, "f"):
        assert d.keyword in {"blacklist", "install", "remove", "options", "softdep", "alias", "include"}
        parse_options(d.args)
        parse_softdep(d.args)
