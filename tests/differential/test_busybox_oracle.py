"""busybox `modprobe` (Debian's busybox-static) against the product's verdict on generated Alpine configurations.

Each example is a fake Alpine root with generated /etc/modprobe.d files (created in a random order: busybox
reads the directory in readdir order), /etc/modprobe.conf and kernel command line. For each of three
devices, busybox `modprobe -b -D MODALIAS` says whether coldplug would load the native driver, and the
native-driver-blacklisted rule, judging what the real collector gathered from the same root, must PASS
exactly when it would not. XENPASS_ORACLE_EXAMPLES sets the number of examples (default 120, 3 devices each).
"""

from __future__ import annotations

import itertools
import os
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.busybox_oracle import Case, build_root, run_case, run_hide_case

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root"),
    pytest.mark.skipif(not shutil.which("busybox"), reason="needs Debian's busybox-static (scripts/setup)"),
]
EXAMPLES = int(os.environ.get("XENPASS_ORACLE_EXAMPLES", "120"))

FILE_NAMES = ["blacklist.conf", "xen.conf", "00-early.conf", "zz-late.conf", "b.conf", "noext", "x.conf.bak",
              "x.conf~", ".hidden.conf", "MPT.CONF", "a.conf", "conf"]
MODULES = ["mpt3sas", "mpt2sas", "mpt3sas.ko", "mpt3sas.ko.gz", "mpt-3sas", "megaraid_sas", "megaraid-sas",
           "megaraid_sas.ko", "MEGARAID_SAS", "e1000e", "e1000e.ko", "xen-pciback", "xen_pciback.ko", "off",
           "mpt3\\sas", "ipv6"]
PATTERNS = ["pci:v00001000d00000072sv*sd*bc*sc*i*", "pci:v00001000d00000072*", "pci:v00001000*", "pci:v*",
            "pci:v00001000d0000005Bsv*", "pci:v00001000d0000005bsv*", "pci:v00008086d000010D3*",
            "pci:v0000100?d00000072*", "pci:v00001000d0000007[0-9]*", "pci:v0000[!8]*", "mpt2sas", "pci:*.x",
            "pci-v*"]
SEPARATORS = [" ", "\t", "  ", " \t "]
TRAILERS = ["", "", "", " # why", "#x", " extra", " \\", "\\", "\r"]
LEADS = ["", "", " ", "\t"]


@st.composite
def lines(draw) -> str:
    sep = draw(st.sampled_from(SEPARATORS))
    keyword = draw(st.sampled_from(["blacklist", "blacklist", "alias", "alias", "options", "install", "softdep",
                                    "#blacklist", "# blacklist", "Blacklist", "blacklist#"]))
    if keyword == "alias":
        words = [draw(st.sampled_from(PATTERNS)), draw(st.sampled_from(MODULES))]
    elif keyword == "options":
        words = [draw(st.sampled_from(MODULES)), "hide=(01:00.0)"]
    elif keyword in ("install", "softdep"):
        words = [draw(st.sampled_from(MODULES)), "pre: xen-pciback" if keyword == "softdep" else "/bin/false"]
    else:
        words = [draw(st.sampled_from(MODULES))]
    if draw(st.booleans()) and len(words) > 1:
        words = words[:1]  # a line one word short
    text = draw(st.sampled_from(LEADS)) + sep.join([keyword, *words]) + draw(st.sampled_from(TRAILERS))
    return draw(st.sampled_from([text, text, text, "", "# " + text]))


@st.composite
def config_texts(draw) -> str:
    body = "\n".join(draw(st.lists(lines(), min_size=0, max_size=5)))
    return body + ("\n" if body and draw(st.booleans()) else "")


@st.composite
def cmdlines(draw) -> str:
    words = ["BOOT_IMAGE=vmlinuz-lts", "root=/dev/sda1", "modules=sd-mod,ext4"]
    for _ in range(draw(st.integers(0, 2))):
        names = ",".join(draw(st.lists(st.sampled_from(MODULES), min_size=1, max_size=3)))
        form = draw(st.sampled_from(["modprobe.blacklist={}", "modprobe.blacklist={}", 'modprobe.blacklist="{}"',
                                     '"modprobe.blacklist={}"', "modprobe-blacklist={}", "modprobe.blacklist={},",
                                     'modprobe.x="1 blacklist={} "', "blacklist={}"]))
        words.insert(draw(st.integers(0, len(words))), form.format(names))
    return " ".join(words) + "\n"


@st.composite
def cases(draw) -> Case:
    names = draw(st.lists(st.sampled_from(FILE_NAMES), unique=True, max_size=4))
    files = tuple((name, draw(config_texts())) for name in names)
    conf = draw(st.one_of(st.none(), config_texts()))
    by_name = draw(st.lists(st.sampled_from(["mpt3sas.ko", "megaraid-sas", "mpt2sas", "e1000e # x", "#e1000e"]),
                            max_size=1))
    return Case(files, conf, draw(cmdlines()), "".join(f"{m}\n" for m in ["xen_pciback", *by_name]))


@pytest.fixture(scope="module")
def oracle_root(tmp_path_factory):
    return build_root(tmp_path_factory.mktemp("busybox-oracle") / "root")


