from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xenpass.parse.os_release import parse_os_release

ALPINE = """NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.19.1
PRETTY_NAME="Alpine Linux v3.19"
HOME_URL="https://alpinelinux.org/"
BUG_REPORT_URL="https://gitlab.alpinelinux.org/alpine/aports/-/issues"
"""

DEBIAN = """PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
"""


def test_alpine_and_debian() -> None:
    assert parse_os_release(ALPINE)["ID"] == "alpine"
    assert parse_os_release(ALPINE)["VERSION_ID"] == "3.19.1"
    assert parse_os_release(DEBIAN)["PRETTY_NAME"] == "Debian GNU/Linux 12 (bookworm)"
    assert parse_os_release(DEBIAN)["VERSION_ID"] == "12"


def test_shell_quoting() -> None:
    text = "# comment\nA='single $x'\nB=\"esc \\\"q\\\" \\$HOME\"\nID_LIKE=\"rhel fedora\"\nBROKEN=\"open\nnot a line\n"
    info = parse_os_release(text)
    assert info == {"A": "single $x", "B": 'esc "q" $HOME', "ID_LIKE": "rhel fedora", "BROKEN": "open"}


@settings(max_examples=300)
@given(st.text())
def test_never_raises(text: str) -> None:
    parse_os_release(text)
