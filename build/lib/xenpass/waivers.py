"""Waivers: a failure someone accepted, for a reason, with an owner, until a date.

    waivers:
      - host: "node0*"                      # glob on the host name; default "*"
        device: "01:00.0"                   # optional: any device
        rule: native-driver-blacklisted     # a rule id (see --list-rules)
        reason: "vendor driver needed until the migration"
        owner: ops@example.com
        expires: 2027-01-31                 # the last day it holds

An active waiver turns that failure into an xfail carrying the reason, counted apart in every report (device,
host and run verdict `waived`, which a gate accepts). An expired one leaves the failure a failure, saying since
when. A waiver that matches no failure is reported as unused. Only `fail` can be waived: what could not be
read (`error`) is never a verdict to accept.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from dataclasses import dataclass
from pathlib import Path

import yaml

from xenpass.parse.bdf import Bdf, parse_bdf
from xenpass.rules import RULES

FIELDS = {"host", "device", "rule", "reason", "owner", "expires"}


class WaiverProblem(Exception):
    """The waivers file cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class Waiver:
    index: int  # 1-based position in the file, for messages
    host: str
    device: Bdf | None
    rule: str
    reason: str
    owner: str
    expires: dt.date

    def matches(self, host: str, bdf: Bdf, rule: str) -> bool:
        return (rule == self.rule and fnmatch.fnmatchcase(host, self.host)
                and (self.device is None or self.device == bdf))

    def expired(self, today: dt.date) -> bool:
        return today > self.expires

    def describe(self) -> str:
        device = f" device {self.device}" if self.device else ""
        return f"waiver #{self.index} (host {self.host}{device}, rule {self.rule}, owner {self.owner})"

    def to_json(self, today: dt.date) -> dict:
        return {"index": self.index, "host": self.host, "device": str(self.device) if self.device else None,
                "rule": self.rule, "reason": self.reason, "owner": self.owner,
                "expires": self.expires.isoformat(), "expired": self.expired(today)}


def load_waivers(path: str | Path) -> list[Waiver]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise WaiverProblem(f"{path}: cannot read waivers: {' '.join(str(exc).split())[:300]}") from None
    entries = data.get("waivers") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise WaiverProblem(f"{path}: expected a top-level `waivers:` list")
    return [one_waiver(path, index, entry) for index, entry in enumerate(entries, start=1)]


def one_waiver(path: Path, index: int, entry: object) -> Waiver:
    where = f"{path}: waiver #{index}"
    if not isinstance(entry, dict):
        raise WaiverProblem(f"{where}: expected a mapping with rule, reason, owner, expires")
    unknown = set(map(str, entry)) - FIELDS
    if unknown:
        raise WaiverProblem(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    for name in ("rule", "reason", "owner", "expires"):
        if not str(entry.get(name) or "").strip():
            raise WaiverProblem(f"{where}: `{name}` is required (a waiver without a reason, an owner and an "
                                "expiry date is a silent exception)")
    rule = str(entry["rule"])
    if rule not in RULES:
        raise WaiverProblem(f"{where}: unknown rule {rule!r} (known: {', '.join(RULES)})")
    expires = entry["expires"]
    if not isinstance(expires, dt.date):
        try:
            expires = dt.date.fromisoformat(str(expires))
        except ValueError:
            raise WaiverProblem(f"{where}: expires {expires!r} is not a date (YYYY-MM-DD)") from None
    device = None
    if entry.get("device") is not None:
        try:
            device = parse_bdf(str(entry["device"]))
        except ValueError as exc:
            raise WaiverProblem(f"{where}: {exc}") from None
    return Waiver(index, str(entry.get("host") or "*"), device, rule, str(entry["reason"]).strip(),
                  str(entry["owner"]).strip(), expires)


def find(waivers: list[Waiver], host: str, bdf: Bdf, rule: str, today: dt.date) -> Waiver | None:
    """The waiver for this failure: the first active one, else the first expired one (to say since when)."""
    matching = [w for w in waivers if w.matches(host, bdf, rule)]
    active = [w for w in matching if not w.expired(today)]
    return (active or matching or [None])[0]
