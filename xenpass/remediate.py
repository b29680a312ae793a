"""--fix: plan each device, show the plan, apply it (live hosts only), then collect the host again."""

from __future__ import annotations

import sys
from collections.abc import Callable

from xenpass.engine import evaluate
from xenpass.facts.host import HostFacts
from xenpass.fix import plan_device
from xenpass.fix.apply import ApplyReport, apply_plan
from xenpass.report.results import RunResults
from xenpass.rules.base import Context
from xenpass.targets import HostResult, Target, read_target

SNAPSHOT_NOTE = "snapshot target: the plan is shown, nothing can be applied"


def remediate(run: RunResults, connect: Callable[[Target], object], only: set[str] | None,
              say: Callable[[str], None] = lambda s: sys.stderr.write(s + "\n"), timeout: float | None = None) -> None:
    for host in run.hosts or []:
        if host.facts is not None:
            remediate_host(run, host, connect, only, say, timeout)


def remediate_host(run: RunResults, host: HostResult, connect: Callable[[Target], object],
                   only: set[str] | None, say: Callable[[str], None], timeout: float | None = None) -> None:
    ctx = Context(host.target.domus)
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
        report = apply_plan(connect(host.target), plan, timeout)
        run.applied[(host.name, bdf)] = report
        say(f"xenpass --fix: {host.name} {bdf}:\n{report.render()}")
        # Judge what the host says now, not what the plan hoped for.
        host.facts = HostFacts(read_target(host.target, connect, timeout))
