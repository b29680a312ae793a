"""The collector: the one place that talks to hosts. One remote shell per host gathers every fact."""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import shlex
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import resources
from typing import Protocol

from xenpass.facts.image_cache import ImageCache
from xenpass.facts.raw import CommandFact, FileFact, PciSysfs, RawFacts
from xenpass.parse.initramfs import read_initramfs
from xenpass.text import as_bytes, from_bytes

# The single remote command a host costs (plus nothing else: the script reads files itself).
REMOTE_COMMANDS_PER_HOST = 1


class ScriptResult(Protocol):
    rc: int
    stdout: bytes
    stderr: bytes


class RunsScripts(Protocol):
    """What the collector needs of a host: run one POSIX shell script, within a deadline, as bytes."""

    def run_script(self, script: str, timeout: float | None = None) -> ScriptResult: ...


class HostUnreachable(Exception):
    """The host could not be asked at all (ssh failure, no shell)."""


def render_script(token: str, extra_files: Iterable[str] = (), known_images: Iterable[str] = ()) -> str:
    template = without_comment_lines(resources.files("xenpass.facts").joinpath("collect.sh").read_text())
    return (
        template.replace("__TOKEN__", token)
        .replace("__EXTRA_FILES__", shlex.quote("\n".join(extra_files)))
        .replace("__KNOWN_IMAGES__", shlex.quote("\n".join(known_images)))
    )


def without_comment_lines(script: str) -> str:
    """The script as the host needs it: its comment lines are for readers of collect.sh, not for the wire
    (they are a third of its bytes). collect.sh holds no here-document line that starts with `#`."""
    return "".join(line for line in script.splitlines(keepends=True) if not line.lstrip().startswith("#"))


def collect(
    host: RunsScripts,
    name: str,
    extra_files: Iterable[str] = (),
    timeout: float | None = None,
    cache: ImageCache | None = None,
    identity: str | None = None,
) -> RawFacts:
    """Run the collector script on `host` once and parse what it printed.

    With a `cache`, the host is told the hashes of the images it already showed under `identity` (its
    whole connection spec) and skips sending those; what this run reads is remembered.
    """
    token = secrets.token_hex(8)
    key = identity or name
    script = render_script(token, extra_files, cache.known(key) if cache else ())
    result = host.run_script(script, timeout)
    stdout = from_bytes(result.stdout)  # every byte kept: file contents are data, not UTF-8
    if f"==XP:{token}:" not in stdout:
        raise HostUnreachable(first_error_line(result.rc, from_bytes(result.stderr) or stdout))
    facts = parse_output(stdout, token, name)
    facts.bytes_received = len(result.stdout)
    if cache:
        use_image_cache(facts, cache, key)
    return facts


