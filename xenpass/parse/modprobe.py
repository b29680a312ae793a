"""modprobe.d configuration, read the way kmod reads it.

kmod libkmod/libkmod-config.c `kmod_config_parse` and shared/util.c `getline_wrapped` (verified):
- a backslash before a newline joins the lines; before any other character it is dropped;
- a logical line is skipped if empty or if its first character is `#`; otherwise it is split on
  space/tab (strtok), so a line whose first word merely starts with `#` is a "bad line" and ignored;
- there are no end-of-line comments: `options m a=1 # x` passes `#` and `x` on to the module
  (busybox modprobe, unlike kmod, does strip `#...` anywhere on a line);
- `alias`/`blacklist` take one or two words and ignore the rest; `options`/`install`/`remove`/
  `softdep` take the rest of the line and are dropped when it is empty;
- `include` is ignored by kmod but honoured by busybox; it is reported, the rules decide.
"""

from __future__ import annotations

from dataclasses import dataclass

from xenpass.parse.cmdline import parse_cmdline

__all__ = [
    "ModprobeDirective",
    "Softdep",
    "kmod_softdep",
    "kmod_underscores",
    "normalize_module",
    "parse_modprobe_conf",
    "parse_options",
    "parse_softdep",
]

_REST_OF_LINE = {"options", "install", "remove", "softdep"}
_ONE_WORD = {"blacklist", "include"}
_SEPARATORS = " \t"
_SPACE = " \t\n\v\f\r"


@dataclass(frozen=True)
class ModprobeDirective:
    source: str
    lineno: int  # first physical line of the logical line
    raw: str  # the physical line(s) as written
    keyword: str  # blacklist/install/remove/options/softdep/alias/include
    module: str  # as written (for alias: the alias pattern; for include: the path)
    args: str  # rest of the line, stripped (for alias: the target module)
    kmod_rest: str = ""  # options/install/remove/softdep: the rest exactly as kmod's strtok leaves it


@dataclass(frozen=True)
class Softdep:
    pre: tuple[str, ...]
    post: tuple[str, ...]


def normalize_module(name: str) -> str:
    """kmod and the kernel treat '-' and '_' in module names alike."""
    return name.replace("-", "_")


def parse_modprobe_conf(text: str, source: str, backslash_at_eof: str = "") -> list[ModprobeDirective]:
    """`backslash_at_eof`: what a backslash as the file's very last byte becomes. kmod up to 33
    (shared/util.c freadline_wrapped) stores the EOF it reads after it as one byte, 0xFF (here the
    surrogate "\\udcff", as xenpass.text keeps undecodable bytes); kmod 34 drops it (commit 7805c95)."""
    out: list[ModprobeDirective] = []
    for lineno, raw, line in _logical_lines(text, backslash_at_eof):
        directive = _directive(line, source, lineno, raw)
        if directive is not None:
            out.append(directive)
    return out


def parse_options(args: str) -> list[tuple[str, str | None]]:
    """Module parameters as the kernel splits them (`parse_args`/`next_arg`, double quotes honoured)."""
    return parse_cmdline(args)


def parse_softdep(args: str) -> Softdep:
    """kmod `kmod_config_add_softdep`: words after `pre:` or `post:`; words before either are ignored."""
    pre: list[str] = []
    post: list[str] = []
    mode: list[str] | None = None
    for word in _words(args, _SPACE):
        if word == "pre:":
            mode = pre
        elif word == "post:":
            mode = post
        elif mode is not None:
            mode.append(word)
    return Softdep(tuple(pre), tuple(post))


