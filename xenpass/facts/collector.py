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
    template = resources.files("xenpass.facts").joinpath("collect.sh").read_text()
    return (
        template.replace("__TOKEN__", token)
        .replace("__EXTRA_FILES__", shlex.quote("\n".join(extra_files)))
        .replace("__KNOWN_IMAGES__", shlex.quote("\n".join(known_images)))
    )


def collect(
    host: RunsScripts,
    name: str,
    extra_files: Iterable[str] = (),
    image_cache: dict[str, dict] | None = None,
    timeout: float | None = None,
) -> RawFacts:
    """Run the collector script on `host` once and parse what it printed.

    `image_cache` maps an initramfs stat line to its decoded content, so an unchanged image
    is not transferred again; it is updated with what this run decodes.
    """
    token = secrets.token_hex(8)
    cache = image_cache if image_cache is not None else {}
    script = render_script(token, extra_files, cache)
    result = host.run_script(script, timeout)
    stdout = from_bytes(result.stdout)  # every byte kept: file contents are data, not UTF-8
    if f"==XP:{token}:" not in stdout:
        raise HostUnreachable(first_error_line(result.rc, from_bytes(result.stderr) or stdout))
    facts = parse_output(stdout, token, name)
    reuse_known_images(facts, cache)
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
            "config_files": dict(content.config_files), "error": content.error}


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


def stat_line(fact: FileFact) -> str:
    """The collector's stat line for a /boot file: the key of the image cache."""
    return f"{fact.mtime} {fact.size} {fact.mode} {fact.uid} {fact.gid} {fact.path}"


def reuse_known_images(facts: RawFacts, cache: dict[str, dict]) -> None:
    """Fill in images the host skipped as known; remember the ones it sent."""
    for path in facts.flag_values("known_image"):
        fact = facts.boot.get(path)
        if fact and stat_line(fact) in cache:
            facts.initramfs[path] = cache[stat_line(fact)]
    for path, content in facts.initramfs.items():
        fact = facts.boot.get(path)
        if fact and not content.get("error"):
            cache[stat_line(fact)] = content
