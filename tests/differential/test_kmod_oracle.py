"""native-driver-blacklisted against the real kmod, on generated modprobe.d trees and command lines.

For each generated host (config files in every directory kmod may read, `/dev/null` masks, `.alias` and
ignored file names, softdep/install/alias/blacklist lines in their odd spellings, a kernel command line),
the product collects the fake root with the real collect.sh and judges every device; the oracle is this
machine's kmod running udev's coldplug (`modprobe -b MODALIAS`, see kmod_oracle.py). They must agree:
PASS exactly when coldplug loads no driver that claims the device, or loads xen-pciback first.

Cases per run: XENPASS_KMOD_CASES (default 150 per /usr layout, so 300; e.g. XENPASS_KMOD_CASES=5000 for
a long run). The kmod version covered is whatever `kmod --version` says here (Debian 12: kmod 30).
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

CASES = int(os.environ.get("XENPASS_KMOD_CASES", "150"))
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
    st.builds(lambda name, cmd, m: f"install {name} {cmd.format(m=m)}", st.sampled_from(NAMES),
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
