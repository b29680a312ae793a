"""native-driver-blacklisted against the real kmod, on generated modprobe.d trees and command lines.

For each generated host (config files in every directory kmod may read, `/dev/null` masks, `.alias` and
ignored file names, softdep/install/alias/blacklist lines in their odd spellings, a kernel command line),
the product collects the fake root with the real collect.sh and judges every device; the oracle is this
machine's kmod running udev's coldplug (`modprobe -b MODALIAS`, see kmod_oracle.py). They must agree:
PASS exactly when coldplug loads no driver that claims the device, or loads xen-pciback first.

Cases per run: XENPASS_KMOD_CASES (default 120 per /usr layout, so 240, and a third of that for hide=);
XENPASS_KMOD_CASES=5000 for a long run. The kmod version covered is whatever `kmod --version` says here
(Debian 12: kmod 30).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.differential.kmod_oracle import (
    CONFIG_DIRS,
    DEVICES,
    ConfigFile,
    KmodCase,
    KmodRoot,
    available,
)
from xenpass.parse.modprobe import parse_options
from xenpass.rules.hide_sources import decide

CASES = int(os.environ.get("XENPASS_KMOD_CASES", "120"))
pytestmark = pytest.mark.skipif(available() is not None, reason=available() or "")

NAMES = ["mpt3sas", "mpt2sas", "megaraid_sas", "megaraid-sas", "mptsas", "mptspi", "mpt*", "mpt?sas",
         "megaraid*", "xen-pciback"]
CONCRETE = ["mpt3sas", "megaraid_sas", "mptsas", "mptspi"]
SOFTDEP_TAILS = ["pre: xen-pciback", "pre:xen-pciback", "pre: xen-pciback.ko", "post: xen-pciback",
                 "pre: xen_pciback", "pre:  xen-pciback mptsas", "pre: nosuchmodule", "pre: xen-pciback post: mptsas"]
SEPARATORS = [" ", "  ", "\t", "   ", " \t"]
INSTALLS = ["/sbin/modprobe xen-pciback; /sbin/modprobe --ignore-install {m}",
            "/sbin/modprobe --ignore-install {m}; /sbin/modprobe xen-pciback",
            "/sbin/modprobe -i {m}", "/sbin/modprobe xen-pciback && /sbin/modprobe -i {m}",
            "/sbin/modprobe xen-pciback; /sbin/modprobe -i $MODPROBE_MODULE $CMDLINE_OPTS",
            "/bin/true", "/bin/false", "modprobe xen-pciback; modprobe --ignore-install {m}"]
ALIAS_PATTERNS = ["pci:v00001000d00000097*", "pci:v00001000d0000005D*", "pci:v00001000d00000054*", "pci:v00001000*",
                  "pci:v00001000d00000097sv*sd*bc*sc*i*"]
ALIAS_TARGETS = ["off", "xen-pciback", "megaraid_sas", "mpt3sas", "mptsas"]
FILE_NAMES = ["a.conf", "b.conf", "xen.conf", "x.alias", "noext", "c.conf.bak", ".hidden.conf", "z.conf~"]
CMDLINE = ["modprobe.blacklist=mpt3sas", 'modprobe.blacklist="mpt3sas"', "modprobe.blacklist=megaraid-sas",
           "modprobe.blacklist=megaraid_sas,mptsas", "modprobe.blacklist=mpt2sas", '"modprobe.blacklist=mptspi"',
           "modprobe.blacklist=mptspi,mpt3sas", "xen-pciback.hide=(01:00.0)", "modprobe.blacklist="]

lines = st.one_of(
    st.builds("blacklist {}".format, st.sampled_from(NAMES)),
    st.builds("softdep {}{}{}".format, st.sampled_from(NAMES), st.sampled_from(SEPARATORS),
              st.sampled_from(SOFTDEP_TAILS)),
    # not `install xen-pciback …modprobe xen-pciback…`: kmod recurses into it until the machine gives up
    st.builds(lambda name, cmd, m: f"install {name} {cmd.format(m=m)}", st.sampled_from(NAMES[:-1]),
              st.sampled_from(INSTALLS), st.sampled_from(CONCRETE)),
    st.builds("alias {} {}".format, st.sampled_from(ALIAS_PATTERNS), st.sampled_from(ALIAS_TARGETS)),
    st.builds("blacklist \\\n{}".format, st.sampled_from(NAMES)),
    st.sampled_from(["# blacklist mpt3sas", "", "options xen-pciback hide=(01:00.0)", "blacklist"]),
)


@st.composite
def config_texts(draw: st.DrawFn) -> str:
    text = "\n".join(draw(st.lists(lines, max_size=4)))
    ending = draw(st.sampled_from(["\n", "", "\\"]))
    return text + ending


@st.composite
def config_files(draw: st.DrawFn) -> ConfigFile:
    path = f"{draw(st.sampled_from(CONFIG_DIRS))}/{draw(st.sampled_from(FILE_NAMES))}"
    kind = draw(st.sampled_from(["file", "file", "file", "devnull", "link"]))
    if kind == "devnull":
        return ConfigFile(path, None)
    text = draw(config_texts())
    return ConfigFile(path, text, f"/usr/share/xp/{path.replace('/', '_')}" if kind == "link" else None)


@st.composite
def cases(draw: st.DrawFn) -> KmodCase:
    files = {f.path: f for f in draw(st.lists(config_files(), max_size=5))}
    words = draw(st.lists(st.sampled_from(CMDLINE), max_size=2))
    return KmodCase(list(files.values()), " ".join(["BOOT_IMAGE=/vmlinuz ro", *words]))


@pytest.fixture(scope="module", params=["split-usr", "merged-usr"])
def kmod_root(request, tmp_path_factory) -> KmodRoot:
    return KmodRoot(tmp_path_factory.mktemp("kmod") / "root", merged_usr=request.param == "merged-usr")


def disagreements(root: KmodRoot, case: KmodCase) -> list[str]:
    root.apply(case)
    facts = root.product_facts()
    product = root.product_verdicts(facts)
    found = []
    for dev in DEVICES:
        outcome = root.oracle(dev.modalias)
        passes = product[dev.bdf].value == "pass"
        if passes != outcome.native_prevented:
            found.append(f"{dev.bdf}: product {product[dev.bdf].value}, kmod coldplug loads {list(outcome.loads)} "
                         f"(first to bind: {outcome.first})")
    return found


@settings(max_examples=CASES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(case=cases())
def test_native_driver_verdict_agrees_with_kmod(kmod_root: KmodRoot, case: KmodCase) -> None:
    found = disagreements(kmod_root, case)
    assert not found, "\n".join([*found, f"cmdline: {case.cmdline}", *map(repr, case.files)])


HIDE_OPTIONS = ["options xen-pciback hide=(01:00.0)", "options xen_pciback hide=(02:00.0) hide=(03:00.0)",
                'options xen-pciback  hide="(04:00.0)"', "options xen_pciback\thide=(05:00.0)",
                "options xen-pciback permissive=1", "options xen-pciback[ hide=(06:00.0)", "blacklist xen-pciback"]
HIDE_CMDLINE = ["xen-pciback.hide=(0a:00.0)", 'xen_pciback.hide="(0b:00.0)"', '"xen-pciback.hide=(0c:00.0)"',
                "xen-pciback.hide=(0d:00.0) xen_pciback.hide=(0e:00.0)", "xen-pciback.hide",
                "xen.pciback.hide=(0f:00.0)",
                'xen-pciback.hide="(10:00.0)(11:00.0)"']


@st.composite
def hide_cases(draw: st.DrawFn) -> KmodCase:
    files = {}
    for _ in range(draw(st.integers(0, 4))):
        path = f"{draw(st.sampled_from(CONFIG_DIRS))}/{draw(st.sampled_from(FILE_NAMES[:4]))}"
        if draw(st.integers(0, 5)) == 0:
            files.setdefault(path, ConfigFile(path, None))
        else:
            text = "\n".join(draw(st.lists(st.sampled_from(HIDE_OPTIONS), max_size=3)))
            text += draw(st.sampled_from(["\n", ""]))
            files.setdefault(path, ConfigFile(path, text))
    words = draw(st.lists(st.sampled_from(HIDE_CMDLINE), max_size=2))
    return KmodCase(list(files.values()), " ".join(["BOOT_IMAGE=/vmlinuz ro", *words]))


@settings(max_examples=max(CASES // 3, 10), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=hide_cases())
def test_hide_value_agrees_with_kmod(kmod_root: KmodRoot, case: KmodCase) -> None:
    """The hide= xen-pciback gets when loaded by name: kmod's options (modprobe.d, then the command line),
    of which the kernel keeps the last (its parse_args, which tests/parse/test_hide.py holds to the kernel)."""
    kmod_root.apply(case)
    facts = kmod_root.product_facts()
    decided = decide(facts).value
    options = kmod_root.oracle_options("xen-pciback")
    hides = [value for name, value in parse_options(options or "") if name == "hide" and value is not None]
    expected = hides[-1] if hides else None
    context = [f"kmod passes `{options}`; product took {decided}", f"cmdline: {case.cmdline}", *map(repr, case.files)]
    assert (decided.value.raw if decided else None) == expected, "\n".join(context)