def test_known_classes_agree(oracle_root):
    """One case per class the issue lists, with the devices whose native driver busybox loads, so a regression
    names its class (01: mpt3sas, 02: megaraid_sas, 03: e1000e)."""
    known = {
        "cmdline blacklist with a dash": (Case((), None, "root=/dev/sda1 modprobe.blacklist=megaraid-sas,mpt3sas\n"),
                                          {"03"}),
        "only *.conf": (Case((("noext", "blacklist mpt3sas\n"), ("x.conf.bak", "blacklist megaraid_sas\n"),
                              (".hidden.conf", "blacklist e1000e\n")), None, "quiet\n"), {"01", "02", "03"}),
        "no subdirectories": (Case((("sub.conf/a.conf", "blacklist mpt3sas\n"),), None, "quiet\n"),
                              {"01", "02", "03"}),
        "config alias": (Case((("xen.conf", "alias pci:v00001000d00000072* xen-pciback\n"
                                            "alias pci:v00001000d0000005B* off\n"),), None, "quiet\n"), {"02", "03"}),
        "loaded by name through an alias": (Case((("b.conf", "blacklist mpt3sas\nblacklist megaraid_sas\n"),), None,
                                                "quiet\n", "xen_pciback\nmpt2sas\nmegaraid-sas.ko\n"), {"02", "03"}),
        ".ko stripped": (Case((("a.conf", "blacklist mpt3sas.ko\nblacklist megaraid-sas.ko.gz\n"),), None, "quiet\n"),
                         {"03"}),
        "# anywhere": (Case((("a.conf", "blacklist mpt3sas#x\nblacklist#megaraid_sas\n"),), None, "quiet\n"),
                       {"02", "03"}),
        "backslashes": (Case((("a.conf", "blacklist mpt3\\sas\nblacklist \\\nmegaraid_sas\nblacklist e1000e\\"),),
                             None, "quiet\n"), {"01"}),
    }
    for name, (case, loads) in known.items():
        answers = run_case(oracle_root, case)
        assert {a.bdf[5:7] for a in answers if a.oracle_loads_native} == loads, name
        assert all(a.agrees for a in answers), (name, answers)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=cases())
def test_busybox_agrees_on_generated_configurations(oracle_root, case):
    wrong = [a for a in run_case(oracle_root, case) if not a.agrees]
    assert not wrong, (case, wrong)


PCIBACK_NAMES = ["xen_pciback", "xen_pciback", "xen-pciback", "xen_pciback.ko", "xen-pciback.ko.gz"]
SLOTS = ["(01:00.0)", "(02:00.0)", "(0000:03:00.0)", "(01:00.*)", '"(04:00.0)"']


@st.composite
def hide_options(draw) -> str:
    name = draw(st.sampled_from(PCIBACK_NAMES))
    params = [f"hide={draw(st.sampled_from(SLOTS))}" for _ in range(draw(st.integers(1, 2)))]
    extra = draw(st.sampled_from(["", " permissive=1", " # (09:00.0)", "#x", " \\"]))
    return draw(st.sampled_from(LEADS)) + f"options {name} " + " ".join(params) + extra


@st.composite
def hide_cases(draw) -> Case:
    names = draw(st.lists(st.sampled_from(FILE_NAMES), unique=True, max_size=4))
    files = tuple((name, "\n".join(draw(st.lists(hide_options(), max_size=2))) + "\n") for name in names)
    conf = draw(st.one_of(st.none(), st.lists(hide_options(), max_size=2).map(lambda ls: "\n".join(ls) + "\n")))
    words = ["BOOT_IMAGE=vmlinuz-lts", "quiet"]
    for _ in range(draw(st.integers(0, 2))):
        param = draw(st.sampled_from(["xen_pciback.hide", "xen-pciback.hide", "xen_pciback.permissive"]))
        words.insert(draw(st.integers(0, len(words))), f"{param}={draw(st.sampled_from(SLOTS))}")
    lines = []
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(PCIBACK_NAMES))
        args = draw(st.sampled_from(["", "", f" hide={draw(st.sampled_from(SLOTS))}", " permissive=1"]))
        lines.append(name + args)
    return Case(files, conf, " ".join(words) + "\n", "af_packet\n" + "".join(ln + "\n" for ln in lines))


@settings(max_examples=max(EXAMPLES // 2, 1), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=hide_cases())
def test_busybox_agrees_on_the_hide_value(oracle_root, case):
    """Which hide= xen-pciback gets: options in directory order, then the command line, then /etc/modules."""
    oracle, product = run_hide_case(oracle_root, case)
    assert oracle == product, case


def test_directory_order_not_sorted_order_decides_the_hide_value(oracle_root):
    """Two files whose readdir order (on this filesystem) is not their sorted order: busybox takes the options of
    the one it reads last, and so must the product."""
    probe = oracle_root / "etc/order-probe"
    probe.mkdir()
    names = [f"{c}.conf" for c in "abcdefghijklmnop"]
    for name in names:
        (probe / name).write_text("")
    listed = [n for n in os.listdir(probe) if n in names]
    shutil.rmtree(probe)
    pair = next(((x, y) for x, y in itertools.pairwise(listed) if x > y), None)
    if pair is None:
        pytest.skip("this filesystem lists these names sorted")
    read_first, read_last = pair  # created in sorted order (read_last first), read the other way round
    files = ((read_last, "options xen_pciback hide=(02:00.0)\n"), (read_first, "options xen_pciback hide=(01:00.0)\n"))
    case = Case(files, None, "quiet\n")
    assert run_hide_case(oracle_root, case) == ("(02:00.0)", "(02:00.0)")  # sorted order would give (01:00.0)
