"""`/proc/cmdline` and module parameter strings, split like the kernel's `parse_args`.

Emulates `next_arg` (lib/cmdline.c) and the `--` stop in `parse_args` (kernel/params.c), which the
kernel uses both for the boot command line and for the options modprobe passes to a module:
- a param ends at whitespace outside double quotes; a quote anywhere toggles quoting;
- the value is what follows the first `=` (an `=` at the very start does not count);
- one leading quote is removed from the param and the value, with the quote ending the word;
- a bare `--` ends the kernel's parameters (the rest goes to init).
"""

from __future__ import annotations

__all__ = ["kmod_cmdline", "next_arg", "parse_cmdline"]

_SPACE = " \t\n\v\f\r"


def parse_cmdline(text: str) -> list[tuple[str, str | None]]:
    """(param, value) pairs as the kernel sees them; value None when there is no `=`."""
    params: list[tuple[str, str | None]] = []
    rest = text.split("\0", 1)[0].lstrip(_SPACE)
    while rest:
        param, value, rest = next_arg(rest)
        if value is None and param == "--":
            break
        params.append((param, value))
    return params


def next_arg(args: str) -> tuple[str, str | None, str]:
    """One step of the kernel's `next_arg`: (param, value, remaining text with leading spaces eaten)."""
    buf = list(args)
    quoted = in_quote = bool(buf) and buf[0] == '"'
    start = 1 if quoted else 0
    i, equals = start, 0
    while i < len(buf):
        if buf[i] in _SPACE and not in_quote:
            break
        if equals == 0 and buf[i] == "=":
            equals = i - start  # index relative to the word, as in C
        if buf[i] == '"':
            in_quote = not in_quote
        i += 1
    end = i  # C: args[i], relative index i - start
    value_at: int | None = None
    if equals:
        buf[start + equals] = "\0"
        value_at = start + equals + 1
        if value_at < len(buf) and buf[value_at] == '"':
            value_at += 1
            if buf[end - 1] == '"':
                buf[end - 1] = "\0"
    if quoted and end - start > 0 and buf[end - 1] == '"':
        buf[end - 1] = "\0"
    param = _cstr(buf, start, end)
    value = _cstr(buf, value_at, end) if value_at is not None else None
    return param, value, "".join(buf[end + 1 :] if end < len(buf) else []).lstrip(_SPACE)


def _cstr(buf: list[str], start: int, end: int) -> str:
    """The C string at `start`: up to the first NUL or the end of the word."""
    word = "".join(buf[start:end])
    return word.split("\0", 1)[0]


def kmod_cmdline(text: str) -> list[tuple[str, str]]:
    """(module, "param=value") as kmod 30 takes them from /proc/cmdline (libkmod-config.c
    `kmod_config_parse_kcmdline`), which is not the kernel's parser:
    - only a word's first character may open a quote; a quote inside the module or param name makes kmod
      ignore the word; a quote inside the value stays in the value (`modprobe.blacklist="x"` blacklists
      `"x"`, which matches no module);
    - the module name is the text before the first `.`; a second `.` before `=` makes kmod ignore the word;
    - `"mod.param=a b"` (grub's quoting) is rewritten to `mod.param="a b"`.
    The caller applies `modprobe.blacklist=` (split on commas, taken as written: no '-' to '_') and passes
    the rest as module options, after every modprobe.d option.
    """
    buf = [*text[:4095].split("\0", 1)[0], "\0"]
    found: list[tuple[str, str]] = []
    state, quoted, quote_start = "modname", False, -1
    modname, param, value = 0, -1, -1
    for p in range(len(buf)):
        c = buf[p]
        if c == '"':
            quoted = not quoted
            if quoted and state == "modname" and p == modname:
                quote_start, modname = p, p + 1
            elif state != "value":
                state = "ignore"
        elif c in "\0" + _SPACE:
            if quoted and state == "value":
                pass
            elif quoted:
                state = "ignore"
            elif state in ("value", "param"):
                buf[p] = "\0"
                state = "complete"
            else:
                modname, state, quote_start = p + 1, "modname", -1
        elif c == ".":
            if state == "modname":
                buf[p] = "\0"
                param, state = p + 1, "param"
            elif state == "param":
                state = "ignore"
        elif c == "=":
            if state == "param":
                value, state = p + 1, "value"
            elif state == "modname":
                state = "ignore"
        if state == "complete":
            if 0 <= quote_start < modname and value > modname:
                moved = buf[modname:value]
                buf[quote_start : quote_start + len(moved)] = moved
                value, modname, param = value - 1, modname - 1, param - 1
                buf[value] = '"'
            found.append((_cstr(buf, modname, len(buf)), _cstr(buf, param, len(buf))))
            modname, state, quote_start = p + 1, "modname", -1
        if c == "\0":
            break
    return found
