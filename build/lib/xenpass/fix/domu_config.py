"""Fix domu-config: add the device to the given domU config's pci list; the rest stays byte-identical."""

from __future__ import annotations

from xenpass.facts.host import HostFacts
from xenpass.fix.base import FileEdit, Part, Refusal, append_line
from xenpass.parse.bdf import Bdf
from xenpass.parse.xlcfg import format_pci_line
from xenpass.rules.base import Context

RULE = "domu-config"


def plan(facts: HostFacts, bdf: Bdf, ctx: Context) -> Part:
    part = Part()
    for path in ctx.domus:
        text = facts.raw.file(path)
        cfg = facts.domu_configs.get(path)
        if text is None or cfg is None:
            part.refusals.append(Refusal(RULE, f"{path} does not exist on the host; a domU config is not "
                                               "something to invent", f"create {path} with pci = [ '{bdf.short}' ]"))
            continue
        if any(s.covers(bdf) for s in cfg.pci or ()):
            continue
        specs = [s.raw for s in cfg.pci or ()] + [bdf.short]
        if cfg.pci_raw and cfg.pci_raw in text:
            after = text.replace(cfg.pci_raw, format_pci_line(specs), 1)
        else:
            after = append_line(text, format_pci_line(specs))
        part.steps.append(FileEdit(RULE, path, text, after, f"the domU gets {bdf} when it starts"))
    return part
