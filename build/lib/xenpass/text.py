"""Host text as data: exact bytes kept in str, and a visible form of it for every report.

Host files and command output are decoded with `surrogateescape`, so every byte the host sent survives
in a str and `as_bytes` gives it back exactly (hashes, rewrites). `visible` is what a person is shown:
undecodable bytes and control characters become escapes, so nothing a host wrote can reach a terminal,
a page or a JSON consumer raw.
"""

from __future__ import annotations

import re

ENCODING = "utf-8"
ERRORS = "surrogateescape"


def from_bytes(data: bytes) -> str:
    """Bytes from a host as str, losslessly (undecodable bytes become lone surrogates)."""
    return data.decode(ENCODING, ERRORS)


def as_bytes(text: str) -> bytes:
    """The exact bytes a `from_bytes` str came from."""
    return text.encode(ENCODING, ERRORS)


# C0 and C1 controls (but tab and newline), DEL, lone surrogates (undecodable bytes), and the
# Unicode line/paragraph separators and bidi overrides that can rearrange what a reader sees.
_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, as surrogateescape stores it
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def visible(text: str, keep_newlines: bool = True) -> str:
    """`text` with every control character and undecodable byte shown as an escape (`\\x1b`, `\\xe9`).

    Backslashes are left as they are: the result is for reading, not for decoding back.
    """
    shown = _HIDDEN.sub(_escape, text)
    if not keep_newlines:
        shown = shown.replace("\n", "\\n").replace("\t", "\\t")
    return shown


# What a pytest test id keeps as it is: ASCII letters, digits and `._:@-[]/_` (host names, user@host, BDFs,
# "node03 [old]"). Nothing here is markup in HTML or a control sequence in a terminal.
_ID_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@-[]/_")


def percent_encoded(text: str, safe: frozenset[str]) -> str:
    """Every character outside `safe` as `%XX` of its UTF-8 bytes (surrogates with surrogatepass): injective."""
    return "".join(c if c in safe else "".join(f"%{b:02X}" for b in c.encode(ENCODING, "surrogatepass"))
                   for c in text)


_FILE_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


def safe_file_stem(text: str) -> str:
    """A host name as a file name: distinct names never share a file (`node03:2201` -> `node03%3A2201`)."""
    stem = percent_encoded(text, _FILE_SAFE)
    return stem if stem.strip(".") else stem.replace(".", "%2E") or "host"


def safe_id(text: str) -> str:
    """`text` (a host name) for a pytest test id: harmless in HTML, a terminal and a node id, by construction.

    Every character outside `[A-Za-z0-9._:@\\-\\[\\]/_]` is percent-encoded as its UTF-8 bytes (`<` is `%3C`,
    a space `%20`, `%` itself `%25`, ESC `%1B`, `é` `%C3%A9`); a lone surrogate (an undecodable byte of a
    file name) is encoded with `surrogatepass` (`%ED%B3%A9` for the byte 0xe9). `urllib.parse.unquote(id,
    errors="surrogatepass")` gives the name back, so distinct names always get distinct ids, and the same
    name the same id in every run. Percent-escapes rather than `\\x3c`: pytest would double the backslash.
    """
    return percent_encoded(text, _ID_SAFE)


def exception_line(exc: BaseException) -> str:
    """An exception as one visible line (`OSError: [Errno 13] ...`), for a report step that failed."""
    return visible(f"{type(exc).__name__}: {exc}", keep_newlines=False)