def kmod_softdep(args: str) -> Softdep:
    """kmod's own `kmod_config_add_softdep` (libkmod-config.c, unchanged from kmod 30 to 34), step by step.

    A word ends at an isspace() character; the first space of a run closes the word that began at `p`,
    further spaces move `p` on. When the text starts with exactly one blank (two blanks between the module
    and `pre:` on the line, since strtok ate one), that blank stays in the first word: " pre:" is not
    `pre:`, so the pre list is dropped. `pre:xen-pciback` is one word, neither `pre:` nor in a list.
    """
    pre: list[str] = []
    post: list[str] = []
    mode: list[str] | None = None
    text = args.split("\0", 1)[0]
    p, was_space = 0, False
    for s in range(len(text) + 1):
        at_end = s == len(text)
        if not at_end:
            if text[s] not in _SPACE:
                was_space = False
                continue
            if was_space:
                p = s + 1
                continue
            was_space = True
            if p >= s:
                continue
        word = text[p:s]
        if word == "pre:":
            mode = pre
        elif word == "post:":
            mode = post
        elif (not at_end or not was_space) and mode is not None:
            mode.append(word)
        p = s + 1
    return Softdep(tuple(pre), tuple(post))


def kmod_underscores(name: str) -> str | None:
    """kmod's `underscores()` (shared/util.c): '-' becomes '_' outside `[...]`; a `]` without its `[`, or a
    `[` never closed, makes the whole line a bad line (None)."""
    out: list[str] = []
    i = 0
    while i < len(name):
        c = name[i]
        if c == "]":
            return None
        if c == "[":
            close = name.find("]", i)
            if close < 0:
                return None
            out.append(name[i : close + 1])
            i = close + 1
            continue
        out.append("_" if c == "-" else c)
        i += 1
    return "".join(out)


def _logical_lines(text: str, backslash_at_eof: str = "") -> list[tuple[int, str, str]]:
    """(first line number, raw text, logical line) like kmod's getline_wrapped."""
    lines: list[tuple[int, str, str]] = []
    chars: list[str] = []
    start = 0
    lineno = first = 1
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\n":
            lines.append((first, text[start:i], "".join(chars)))
            chars, start, lineno = [], i + 1, lineno + 1
            first = lineno
        elif c == "\\":
            if i + 1 < len(text) and text[i + 1] == "\n":
                lineno += 1
                i += 1
            elif i + 1 < len(text):
                chars.append(text[i + 1])
                i += 1
            else:
                chars.append(backslash_at_eof)
        else:
            chars.append(c)
        i += 1
    if start < len(text):  # a last line without a newline still counts
        lines.append((first, text[start:], "".join(chars)))
    return lines


def _directive(line: str, source: str, lineno: int, raw: str) -> ModprobeDirective | None:
    line = line.split("\0", 1)[0]  # kmod works on C strings
    if not line or line[0] == "#":
        return None
    words = _words(line, _SEPARATORS)
    if not words:
        return None
    keyword = words[0]
    if keyword in _REST_OF_LINE:
        module, rest = _word_and_rest(line)
        if not module:
            return None
        return ModprobeDirective(source, lineno, raw, keyword, module, rest.strip(_SPACE), rest)
    if keyword == "alias" and len(words) >= 3:
        return ModprobeDirective(source, lineno, raw, keyword, words[1], words[2])
    if keyword in _ONE_WORD and len(words) >= 2:
        return ModprobeDirective(source, lineno, raw, keyword, words[1], "")
    return None  # unknown keyword or missing words: kmod logs "ignoring bad line"


def _word_and_rest(line: str) -> tuple[str, str]:
    """`strtok_r(line, " \\t")` twice then `strtok_r(NULL, "\\0")`: (second word, rest of the line).

    strtok eats exactly one separator after a word, so the rest is empty (kmod: "bad line") only
    when nothing at all follows that separator.
    """
    _, after_keyword = _token(line)
    module, rest = _token(after_keyword)
    if not module or not rest:
        return "", ""
    return module, rest


def _token(text: str) -> tuple[str, str]:
    """One strtok step: (token, text after the separator that ended it)."""
    start = len(text) - len(text.lstrip(_SEPARATORS))
    end = start
    while end < len(text) and text[end] not in _SEPARATORS:
        end += 1
    return text[start:end], text[end + 1 :]


def _words(text: str, separators: str) -> list[str]:
    words: list[str] = []
    current: list[str] = []
    for c in text:
        if c in separators:
            if current:
                words.append("".join(current))
            current = []
        else:
            current.append(c)
    if current:
        words.append("".join(current))
    return words
