"""kmod's own reading of modprobe.d and the command line, one class at a time (issue 11).

Each case was found by tests/differential/test_kmod_oracle.py against the real kmod 30, and judged wrongly
before: the native-driver verdict of the lab's SAS1068 (00:05.0, mptsas) on an edited Debian 12 snapshot.
"""

from __future__ import annotations

import pytest

from tests.rules.test_rule_edges import LAB, edited, verdict
from xenpass.facts.host import HostFacts
from xenpass.facts.raw import CommandFact
from xenpass.parse.bdf import parse_bdf

MEGARAID = parse_bdf("00:06.0")
OWN = "/etc/modprobe.d/xen-passthrough.conf"  # the snapshot's `blacklist mptsas`


def host(files: dict[str, str | None], cmdline: str | None = None, version: int | None = 30,
         masks: tuple[str, ...] = ()) -> HostFacts:
    facts = edited("debian12-kmod-compliant", {OWN: None, **files}, cmdline)
    if version is None:
        facts.raw.commands.pop("modprobe --version", None)
    else:
        facts.raw.commands["modprobe --version"] = CommandFact("modprobe --version", f"kmod version {version}\n", 0)
    facts.raw.flags["chardev"] = list(masks)
    return facts


def native(facts: HostFacts, bdf=LAB) -> str:
    return verdict(facts, bdf, "native-driver-blacklisted").status.value


@pytest.mark.parametrize(("files", "masks", "status"), [
    ({"/lib/modprobe.d/a.conf": "blacklist mptsas\n"}, (), "pass"),
    ({"/lib/modprobe.d/a.conf": "blacklist mptsas\n"}, ("/etc/modprobe.d/a.conf",), "fail"),  # /dev/null mask
    ({"/usr/local/lib/modprobe.d/a.conf": "blacklist mptsas\n"}, (), "pass"),  # read by kmod
    ({"/usr/local/lib/modprobe.d/a.conf": "", "/lib/modprobe.d/a.conf": "blacklist mptsas\n"}, (), "fail"),
    ({"/etc/modprobe.d/xen.alias": "blacklist mptsas\n"}, (), "pass"),  # kmod < 33 reads *.alias
    ({"/etc/modprobe.d/.xen.conf": "blacklist mptsas\n"}, (), "fail"),
    ({"/usr/lib/modprobe.d/a.conf": "blacklist mptsas\n"}, (), "fail"),  # kmod 30 reads /lib, not /usr/lib
])
def test_which_files_kmod_30_reads(files, masks, status):
    assert native(host(files, masks=masks)) == status


def test_versions_decide_alias_files_and_usr_lib():
    assert native(host({"/etc/modprobe.d/xen.alias": "blacklist mptsas\n"}, version=33)) == "fail"
    assert native(host({"/usr/lib/modprobe.d/a.conf": "blacklist mptsas\n"}, version=32)) == "pass"


@pytest.mark.parametrize(("line", "status"), [
    ("alias pci:v00001000d00000054* off\n", "pass"),  # a config alias wins over modules.alias
    ("alias pci:v00001000d00000054* xen-pciback\n", "pass"),
    ("install mpt* /bin/false\n", "pass"),  # install names are globs
    ("blacklist mpt*\n", "fail"),  # blacklist names are not
    ("softdep mptsas pre:xen-pciback\n", "fail"),  # `pre:` must be its own word
    ("softdep mptsas pre: xen-pciback.ko\n", "fail"),  # no module is called that
    ("softdep mptsas  pre: xen-pciback\n", "fail"),  # kmod's parser keeps the one leading blank: " pre:"
    ("softdep mptsas   pre: xen-pciback\n", "pass"),
    ("softdep mpt* pre: xen-pciback\n", "pass"),
    ("install mptsas /sbin/modprobe --ignore-install mptsas; /sbin/modprobe xen-pciback\n", "fail"),  # order
    ("install mptsas /sbin/modprobe xen-pciback; /sbin/modprobe -i mptsas\n", "pass"),
    ("install mptsas /sbin/modprobe -i mptsas\n", "fail"),
    ("blacklist mptsas\\", "fail"),  # kmod 30 reads the EOF after that backslash as a byte of the name
])
def test_lines_as_kmod_30_reads_them(line, status):
    assert native(host({"/etc/modprobe.d/a.conf": line})) == status


def test_backslash_at_end_of_file_is_harmless_from_kmod_34():
    assert native(host({"/etc/modprobe.d/a.conf": "blacklist mptsas\\"}, version=34)) == "pass"


@pytest.mark.parametrize(("cmdline", "status"), [
    ("root=/dev/vda modprobe.blacklist=megaraid_sas", "pass"),
    ('root=/dev/vda modprobe.blacklist="megaraid_sas"', "fail"),  # kmod keeps the quotes
    ("root=/dev/vda modprobe.blacklist=megaraid-sas", "fail"),  # and the dash
])
def test_command_line_blacklist_as_kmod_splits_it(cmdline, status):
    assert native(host({}, cmdline=cmdline), MEGARAID) == status


def test_command_line_hide_comes_after_modprobe_d_options():
    facts = host({"/etc/modprobe.d/xen-pciback.conf": "options xen-pciback hide=(0000:00:05.0)\n"},
                 cmdline="root=/dev/vda xen-pciback.hide=(0000:00:06.0)")
    v = verdict(facts, LAB, "hide-entry")
    assert v.status.value == "fail"
    facts = host({"/etc/modprobe.d/xen-pciback.conf": "options xen-pciback hide=(0000:00:06.0)\n"},
                 cmdline="root=/dev/vda xen-pciback.hide=(0000:00:05.0)")
    assert verdict(facts, LAB, "hide-entry").status.value == "pass"


@pytest.mark.parametrize("line", ["softdep mptsas  pre: xen-pciback\n", "blacklist mptsas\\",
                                  "install mptsas /sbin/modprobe -i mptsas; /sbin/modprobe xen-pciback\n"])
def test_the_fix_plans_for_what_kmod_misreads_and_then_passes(line):
    from xenpass.fix.native_driver_blacklisted import CONF, plan
    from xenpass.rules.base import Context

    facts = host({"/etc/modprobe.d/a.conf": line})
    edits = plan(facts, LAB, Context()).steps
    assert [edit.path for edit in edits] == [CONF]
    assert native(host({"/etc/modprobe.d/a.conf": line, CONF: edits[0].after})) == "pass"
