"""--fix: plan each device, show the plan, apply it (live hosts only), then collect the host again.

One host's trouble never stops the run: a fault while applying ends that device's plan with its report (and,
when the connection was cut, the host's other plans are not started); a host that cannot be collected again
after fixing is judged `error` on every rule, its apply reports kept; anything unexpected is that host's error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from xenpass.engine import evaluate
from xenpass.facts.host import HostFacts
from xenpass.fix import plan_device
from xenpass.fix.apply import CONNECTION, ERROR, TIMEOUT, ApplyReport, apply_plan
from xenpass.fix.base import Plan
from xenpass.parse.bdf import Bdf
from xenpass.report.results import RunResults
from xenpass.rules import RULES
from xenpass.rules.base import Context, Status, Verdict
from xenpass.targets import HostResult, Target, read_target
from xenpass.text import exception_line

SNAPSHOT_NOTE = "snapshot target: the plan is shown, nothing can be applied"


def remediate(run: RunResults, connect: Callable[[Target], object], only: set[str] | None,
              say: Callable[[str], None] = lambda s: sys.stderr.write(s + "\n"), timeout: float | None = None,
              step_timeout: float | None = None) -> None:
    """`timeout` bounds collecting a host again; `step_timeout` each remote step (an initramfs rebuild takes
    minutes on a slow host)."""
    for host in run.hosts or []:
        if host.facts is None:
            continue
        try:
            remediate_host(run, host, connect, only, say, timeout, step_timeout)
        except Exception as exc:  # a bug or a host that breaks a planner: that host's verdicts, not the run
            reason = f"--fix stopped on this host: {exception_line(exc)}"
            say(f"xenpass --fix: {host.name}: {reason}")
            unjudged(run, host, host.devices, reason)


def remediate_host(run: RunResults, host: HostResult, connect: Callable[[Target], object],
                   only: set[str] | None, say: Callable[[str], None], timeout: float | None = None,
                   step_timeout: float | None = None) -> None:
    ctx = Context(host.target.domus)
    cut: str | None = None  # why the host's later plans are not started
    for bdf in host.devices:
        assert host.facts is not None
        run.before[(host.name, bdf)] = evaluate(host.facts, bdf, ctx)
        plan = plan_device(host.facts, bdf, ctx, only)
        run.plans[(host.name, bdf)] = plan
        if plan.empty:
            continue
        say(f"xenpass --fix: {host.name} {bdf}: plan\n{plan.render()}")
        if host.target.snapshot:
            run.applied[(host.name, bdf)] = ApplyReport(failed=SNAPSHOT_NOTE)
            say(f"xenpass --fix: {host.name}: {SNAPSHOT_NOTE}")
            continue
        if cut:
            run.applied[(host.name, bdf)] = report = ApplyReport(failed=f"not started: {cut}", fault=ERROR)
            say(f"xenpass --fix: {host.name} {bdf}:\n{report.render()}")
            continue
        try:
            report = apply_plan(connect(host.target), plan, step_timeout or timeout)
        except Exception as exc:  # apply_plan reports what the host does; this is a local failure
            report = ApplyReport(failed=f"could not apply the plan: {exception_line(exc)}", fault=ERROR)
        run.applied[(host.name, bdf)] = report
        say(f"xenpass --fix: {host.name} {bdf}:\n{report.render()}")
        if report.fault in (TIMEOUT, CONNECTION):
            cut = f"the plan for {bdf} on this host was cut short ({report.fault})"
        # Judge what the host says now, not what the plan hoped for.
        try:
            host.facts = HostFacts(read_target(host.target, connect, timeout, run.image_cache))
        except Exception as exc:
            reason = f"could not collect the host again after --fix: {exception_line(exc)}"
            say(f"xenpass --fix: {host.name}: {reason}")
            unjudged(run, host, host.devices, reason + " (what was applied is in the fix report)")
            return


def unjudged(run: RunResults, host: HostResult, devices: list[Bdf], reason: str) -> None:
    """Every rule of these devices is `error` with `reason`: the facts at hand no longer say what the host is."""
    for bdf in devices:
        run.evaluated[(host.name, bdf)] = {rule: Verdict(rule, Status.ERROR, reason) for rule in RULES}
        run.remaining[(host.name, bdf)] = Plan(host.name, bdf)  # the facts at hand are from before the fix
