"""xl domain configuration files (xl.cfg), as libxlu reads them, and their `pci = [...]` entries.

Lexer and grammar from tools/libs/util (libxlu_cfg_l.l, libxlu_cfg_y.y, libxlu_cfg.c; verified):
- tokens: IDENT `[a-z][_0-9a-z]*`, NUMBER `[0-9][0-9a-fx]*`, '…' or "…" strings on one line with
  backslash escapes, `, [ ] = ; +=`, NEWLINE = `\\n` or `#...\\n`; blanks are space and tab only, so a
  CR, an upper-case name or a comment on a last line without newline is a lexical error;
- `name = value` or `name += value`, ended by newline or `;` (the last one may be unended); lists may
  nest, span lines and end with a comma; a later assignment replaces an earlier one, `+=` appends;
- any lexical or syntax error makes xl refuse the whole file.
xl takes `pci` only as a list, and reads its items up to the first one that is not a string.
PCI_SPEC_STRING follows `xlu_pci_parse_spec_string` (libxlu_pci.c, Xen >= 4.15).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from xenpass.parse.bdf import Bdf

__all__ = ["DomuConfig", "PciSpec", "format_pci_line", "parse_pci_spec", "parse_xl_cfg"]


@dataclass(frozen=True)
class PciSpec:
    raw: str
    bdf: Bdf | None  # None when the spec names no device (or only by `name=`)
    func_wildcard: bool  # F was '*': every function of the slot
    vslot: int | None
    options: dict[str, str]  # key=value pairs as written, in order
    error: str | None  # xl create refuses the whole domain

    def covers(self, bdf: Bdf) -> bool:
        own = self.bdf
        if own is None:
            return False
        same_slot = (own.domain, own.bus, own.slot) == (bdf.domain, bdf.bus, bdf.slot)
        return same_slot and (self.func_wildcard or own.func == bdf.func)


@dataclass(frozen=True)
class DomuConfig:
    name: str | None
    pci: tuple[PciSpec, ...] | None  # None: no pci key
    pci_raw: str | None  # the pci assignment(s) as written
    errors: tuple[str, ...]  # any entry means xl refuses the file


def parse_xl_cfg(text: str) -> DomuConfig:
    lexer = _Lexer(text)
    parser = _Parser(lexer.tokens(), text)
    parser.parse_file()
    errors = lexer.errors + parser.errors
    settings = parser.settings
    name = settings.get("name")
    pci, pci_raw = _pci(settings.get("pci"), errors)
    return DomuConfig(
        name.value if name is not None and isinstance(name.value, str) else None,
        pci,
        pci_raw,
        tuple(errors),
    )


def format_pci_line(specs: Sequence[str]) -> str:
    if not specs:
        return "pci = []"
    return "pci = [ " + ", ".join(_quote(s) for s in specs) + " ]"


def _quote(spec: str) -> str:
    escaped = spec.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


# -- lexer --------------------------------------------------------------------------------------

_IDENT = re.compile(r"[a-z][_0-9a-z]*")
_NUMBER = re.compile(r"[0-9][0-9a-fx]*")
_STRING = re.compile(r"'(?:[^'\\\n]|\\[^\n])*'|\"(?:[^\"\\\n]|\\[^\n])*\"")
_COMMENT = re.compile(r"#[^\n]*\n")
_PUNCT = {",", "[", "]", "=", ";"}
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
            "t": "\t", "v": "\v"}


@dataclass(frozen=True)
class _Token:
    kind: str  # IDENT NUMBER STRING NEWLINE , [ ] = ; += EOF
    text: str
    line: int
    start: int
    end: int
    value: str = ""


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.out: list[_Token] = []
        self.errors: list[str] = []  # flex reports these and returns no token: parsing goes on

    def tokens(self) -> list[_Token]:
        while self.pos < len(self.text):
            self._next()
        self._emit("EOF", self.pos)
        return self.out

    def _emit(self, kind: str, end: int, value: str = "") -> None:
        start = self.pos
        self.out.append(_Token(kind, self.text[start:end], self.line, start, end, value))
        self.line += self.text.count("\n", start, end)
        self.pos = end

    def _next(self) -> None:
        text, pos = self.text, self.pos
        c = text[pos]
        if c in " \t":
            self.pos += 1
            return
        for kind, regex in (("IDENT", _IDENT), ("NUMBER", _NUMBER)):
            match = regex.match(text, pos)
            if match:
                self._emit(kind, match.end(), match.group())
                return
        if c == "\n" or (c == "#" and _COMMENT.match(text, pos)):
            end = text.index("\n", pos) + 1
            self._emit("NEWLINE", end)
            return
        if c in _PUNCT or text.startswith("+=", pos):
            self._emit(text[pos : pos + (2 if c == "+" else 1)], pos + (2 if c == "+" else 1))
            return
        match = _STRING.match(text, pos)
        if match:
            value, error = _dequote(match.group())
            if error:
                self._error(match.group(), error)
            self._emit("STRING", match.end(), value)
            return
        self._lexical_error()

    def _error(self, near: str, message: str) -> None:
        shown = near.strip(" \t\n").replace("\r", "\\r") or "<newline>"
        self.errors.append(f"line {self.line}: config parsing error near `{shown}': {message}")

    def _lexical_error(self) -> None:
        """flex `.` then `<lexerr>[^ \\t\\n]*|[ \\t]`: the bad char and the rest of the word."""
        end = self.pos + 1
        while end < len(self.text) and self.text[end] not in " \t\n":
            end += 1
        if end == self.pos + 1 and end < len(self.text) and self.text[end] in " \t":
            end += 1
        self._error(self.text[self.pos : end], "lexical error")
        self.line += self.text.count("\n", self.pos, end)
        self.pos = end


def _dequote(quoted: str) -> tuple[str, str | None]:
    """xlu__cfgl_dequote: (value, error). Its numeric escapes are broken upstream: `\\x` always fails
    and an octal escape swallows its digits without producing a character; both kept as is."""
    out: list[str] = []
    body = quoted[1:-1]
    i = 0
    while i < len(body):
        c = body[i]
        i += 1
        if c != "\\":
            out.append(c)
            continue
        nc = body[i]
        i += 1
        if nc in _ESCAPES:
            out.append(_ESCAPES[nc])
        elif nc == "x":
            return "", "invalid digit after backslash hexnumerical character escape in quoted string"
        elif "0" <= nc <= "7":
            digits = len(body[i : i + 3]) - len(body[i : i + 3].lstrip("0123456789"))
            if digits < 2:
                return "", "invalid digit after backslash octalnumerical character escape in quoted string"
            i += digits
        else:
            return "", "invalid character after backlash in quoted string"
    return "".join(out), None


# -- parser -------------------------------------------------------------------------------------

Value = str | list["Value"]


@dataclass
class _Setting:
    value: Value
    raw: list[str] = field(default_factory=list)  # assignments that built the value


class _SyntaxError(Exception):
    pass


class _Parser:
    """Recursive descent over libxlu's grammar, recovering like bison's `error NEWLINE`."""

    def __init__(self, tokens: list[_Token], text: str) -> None:
        self.tokens = tokens
        self.text = text
        self.i = 0
        self.errors: list[str] = []
        self.settings: dict[str, _Setting] = {}

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self, kind: str) -> _Token:
        token = self.peek()
        if token.kind != kind:
            raise _SyntaxError(token)
        self.i += 1
        return token

    def parse_file(self) -> None:
        while self.peek().kind != "EOF":
            try:
                self.statement()
            except _SyntaxError as exc:
                self.syntax_error(exc.args[0])

    def statement(self) -> None:
        token = self.peek()
        if token.kind in ("NEWLINE", ";"):
            self.i += 1
            return
        name = self.take("IDENT")
        op = self.peek()
        if op.kind not in ("=", "+="):
            raise _SyntaxError(op)
        self.i += 1
        value = self.value()
        end = self.tokens[self.i - 1].end
        if self.peek().kind != "EOF":
            if self.peek().kind not in ("NEWLINE", ";"):
                raise _SyntaxError(self.peek())
            self.i += 1
        self.store(name.value, op.kind, value, self.text[name.start : end])

    def value(self) -> Value:
        token = self.peek()
        if token.kind in ("STRING", "NUMBER"):
            self.i += 1
            return token.value
        self.take("[")
        self.newlines()
        items: list[Value] = []
        while self.peek().kind != "]":
            items.append(self.value())
            self.newlines()
            if self.peek().kind == "]":
                break
            self.take(",")
            self.newlines()
        self.i += 1
        return items

    def newlines(self) -> None:
        while self.peek().kind == "NEWLINE":
            self.i += 1

    def store(self, name: str, op: str, value: Value, raw: str) -> None:
        """`xlu__cfg_set_store`: the last assignment wins; `+=` concatenates with the previous one."""
        previous = self.settings.get(name)
        if op != "+=" or previous is None:
            self.settings[name] = _Setting(value, [raw])
        elif type(previous.value) is type(value):
            self.settings[name] = _Setting(previous.value + value, [*previous.raw, raw])  # type: ignore[operator]
        else:
            self.errors.append(f"{name}: can't add [list] to \"string\" or vice versa")

    def syntax_error(self, token: _Token) -> None:
        near = token.text.strip() or ("<newline>" if token.kind == "NEWLINE" else "<end of file>")
        self.errors.append(f"line {token.line}: config parsing error near `{near}': syntax error")
        while self.peek().kind not in ("NEWLINE", "EOF"):
            self.i += 1
        if self.peek().kind == "NEWLINE":
            self.i += 1


def _pci(setting: _Setting | None, errors: list[str]) -> tuple[tuple[PciSpec, ...] | None, str | None]:
    if setting is None:
        return None, None
    raw = "\n".join(setting.raw)
    if isinstance(setting.value, str):
        errors.append("parameter `pci' is a single value but should be a list: xl ignores it")
        return (), raw
    specs: list[PciSpec] = []
    for item in setting.value:
        if not isinstance(item, str):
            errors.append("pci: an item is a list, not a string: xl ignores it and every item after it")
            break
        specs.append(parse_pci_spec(item))
    return tuple(specs), raw


# -- PCI_SPEC_STRING ----------------------------------------------------------------------------

_C_SPACE = " \t\n\v\f\r"
_HEX = "0123456789abcdefABCDEF"
_POLICIES = {"strict", "relaxed", "invalid"}  # libxl enum names, matched case-insensitively
_INT_KEYS = {"permissive", "msitranslate", "seize", "power_mgmt"}


class _SpecError(Exception):
    pass


@dataclass
class _Spec:
    bdf: Bdf | None = None
    wildcard: bool = False
    vslot: int | None = None
    options: dict[str, str] = field(default_factory=dict)


def parse_pci_spec(text: str) -> PciSpec:
    """`xlu_pci_parse_spec_string`: `[DDDD:]BB:SS.F[@VSLOT][,key=value]*` or `key=value[,...]`."""
    spec = _Spec()
    try:
        _parse_spec(text.split("\0", 1)[0], spec)
        error = None
    except _SpecError as exc:
        error = f"unable to parse PCI_SPEC_STRING `{text}': {exc.args[0]}"
    return PciSpec(text, spec.bdf, spec.wildcard, spec.vslot, spec.options, error)


def _parse_spec(text: str, spec: _Spec) -> None:
    bdf_present = name_present = False
    pos = 0
    try:
        pos = _parse_bdf(text, 0, spec)
        bdf_present = True
    except _SpecError:  # not positional: the whole string is key=value pairs
        if "=" not in text:
            raise  # the BDF's own reason says more than "expected key=value"
    if bdf_present:
        if text.startswith("@", pos):
            spec.vslot, pos = _parse_vslot(text, pos + 1)
        if text.startswith(",", pos):
            pos += 1
        elif pos != len(text):
            raise _SpecError(f"unexpected {text[pos:]!r} after the BDF")
    while pos < len(text):
        key, value, pos = _key_value(text, pos)
        spec.options[key] = value
        if key == "bdf":
            _parse_bdf(value, 0, spec)
            bdf_present = True
        elif key == "vslot":
            spec.vslot, _ = _parse_vslot(value, 0)
        elif key == "rdm_policy" and value.lower() not in _POLICIES:
            raise _SpecError(f"Unknown RDM policy: {value}")
        elif key == "name":
            name_present = True
        elif key not in _INT_KEYS | {"rdm_policy"}:
            raise _SpecError(f"Unknown PCI_SPEC_STRING option: {key}")
    if bdf_present == name_present:
        raise _SpecError("exactly one of a BDF and name= is required")


def _parse_bdf(text: str, pos: int, spec: _Spec) -> int:
    """libxlu `parse_bdf`: the number of ':' in the leading hex/colon run picks the format."""
    run = pos
    while run < len(text) and (text[run] in _HEX or text[run] == ":"):
        run += 1
    colons = text.count(":", pos, run)
    if colons not in (1, 2):
        raise _SpecError("malformed BDF")
    fields: list[int] = []
    for n in range(colons + 1):
        value, pos = _scanf_hex(text, pos)
        fields.append(value)
        sep = ":" if n < colons else "."
        if not text.startswith(sep, pos):
            raise _SpecError("malformed BDF")
        pos += 1
    domain, bus, dev = fields if colons == 2 else [0, *fields]
    if domain > 0xFFFF or bus > 0xFF or dev > 0x1F:
        raise _SpecError("BDF out of range")
    if text.startswith("*", pos):
        spec.wildcard, func, pos = True, 0, pos + 1
    else:
        func, pos = _scanf_hex(text, pos)
        if func > 7:
            raise _SpecError("function out of range")
        spec.wildcard = False
    spec.bdf = Bdf(domain, bus, dev, func)
    return pos


def _parse_vslot(text: str, pos: int) -> tuple[int, int]:
    value, pos = _scanf_hex(text, pos)
    if value > 0x1F:
        raise _SpecError("vslot out of range")
    return value, pos


def _key_value(text: str, pos: int) -> tuple[str, str, int]:
    """libxlu `parse_key_val`: key up to '=', value up to ',' (which is skipped)."""
    eq = text.find("=", pos)
    if eq < 0:
        raise _SpecError(f"expected key=value at {text[pos:]!r}")
    comma = text.find(",", eq + 1)
    end = len(text) if comma < 0 else comma
    return text[pos:eq], text[eq + 1 : end], end + (comma >= 0)


def _scanf_hex(text: str, pos: int) -> tuple[int, int]:
    """glibc `sscanf("%x")` into an unsigned int: blanks, sign, 0x, digits; strtoul wrap/clamp."""
    while pos < len(text) and text[pos] in _C_SPACE:
        pos += 1
    negative = text.startswith("-", pos)
    if text.startswith(("-", "+"), pos):
        pos += 1
    if text.startswith(("0x", "0X"), pos) and pos + 2 < len(text) and text[pos + 2] in _HEX:
        pos += 2
    start = pos
    while pos < len(text) and text[pos] in _HEX:
        pos += 1
    if pos == start:
        raise _SpecError("expected a hex number")
    value = min(int(text[start:pos], 16), (1 << 64) - 1)
    if negative:
        value = (1 << 64) - value if value else 0
    return value & 0xFFFFFFFF, pos