def first_error_line(rc: int, output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    detail = lines[-1] if lines else "no output"
    return f"host did not answer (exit {rc}): {detail}"


def parse_output(out: str, token: str, host: str) -> RawFacts:
    """Split the collector's framed output into raw facts. Truncated output is flagged, never fatal."""
    facts = RawFacts(host=host, collected_at=datetime.now(UTC).isoformat(timespec="seconds"))
    facts.remote_commands = REMOTE_COMMANDS_PER_HOST
    mark = f"==XP:{token}:"
    pos = out.find(mark)
    while pos >= 0:
        eol = out.find("\n", pos)
        line = out[pos + len(mark) : eol if eol >= 0 else len(out)]
        kind, _, rest = line.partition(" ")
        if kind == "BEGIN":
            end = out.find(f"\n{mark}END ", eol + 1)
            if eol < 0 or end < 0:
                facts.truncated = True
                return facts
            rc_end = out.find("\n", end + 1)
            rc_text = out[end + 1 + len(mark) + 4 : rc_end if rc_end >= 0 else len(out)]
            if rest == "files":
                add_files(facts, out[eol + 1 : end].split(f"\n{mark}NEXT"), parse_int(rc_text))
            else:
                add_section(facts, rest, out[eol + 1 : end], parse_int(rc_text))
            pos = out.find(mark, end + 1 + len(mark))
            continue
        if kind == "FACT":
            add_flag(facts, rest)
        pos = out.find(mark, eol) if eol >= 0 else -1
    return facts


def add_section(facts: RawFacts, header: str, payload: str, rc: int | None) -> None:
    kind, _, name = header.partition(" ")
    if kind == "file":
        fact = facts.files.setdefault(name, FileFact(path=name))
        fact.content = payload
        fact.sha256 = hashlib.sha256(as_bytes(payload)).hexdigest()
    elif kind in ("exact-base64", "exact-hex"):
        replace_with_exact(facts, name, kind, payload)
    elif kind == "cmd" and name == "stat":
        apply_stat(facts, payload)
    elif kind == "cmd":
        facts.commands[name] = CommandFact(name=name, output=payload, rc=rc)
    elif kind in ("base64", "hex"):
        facts.initramfs[name] = decode_image(kind, payload)
    elif kind == "image-host":
        facts.initramfs[name] = read_on_host(payload, rc)
    elif kind == "image-file":
        add_image_file(facts, name, payload, rc)


def add_files(facts: RawFacts, chunks: list[str], rc: int | None) -> None:
    """Files read by one cat(1): their names, then each file's exact bytes, then nothing. When cat failed
    (a read error), no file of the batch can be trusted to be whole: all of them are unknown."""
    names = chunks[0].split("\n") if chunks[0] else []
    contents = chunks[1:]
    whole = rc == 0 and len(contents) == len(names) + 1 and contents[-1] == ""
    for index, name in enumerate(names):
        fact = facts.files.setdefault(name, FileFact(path=name))
        if whole:
            fact.content = contents[index]
            fact.sha256 = hashlib.sha256(as_bytes(fact.content)).hexdigest()
        else:
            fact.content, fact.sha256, fact.unreadable = None, None, True


def replace_with_exact(facts: RawFacts, path: str, kind: str, payload: str) -> None:
    """The shell could not carry this file's bytes (a NUL): the host sent them encoded instead."""
    fact = facts.files.setdefault(path, FileFact(path=path))
    try:
        data = base64.b64decode(payload) if kind == "exact-base64" else bytes.fromhex("".join(payload.split()))
    except (binascii.Error, ValueError):
        fact.content, fact.sha256, fact.unreadable = None, None, True
        return
    fact.content = from_bytes(data)
    fact.sha256 = hashlib.sha256(data).hexdigest()


def decode_image(kind: str, payload: str) -> dict:
    try:
        data = base64.b64decode(payload) if kind == "base64" else bytes.fromhex(payload)
    except (binascii.Error, ValueError) as exc:
        return {"segments": [], "member_count": 0, "config_files": {}, "error": f"undecodable transfer: {exc}"}
    content = read_initramfs(data)
    # Only what the rules judge goes into facts and snapshots: not the image, not member bytes.
    return {"segments": list(content.segments), "member_count": content.member_count,
            "config_files": dict(content.config_files), "error": content.error,
            "modules": list(content.modules)}


def read_on_host(payload: str, rc: int | None) -> dict:
    """The summary the host's own tool gave of its image (collect.sh, host_read_image)."""
    content: dict = {"segments": [], "member_count": 0, "config_files": {}, "modules": [],
                     "error": None if rc == 0 else f"the host's summary ended with exit status {rc}"}
    modules: set[str] = set()
    for line in payload.splitlines():
        word, _, value = line.partition(" ")
        if word == "tool":
            content["reader"] = f"{value} on the host"
        elif word == "segment":
            segment, _, count = value.rpartition(" ")
            content["segments"].append("one archive" if segment == "root" else segment)
            content["member_count"] += max(0, (parse_int(count) or 1) - 1)  # find lists the root itself
        elif word == "module":
            modules.add(value)
    content["modules"] = sorted(modules)
    return content


def add_image_file(facts: RawFacts, header: str, payload: str, rc: int | None) -> None:
    """One file of an image unpacked on the host; a later segment's file replaces an earlier one's."""
    image, segment, path = [*header.split("|", 2), "", ""][:3]
    content = facts.initramfs.get(image)
    if content is None or not path:
        return
    if rc != 0:  # e.g. a member name holding a newline, which the host's line-by-line listing split apart
        content["error"] = f"the host could not read {path} ({segment}) from its unpacked image"
        return
    try:
        data = base64.b64decode(payload)
    except (binascii.Error, ValueError):
        content["error"] = f"undecodable transfer of {path} ({segment})"
        return
    content["config_files"] = dict(sorted({**content["config_files"],
                                           path: data.decode("utf-8", errors="replace")}.items()))


def add_flag(facts: RawFacts, rest: str) -> None:
    name, _, value = rest.partition(" ")
    if name == "release":
        facts.release = value
    elif name == "init":
        facts.init = value
    elif name == "pci":
        add_pci(facts, value)
    elif name == "block":
        dev, _, path = value.partition("|")
        facts.block[dev] = path
    elif name == "unreadable" and value.endswith("/"):  # a directory the collecting user cannot list
        facts.flags.setdefault("unreadable_dirs", []).append(value)
    elif name == "unreadable":  # stat may have filled in the file's metadata already: keep it
        fact = facts.files.setdefault(value, FileFact(path=value))
        fact.content, fact.unreadable = None, True
    else:
        facts.flags.setdefault(name, []).append(value)


def add_pci(facts: RawFacts, value: str) -> None:
    parts = value.split("|", 6)
    if len(parts) != 7:
        return
    bdf, vendor, device, pci_class, modalias, driver, path = parts
    facts.pci[bdf] = PciSysfs(bdf, vendor, device, pci_class, modalias, driver or None, path)


def apply_stat(facts: RawFacts, payload: str) -> None:
    """`stat -c '%Y %s %a %u %g %n'` lines: metadata for files, and the /boot listing."""
    for line in payload.splitlines():
        fields = line.split(" ", 5)
        if len(fields) != 6 or not all(f.isdigit() for f in fields[:2]):
            continue
        mtime, size, mode, uid, gid, path = fields
        target = facts.boot if path.startswith("/boot/") else facts.files
        fact = target.setdefault(path, FileFact(path=path))
        fact.mtime, fact.size, fact.mode = int(mtime), int(size), mode
        fact.uid, fact.gid = parse_int(uid), parse_int(gid)


def parse_int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def use_image_cache(facts: RawFacts, cache: ImageCache, identity: str) -> None:
    """Fill in images the host skipped as known; remember the ones it described or sent."""
    hashes = dict(pair.split("|", 1) for pair in facts.flag_values("image_sha256") if "|" in pair)
    for path in facts.flag_values("known_image"):
        cached = cache.get(identity, hashes.get(path, ""))
        if cached is not None:
            reader = cached.get("reader") or "xenpass"
            facts.initramfs[path] = {**cached, "reader": f"{reader}, remembered by sha256 {hashes[path][:12]}…"}
    known = set(facts.flag_values("known_image"))
    for path, content in facts.initramfs.items():
        if path in hashes and path not in known:
            cache.put(identity, hashes[path], content)
