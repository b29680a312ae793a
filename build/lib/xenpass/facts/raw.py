"""Raw facts: what one host said, as text, exactly. This is also the snapshot format."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xenpass.text import safe_file_stem

SCHEMA = 1


@dataclass
class FileFact:
    """A file on the host; `content` is None when it is missing or unreadable.

    `content` holds the host's exact bytes (xenpass.text.from_bytes: undecodable bytes as surrogates),
    `sha256` is the hash of those bytes, as `sha256sum` on the host would print it.
    """

    path: str
    content: str | None = None
    sha256: str | None = None
    mtime: int | None = None
    size: int | None = None
    mode: str | None = None
    uid: int | None = None
    gid: int | None = None
    unreadable: bool = False


@dataclass
class CommandFact:
    """A command's merged stdout+stderr; `output` is None when the tool is not installed."""

    name: str
    output: str | None
    rc: int | None = None


@dataclass
class PciSysfs:
    """One /sys/bus/pci/devices entry."""

    bdf: str
    vendor: str
    device: str
    pci_class: str
    modalias: str
    driver: str | None
    path: str


@dataclass
class RawFacts:
    host: str
    release: str | None = None
    init: str | None = None
    files: dict[str, FileFact] = field(default_factory=dict)
    boot: dict[str, FileFact] = field(default_factory=dict)
    commands: dict[str, CommandFact] = field(default_factory=dict)
    pci: dict[str, PciSysfs] = field(default_factory=dict)
    block: dict[str, str] = field(default_factory=dict)
    flags: dict[str, list[str]] = field(default_factory=dict)
    initramfs: dict[str, dict[str, Any]] = field(default_factory=dict)
    collected_at: str = ""
    remote_commands: int = 0
    bytes_received: int = 0  # what the collector's one command printed; a measurement, not a fact
    truncated: bool = False
    schema: int = SCHEMA

    def file(self, path: str) -> str | None:
        fact = self.files.get(path)
        return fact.content if fact else None

    def output(self, name: str) -> str | None:
        fact = self.commands.get(name)
        return fact.output if fact else None

    def flag_values(self, name: str) -> list[str]:
        return self.flags.get(name, [])

    # -- snapshot (de)serialisation -------------------------------------------------------
    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        del data["bytes_received"]  # a snapshot is the host's state, not the cost of reading it
        return json.dumps(data, indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RawFacts:
        if data.get("schema") != SCHEMA:
            raise ValueError(f"unsupported snapshot schema {data.get('schema')!r} (expected {SCHEMA})")
        data = dict(data)
        data["files"] = {k: FileFact(**v) for k, v in data.get("files", {}).items()}
        data["boot"] = {k: FileFact(**v) for k, v in data.get("boot", {}).items()}
        data["commands"] = {k: CommandFact(**v) for k, v in data.get("commands", {}).items()}
        data["pci"] = {k: PciSysfs(**v) for k, v in data.get("pci", {}).items()}
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def load_snapshot(path: str | Path) -> RawFacts:
    """Read a snapshot written by `save_snapshot`, with an error that names the file."""
    path = Path(path)
    try:
        return RawFacts.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise SnapshotError(f"{path}: not a usable xenpass snapshot ({exc})") from exc


def save_snapshot(facts: RawFacts, directory: str | Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{safe_name(facts.host)}.json"
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(facts.to_json() + "\n")
    tmp.replace(target)
    return target


def safe_name(host: str) -> str:
    """The snapshot file's stem: one per host name, never shared (`snapshot_targets` decodes it back)."""
    return safe_file_stem(host)


class SnapshotError(Exception):
    """A snapshot file that cannot be read."""
