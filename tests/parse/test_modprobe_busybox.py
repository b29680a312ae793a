"""busybox modprobe's reading of modprobe.d and /proc/cmdline (checked against the real binary in
tests/differential/test_busybox_oracle.py; these pin each rule by itself)."""

from __future__ import annotations

from xenpass.parse.modprobe_busybox import (
    busybox_cmdline_blacklist,
    busybox_coldplug,
    busybox_dep_modules,
    busybox_modname,
    busybox_reads,
    parse_busybox_conf,
)

SAS2008 = "pci:v00001000d00000072sv00001000sd00003020bc01sc07i00"
ALIASES = [("pci:v00001000d00000072sv*sd*bc*sc*i*", "mpt3sas"), ("mpt2sas", "mpt3sas")]
DEP = frozenset({"mpt3sas", "xen_pciback"})


def words(text: str) -> list[tuple[str, str, str]]:
    return [(d.keyword, d.module, d.args) for d in parse_busybox_conf(text, "f")]


def test_hash_starts_a_comment_anywhere():
    assert words("blacklist mpt3sas#x\nblacklist#mpt3sas\noptions m a=1 # b=2\n") == [
        ("blacklist", "mpt3sas", ""), ("options", "m", "a=1")]


def test_trailing_backslash_joins_other_backslashes_stay():
    assert words("blacklist \\\nmpt3sas\nblacklist mpt3\\sas\nblacklist e1000e\\") == [
        ("blacklist", "mpt3sas", ""), ("blacklist", "mpt3\\sas", ""), ("blacklist", "e1000e", "")]


def test_third_token_is_the_rest_of_the_line():
    assert words("alias pci:v* xen-pciback extra  \n\talias  x\n") == [("alias", "pci:v*", "xen-pciback extra")]


def test_names_lose_ko_and_dashes():
    assert busybox_modname("megaraid-sas.ko.gz") == "megaraid_sas"
    assert busybox_modname("x" * 80) == "x" * 63


def test_only_conf_files_not_hidden():
    assert [busybox_reads(p) for p in ("/e/a.conf", "/e/noext", "/e/a.conf.bak", "/e/a.conf~", "/e/.h.conf",
                                       "/e/A.CONF")] == [True, False, False, False, False, False]


def test_cmdline_blacklist_dash_and_ko_normalised_quotes_kept():
    text = 'modprobe.blacklist=megaraid-sas,mpt3sas.ko modprobe.blacklist="e1000e" x "modprobe.blacklist=a"\n'
    assert busybox_cmdline_blacklist(text) == ["megaraid_sas", "mpt3sas", '"e1000e"']


def test_modules_dep_names():
    assert busybox_dep_modules("kernel/a/xen-pciback.ko.gz:\nkernel/b/mpt3sas.ko: kernel/c/raid.ko\nbad\n") == DEP


def test_config_alias_to_a_known_module_skips_modules_alias():
    conf = parse_busybox_conf("alias pci:v00001000d00000072* xen-pciback\n", "/etc/modprobe.d/x.conf")
    probe = busybox_coldplug(SAS2008, conf, ALIASES, DEP, "")
    assert not probe.reads_modules_alias and probe.loads == ["xen_pciback"]


def test_config_alias_to_an_unknown_name_still_reads_modules_alias():
    conf = parse_busybox_conf("alias pci:v00001000d00000072* off\n", "/etc/modprobe.d/x.conf")
    probe = busybox_coldplug(SAS2008, conf, ALIASES, DEP, "")
    assert probe.unresolved_targets == ["off"] and "mpt3sas" in probe.loads


def test_blacklist_by_alias_name_has_no_effect_by_real_name_does():
    by_alias = busybox_coldplug(SAS2008, parse_busybox_conf("blacklist mpt2sas\n", "f"), ALIASES, DEP, "")
    by_cmdline = busybox_coldplug(SAS2008, [], ALIASES, DEP, "modprobe.blacklist=mpt3sas.ko\n")
    assert by_alias.loads == ["mpt3sas"] and by_cmdline.loads == []
