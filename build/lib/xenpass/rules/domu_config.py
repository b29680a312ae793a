"""domu-config — seed step 4: the domU configuration has `pci = [ '01:00.0' ]`."""

from __future__ import annotations

from xenpass.facts.host import HostFacts
from xenpass.parse.bdf import Bdf
from xenpass.rules.base import Context, Evidence, Rule, Status, Verdict


def check(facts: HostFacts, bdf: Bdf, ctx: Context) -> Verdict:
    configs = facts.domu_configs
    if ctx.domus:
        return check_given(facts, bdf, ctx.domus)
    naming = [path for path, cfg in configs.items() if any(s.covers(bdf) for s in cfg.pci or ())]
    if naming:
        return RULE.verdict(Status.PASS, f"named by the pci list of {', '.join(naming)}",
                            *[Evidence(p, configs[p].pci_raw or "") for p in naming])
    return RULE.verdict(Status.SKIP, f"no domU config given (--domu or inventory), and none in /etc/xen names {bdf}")


def check_given(facts: HostFacts, bdf: Bdf, paths: tuple[str, ...]) -> Verdict:
    problems, evidence = [], []
    for path in paths:
        cfg = facts.domu_configs.get(path)
        if cfg is None:
            problems.append(f"{path} does not exist or is unreadable on this host")
            continue
        evidence.append(Evidence(path, cfg.pci_raw or "(no pci = line)"))
        bad = [s for s in cfg.pci or () if s.error]
        if any(s.covers(bdf) for s in cfg.pci or ()):
            continue
        if cfg.pci is None:
            problems.append(f"{path} has no pci = [...] line; add pci = [ '{bdf.short}' ]")
        else:
            problems.append(f"the pci list of {path} does not name {bdf}"
                            + (f" ({'; '.join(s.error or '' for s in bad)})" if bad else ""))
        problems += [f"{path}: {e}" for e in cfg.errors]
    if problems:
        return RULE.verdict(Status.FAIL, "; ".join(problems), *evidence)
    return RULE.verdict(Status.PASS, f"named by the pci list of {', '.join(paths)}", *evidence)


RULE = Rule(
    id="domu-config",
    title="domU config names the device",
    severity="critical",
    step="4: add pci = [ 'BDF' ] to the domU configuration",
    requires=(),
    check=check,
    reads=("domu",),
    passes=(
        "the given domU config's `pci = [...]` names the device (skipped when no config is given and none in "
        '`/etc/xen` names it).'
    ),
    why='the guest only receives the device if its configuration asks for it at creation.',
    references=("xl.cfg(5): pci = [ 'BDF' ]", 'xl-pci-configuration(5)'),
)
