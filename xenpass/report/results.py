"""The run's results: what every host, device and rule came to, and the compliance JSON."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xenpass import __version__
from xenpass.facts.image_cache import ImageCache
from xenpass.fix.apply import ApplyReport
from xenpass.fix.base import Plan
from xenpass.parse.bdf import Bdf
from xenpass.report.fixes import device_fix, fix_json
from xenpass.rules import RULES
from xenpass.rules.base import Context, Status, Verdict
from xenpass.rules.boot_outcome import boot_states
from xenpass.targets import HostResult, Target
from xenpass.text import visible
from xenpass.waivers import Waiver
from xenpass.waivers import find as find_waiver


@dataclass
class RunResults:
    targets: list[Target] | None = None
    compact: bool = False  # HTML without per-test evidence (huge runs); the JSON always has it
    hosts: list[HostResult] | None = None
    collect_seconds: float | None = None  # wall time of collecting every host (concurrently)
    evaluated: dict[tuple[str, Bdf], dict[str, Verdict]] = field(default_factory=dict)
    reported: dict[str, dict[Bdf, dict[str, Verdict]]] = field(default_factory=dict)
    plans: dict[tuple[str, Bdf], Plan] = field(default_factory=dict)
    before: dict[tuple[str, Bdf], dict[str, Verdict]] = field(default_factory=dict)
    applied: dict[tuple[str, Bdf], ApplyReport] = field(default_factory=dict)
    remaining: dict[tuple[str, Bdf], Plan] = field(default_factory=dict)  # after --fix: planned from the new facts
    image_cache: ImageCache | None = None  # what each host's initramfs holds, by host and image sha256
    waivers: list[Waiver] = field(default_factory=list)
    today: dt.date = field(default_factory=lambda: dt.datetime.now(dt.UTC).date())
    # what a failing test's message adds after its reason: its fix plan, or after --fix what the fix did
    notes: dict[tuple[str, Bdf, str], str] = field(default_factory=dict)
    boot: dict[tuple[str, Bdf], dict] = field(default_factory=dict)  # next_boot's answers

    def waiver(self, host: str, bdf: Bdf, verdict: Verdict) -> Waiver | None:
        """The waiver (active, else expired) for a failing verdict; only `fail` can be waived."""
        if verdict.status != Status.FAIL:
            return None
        return find_waiver(self.waivers, host, bdf, verdict.rule, self.today)

    def status_label(self, host: str, bdf: Bdf, verdict: Verdict) -> str:
        """What a matrix cell says: the status, `waived` for an accepted failure, or that its waiver expired."""
        waiver = self.waiver(host, bdf, verdict)
        if waiver is None:
            return verdict.status.value
        return "fail (waiver expired)" if waiver.expired(self.today) else "waived"

    def unused_waivers(self) -> list[Waiver]:
        used = {self.waiver(host, bdf, v) for host, devices in self.reported.items() for bdf, verdicts in
                devices.items() for v in verdicts.values()}
        return [w for w in self.waivers if w not in used]

    def host(self, name: str) -> HostResult:
        return next(h for h in self.hosts or [] if h.name == name)

    def verdicts(self, host: HostResult, bdf: Bdf, compute: Callable[[], dict[str, Verdict]]) -> dict[str, Verdict]:
        key = (host.name, bdf)
        if key not in self.evaluated:
            self.evaluated[key] = compute()
        return self.evaluated[key]

    def plan(self, host: HostResult, bdf: Bdf) -> Plan:
        """The fix plan for a device (computed once; --fix computes it before applying)."""
        return planned(self.plans, host, bdf)

    def remaining_plan(self, host: HostResult, bdf: Bdf) -> Plan:
        """After --fix: what a plan made from the facts collected after applying would still do."""
        return planned(self.remaining, host, bdf)

    def next_boot(self, host: HostResult, bdf: Bdf) -> dict | None:
        """The device's now / after_reboot / pending_reboot (the boot-outcome model), worked out once."""
        if host.facts is None:
            return None
        key = (host.name, bdf)
        if key not in self.boot:
            self.boot[key] = boot_states(host.facts, bdf)
        return self.boot[key]

    def record(self, host: str, bdf: Bdf, verdict: Verdict) -> None:
        self.reported.setdefault(host, {}).setdefault(bdf, {})[verdict.rule] = verdict

    def rule_ids(self) -> list[str]:
        """Rules that ran in this session, in registry order."""
        seen = {r for devices in self.reported.values() for rules in devices.values() for r in rules}
        return [r for r in RULES if r in seen]

    def rows(self) -> list[tuple[HostResult, Bdf | None, dict[str, Verdict]]]:
        out = []
        for host in self.hosts or []:
            devices = self.reported.get(host.name, {})
            if host.error or not devices:
                out.append((host, None, {}))
            for bdf in sorted(devices):
                out.append((host, bdf, devices[bdf]))
        return out

    def device_verdict(self, host: str, bdf: Bdf, verdicts: dict[str, Verdict]) -> str:
        """The device's verdict as the JSON has it, without building the JSON (evidence, plans)."""
        rules = []
        for verdict in verdicts.values():
            waiver = self.waiver(host, bdf, verdict)
            rules.append({"status": verdict.status.value,
                          **({"waiver": {"expired": waiver.expired(self.today)}} if waiver else {})})
        return device_verdict(rules)

    def host_verdicts(self) -> dict[str, tuple[str, dict[Bdf, str]]]:
        """Per host (by name): its verdict and its devices' verdicts, as in the JSON."""
        out = {}
        for host in self.hosts or []:
            devices = {bdf: self.device_verdict(host.name, bdf, verdicts)
                       for bdf, verdicts in sorted(self.reported.get(host.name, {}).items())}
            verdict = host_verdict({"reachable": host.error is None, "devices": [{"verdict": v} for v in
                                                                                 devices.values()]})
            out[host.name] = (verdict, devices)
        return out

    def to_json(self) -> dict:
        """The compliance JSON (schema: xenpass/schema/compliance.schema.json); every string in it is `visible`:
        valid UTF-8, no lone surrogate, no control."""
        hosts = [host_json(h, self.reported.get(h.name, {}), self) for h in self.hosts or []]
        out: dict = {"schema_version": SCHEMA_VERSION, "tool": {"name": "xenpass", "version": __version__},
                     "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                     "verdict": run_verdict(hosts), "summary": summary(hosts), "hosts": hosts}
        if self.waivers:
            out["unused_waivers"] = [w.to_json(self.today) for w in self.unused_waivers()]
        if self.collect_seconds is not None:
            out["collect_seconds"] = round(self.collect_seconds, 3)
        return shown(out)

    def write_json(self, path: str) -> Path:
        """Write the compliance JSON atomically; if that fails, no JSON of an earlier run is left to pass for it."""
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
            tmp.replace(target)
        except BaseException:
            for stale in (tmp, target):
                with suppress(OSError):
                    stale.unlink(missing_ok=True)
            raise
        return target


SCHEMA_VERSION = 2
HOST_VERDICTS = ("compliant", "waived", "non-compliant", "unreachable", "error", "no-devices")
DEVICE_VERDICTS = ("compliant", "waived", "non-compliant", "error")


def device_verdict(rules: list[dict]) -> str:
    """non-compliant when a rule failed without an active waiver (or is blocked); error when a rule could not
    be judged; waived when every failure is waived; else compliant (pass, warn, skip)."""
    statuses = {r["status"] for r in rules}
    fails = [r for r in rules if r["status"] == "fail"]
    if any(not r.get("waiver") or r["waiver"]["expired"] for r in fails):
        return "non-compliant"
    if "error" in statuses or not rules:
        return "error"
    if "blocked" in statuses and not fails:
        return "non-compliant"
    return "waived" if fails else "compliant"


def host_verdict(host: dict) -> str:
    if not host["reachable"]:
        return "unreachable"
    if not host["devices"]:
        return "no-devices"  # nothing was proven: not clean
    verdicts = {d["verdict"] for d in host["devices"]}
    for worst in ("non-compliant", "error", "waived"):
        if worst in verdicts:
            return worst
    return "compliant"


def run_verdict(hosts: list[dict]) -> str:
    """compliant only when every host is (waived when some only by waivers); non-compliant when any host is;
    else could-not-check."""
    verdicts = {h["verdict"] for h in hosts}
    if not hosts:
        return "could-not-check"
    if "non-compliant" in verdicts:
        return "non-compliant"
    if verdicts <= {"compliant", "waived"}:
        return "waived" if "waived" in verdicts else "compliant"
    return "could-not-check"


def summary(hosts: list[dict]) -> dict:
    rules: dict[str, dict[str, int]] = {}
    for host in hosts:
        for device in host["devices"]:
            for rule in device["rules"]:
                counts = rules.setdefault(rule["id"], {})
                counts[rule["status"]] = counts.get(rule["status"], 0) + 1
    by_verdict = {v: sum(1 for h in hosts if h["verdict"] == v) for v in HOST_VERDICTS}
    devices = [d["verdict"] for h in hosts for d in h["devices"]]
    by_device = {v: devices.count(v) for v in DEVICE_VERDICTS}
    return {"hosts": {"total": len(hosts), **by_verdict}, "devices": {"total": len(devices), **by_device},
            "rules": rules}


def shown(value: Any) -> Any:
    """A JSON value with every str in it (keys too) made `visible`: host text (names, reasons, evidence, errors,
    diffs) holds controls and undecodable bytes (lone surrogates) that a JSON consumer must not get raw."""
    if isinstance(value, str):
        return visible(value)
    if isinstance(value, dict):
        return {shown(k): shown(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [shown(v) for v in value]
    return value


def planned(cache: dict[tuple[str, Bdf], Plan], host: HostResult, bdf: Bdf) -> Plan:
    """The plan for a device from the host's current facts, made once per cache."""
    key = (host.name, bdf)
    if key not in cache:
        from xenpass.fix import plan_device

        assert host.facts is not None
        cache[key] = plan_device(host.facts, bdf, Context(host.target.domus))
    return cache[key]


def host_json(host: HostResult, devices: dict[Bdf, dict[str, Verdict]], run: RunResults) -> dict:
    facts = host.facts
    out: dict = {
        "host": host.name,
        "reachable": host.error is None,
        "distro": facts.distro_name if facts else None,
        "kernel": facts.kernel if facts else None,
        "remote_commands": facts.raw.remote_commands if facts else 0,
        "bytes_received": facts.raw.bytes_received if facts else 0,
        "seconds": round(host.seconds, 3),
        "devices": [device_json(run, host.name, bdf, verdicts, run.next_boot(host, bdf))
                    for bdf, verdicts in sorted(devices.items())],
    }
    if host.error:
        out["error"] = host.error
    out["verdict"] = host_verdict(out)
    return out


def device_json(run: RunResults, host: str, bdf: Bdf, verdicts: dict[str, Verdict],
                states: dict | None = None) -> dict:
    key = (host, bdf)
    plan = run.plans.get(key)
    rules = []
    for verdict in verdicts.values():
        entry = verdict.to_json()
        waiver = run.waiver(host, bdf, verdict)
        if waiver is not None:
            entry["waiver"] = waiver.to_json(run.today)
        if key in run.before:
            entry["before"] = run.before[key][verdict.rule].status.value
        if plan is not None and not plan.for_rule(verdict.rule).empty:
            entry["fix"] = plan.for_rule(verdict.rule).to_json()
        rules.append(entry)
    out: dict = {"bdf": str(bdf), "verdict": device_verdict(rules), "rules": rules}
    if states is not None:  # now / after the next boot / pending reboot
        out |= states
    if plan is not None and not plan.empty:
        out["plan"] = plan.to_json()
    if key in run.applied:
        report = run.applied[key]
        # the whole report, whatever its to_json carries: steps run, the failed one, backups, rollback in order
        out["applied"] = {"applied": report.applied, "failed": report.failed, "backups": report.backups,
                          "rollback": report.rollback, **report.to_json()}
    fix = device_fix(run, host, bdf)
    if fix is not None:
        out["fix_result"] = fix_json(fix)
    return out
