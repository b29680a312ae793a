from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xenpass.parse.modules_alias import (
    ModuleAlias,
    parse_builtin_modinfo_aliases,
    parse_modules_alias,
    parse_modules_builtin,
    resolve_alias,
)
from xenpass.text import from_bytes

MODULES_ALIAS = """# Aliases extracted from modules themselves.
alias pci:v00001000d00000072sv*sd*bc*sc*i* mpt3sas
alias pci:v00001000d00000087sv*sd*bc*sc*i* mpt3sas
alias mpt2sas mpt3sas
alias pci:v00001000d00000054sv*sd*bc*sc*i* mptsas
alias char_major_10_229 fuse
alias pci:v*d*sv*sd*bc01sc07i* generic-sas
"""

SAS2008 = "pci:v00001000d00000072sv00001000sd00003020bc01sc07i00"  # node03's LSI SAS2008


def test_parse() -> None:
    aliases = parse_modules_alias(MODULES_ALIAS + "garbage line\nalias short\n")
    assert aliases[0] == ModuleAlias("pci:v00001000d00000072sv*sd*bc*sc*i*", "mpt3sas")
    assert len(aliases) == 6


def test_resolve_real_module_of_sas2008() -> None:
    aliases = parse_modules_alias(MODULES_ALIAS)
    assert resolve_alias(SAS2008, aliases) == ("mpt3sas", "generic-sas")
    # since Linux 4.4 mpt2sas is only an alias: `blacklist mpt2sas` misses mpt3sas
    assert resolve_alias("mpt2sas", aliases) == ("mpt3sas",)
    assert resolve_alias("mpt3sas", aliases) == ()
    assert resolve_alias("char-major-10-229", aliases) == ("fuse",)


def test_builtin() -> None:
    text = "kernel/drivers/xen/xen-pciback/xen-pciback.ko\nkernel/drivers/scsi/mpt3sas/mpt3sas.ko\n\n"
    assert parse_modules_builtin(text) == frozenset({"xen_pciback", "mpt3sas"})


@settings(max_examples=200)
@given(st.text(), st.text())
def test_never_raises(text: str, name: str) -> None:
    resolve_alias(name, parse_modules_alias(text))
    parse_modules_builtin(text)


MODINFO = (b"mpt3sas.license=GPL\0mpt3sas.alias=pci:v00001000d00000097sv*sd*bc*sc*i*\0"
           b"ahci.alias=pci:v*d*sv*sd*bc01sc06i01*\0ahci.parm=marvell_enable:int\0=x\0.alias=pci:v*\0alias=y\0")


def test_builtin_modinfo_aliases() -> None:
    aliases = parse_builtin_modinfo_aliases(from_bytes(MODINFO))
    assert aliases == [ModuleAlias("pci:v00001000d00000097sv*sd*bc*sc*i*", "mpt3sas"),
                       ModuleAlias("pci:v*d*sv*sd*bc01sc06i01*", "ahci")]
    # the collector's form: NULs turned into newlines by tr
    assert parse_builtin_modinfo_aliases(from_bytes(MODINFO.replace(b"\0", b"\n"))) == aliases
    assert resolve_alias("pci:v00001000d00000097sv00001000sd00003090bc01sc07i00", aliases) == ("mpt3sas",)


@settings(max_examples=300)
@given(st.binary())
def test_builtin_modinfo_never_raises(data: bytes) -> None:
    aliases = parse_builtin_modinfo_aliases(from_bytes(data))
    assert all(a.module and a.pattern for a in aliases)
    resolve_alias("pci:v00001000d00000097sv00001000sd00003090bc01sc07i00", aliases)
