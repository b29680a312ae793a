"""The boot-outcome model against the scenarios whose real boot is known: the seed's node03 fixtures, and the
lab's Debian 12 dom0 (tests/lab/test_lab.py) rebuilt here as edits of its real snapshot."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import fixture_names, load_fixture
from xenpass.engine import evaluate
from xenpass.facts.host import HostFacts
from xenpass.facts.raw import FileFact
from xenpass.parse.bdf import parse_bdf
from xenpass.rules.base import Context, Status
from xenpass.rules.boot_outcome import BootOutcome, now_driver, pending, predict
from xenpass.rules.native_driver_blacklisted import check as blacklisted_check

NODE03 = parse_bdf("01:00.0")
LAB = parse_bdf("00:05.0")
MEGASAS = parse_bdf("00:06.0")
BEHIND_ROOT_PORT = parse_bdf("01:00.0")
IMAGE = "/boot/initrd.img-6.1.0-50-amd64"
LAB_IMAGE_MODULES = ("mptsas.ko", "megaraid_sas.ko", "virtio_blk.ko")  # the lab's hook puts the SAS drivers in

OPTIONS = {"/etc/modprobe.d/xen-pciback.conf": "options xen-pciback hide=(0000:00:05.0)\n"}
BLACKLIST = {"/etc/modprobe.d/xen-passthrough.conf": "blacklist mptsas\n"}
LOAD = {"/etc/modules": "xen-pciback\n"}


def in_image(files: dict[str, str]) -> dict[str, str]:
    """Root modprobe.d files as update-initramfs copies them into the image."""
    return {path.lstrip("/"): text for path, text in files.items()}


def lab(root: dict[str, str], image: dict[str, str] | None = None,
        modules: tuple[str, ...] = LAB_IMAGE_MODULES) -> HostFacts:
    """The real lab dom0's snapshot with these root files, and (after update-initramfs) these image files."""
    raw = load_fixture("lab-debian12-pristine").raw
    for path, text in root.items():
        raw.files[path] = FileFact(path=path, content=text, mtime=1_795_600_000)
    data = raw.initramfs[IMAGE]
    data["config_files"] = {**data["config_files"], **(image or {})}
    data["modules"] = list(modules)
    return HostFacts(raw)


def outcome(facts: HostFacts, bdf=LAB) -> BootOutcome:
    found = predict(facts, bdf)
    assert found.chain, "every prediction says why"
    return found


# -- the seed's node03 (Alpine, busybox modprobe, mkinitfs) ----------------------------------------------------
def test_broken_node03_is_on_mpt3sas_now_and_after_reboot():
    facts = load_fixture("node03-broken-mpt2sas-alias")
    after = outcome(facts, NODE03)
    assert (now_driver(facts, NODE03), after.label) == ("mpt3sas", "mpt3sas")
    assert "nlplug-findfs" in after.why and not pending("mpt3sas", after)


def test_fixed_node03_is_on_pciback_now_and_after_reboot():
    facts = load_fixture("node03-fixed")
    after = outcome(facts, NODE03)
    assert (now_driver(facts, NODE03), after.label) == ("pciback", "pciback")
    assert "hide=(01:00.0) and seizes" in after.why and "/etc/modules:3" in after.why


def test_stale_image_lets_mpt3sas_win_before_the_root_blacklist_is_read():
    for name in ("node03-stale-initramfs", "node03-initramfs-lacks-blacklist"):
        after = outcome(load_fixture(name), NODE03)
        assert after.label == "mpt3sas", name
        assert "already bound to mpt3sas" in after.why


def test_hide_typo_leaves_the_blacklisted_device_without_driver():
    after = outcome(load_fixture("node03-hide-typo"), NODE03)
    assert after.label == "no driver" and "refuses to load" in after.why and "82.0.0" in after.why


def test_plain_pciback_line_first_loads_it_without_hide():
    after = outcome(load_fixture("node03-plain-line-first"), NODE03)
    assert after.label == "no driver" and "with no hide=" in after.why


def test_unreadable_config_makes_the_prediction_unknown():
    after = outcome(load_fixture("node03-nonroot-blacklist-unreadable"), NODE03)
    assert not after.known and "xen-passthrough.conf" in after.why
    assert not pending("pciback", after)


# -- the lab's Debian 12 dom0 (kmod, initramfs-tools, systemd) ---------------------------------------------------
def test_pristine_lab_stays_on_mptsas():
    after = outcome(load_fixture("lab-debian12-pristine"))
    assert after.label == "mptsas"
    assert "not collected; the outcome is the same either way" in after.why  # its snapshot predates the inventory


def test_lab_correct_route():
    facts = lab(OPTIONS | LOAD | BLACKLIST, in_image(OPTIONS | BLACKLIST))
    after = outcome(facts)
    assert after.label == "pciback" and "systemd-modules-load" in after.why
    assert pending("mptsas", after)
    assert outcome(facts, MEGASAS).label == "megaraid_sas"  # the other controller is untouched


def test_lab_blacklist_without_rebuild_mptsas_wins_in_the_old_image():
    after = outcome(lab(OPTIONS | LOAD | BLACKLIST))
    assert after.label == "mptsas" and "udev in the initramfs" in after.why


def test_lab_rebuilt_before_the_blacklist():
    after = outcome(lab(OPTIONS | LOAD | BLACKLIST, in_image(OPTIONS)))
    assert after.label == "mptsas"


def test_lab_hide_typo():
    typo = {"/etc/modprobe.d/xen-pciback.conf": "options xen-pciback hide=(0000:00.05.0)\n"}
    after = outcome(lab(typo | LOAD | BLACKLIST, in_image(typo | BLACKLIST)))
    assert after.label == "no driver" and "refuses to load" in after.why


def test_without_the_module_inventory_a_deciding_image_is_unknown():
    facts = lab(OPTIONS | LOAD | BLACKLIST)
    del facts.raw.initramfs[IMAGE]["modules"]
    after = outcome(facts)
    assert not after.known and "was not collected" in after.why


def test_native_module_absent_from_the_image_cannot_claim_there():
    after = outcome(lab(OPTIONS | LOAD | BLACKLIST, modules=("virtio_blk.ko",)))
    assert after.label == "pciback" and "not in the image" in after.why


def test_root_race_between_udev_and_modules_load_is_unknown():
    """Native driver not blacklisted anywhere and not in the image: udev and systemd-modules-load race."""
    after = outcome(lab(OPTIONS | LOAD, modules=()))
    assert not after.known and "race" in after.why


def test_modules_line_with_arguments_under_systemd_loads_nothing():
    after = outcome(load_fixture("debian12-modules-args-ignored"))
    assert after.label == "no driver" and "takes module names only" in after.why


def test_root_on_shared_driver_after_the_fix_softdep_route():
    """The lab's root-on-MegaRAID scenario after --fix: softdep megaraid_sas pre: xen-pciback, xen-pciback first
    in the initramfs list, hide=(0000:01:00.0); the real reboot gave 01:00.0 to pciback, 00:06.0 megaraid_sas."""
    conf = {"/etc/modprobe.d/xen-pciback.conf": "options xen-pciback hide=(0000:01:00.0)\n",
            "/etc/modprobe.d/xen-passthrough.conf": "softdep megaraid_sas pre: xen-pciback\n"}
    listed = "xen-pciback\nvirtio_pci\nvirtio_blk\nmegaraid_sas\nsd_mod\n"
    facts = lab(conf | LOAD | {"/etc/initramfs-tools/modules": listed},
                in_image(conf) | {"conf/modules": listed}, modules=("xen-pciback.ko", "megaraid_sas.ko"))
    assert outcome(facts, BEHIND_ROOT_PORT).label == "pciback"
    assert outcome(facts, MEGASAS).label == "megaraid_sas"


def test_forced_into_the_initramfs_while_blacklisted_ends_on_pciback():
    """The issue's remark: mptsas listed in /etc/initramfs-tools/modules (forced into the image and loaded by
    name) while blacklisted, xen-pciback listed before it. udev's coldplug in init-top skips the blacklisted
    mptsas, conf/modules loads xen-pciback first, which seizes the device, so mptsas finds it taken."""
    listed = "xen-pciback\nmptsas\n"
    facts = lab(OPTIONS | LOAD | BLACKLIST | {"/etc/initramfs-tools/modules": listed},
                in_image(OPTIONS | BLACKLIST) | {"conf/modules": listed}, modules=("xen-pciback.ko", "mptsas.ko"))
    assert outcome(facts).label == "pciback"
    assert blacklisted_check(facts, LAB, Context()).status == Status.PASS  # the rule agrees with the boot


def test_forced_into_the_initramfs_before_pciback_keeps_the_native_driver():
    """DOMAIN.md: a device hidden but whose native driver is force-loaded from the initramfs stays with it."""
    listed = "mptsas\nxen-pciback\n"
    facts = lab(OPTIONS | LOAD | BLACKLIST | {"/etc/initramfs-tools/modules": listed},
                in_image(OPTIONS | BLACKLIST) | {"conf/modules": listed}, modules=("xen-pciback.ko", "mptsas.ko"))
    assert outcome(facts).label == "mptsas"
    assert blacklisted_check(facts, LAB, Context()).status == Status.FAIL


def test_builtin_pciback_with_hide_on_the_command_line_wins_at_kernel_init():
    facts = lab(BLACKLIST)
    facts.raw.flags["pciback_module"] = ["builtin"]
    cmdline = "root=/dev/vda xen-pciback.hide=(00:05.0)\n"
    facts.raw.files["/proc/cmdline"] = FileFact(path="/proc/cmdline", content=cmdline)
    after = outcome(HostFacts(facts.raw))
    assert after.label == "pciback" and "fs_initcall" in after.why


# -- never a guess, never a crash -------------------------------------------------------------------------------
LINES = st.sampled_from(["blacklist mptsas", "blacklist mpt3sas", "options xen-pciback hide=(0000:00:05.0)",
                         "options xen_pciback hide=(01:00.0)", "options xen-pciback hide=(0000:82.0.0)",
                         "softdep mptsas pre: xen-pciback", "softdep mpt3sas pre: xen-pciback",
                         "install mptsas /bin/false", "alias pci:v00001000d* off", "xen-pciback", "mptsas",
                         "xen_pciback hide=(01:00.0)", "mpt3sas", "", "# comment"])
TEXT = st.lists(LINES, max_size=5).map(lambda lines: "".join(f"{ln}\n" for ln in lines))


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(fixture_names()), modprobe=TEXT, modules=TEXT, image=TEXT, conf_modules=TEXT,
       inventory=st.one_of(st.none(), st.lists(st.sampled_from(["mptsas.ko", "mpt3sas.ko.gz", "xen-pciback.ko"]))),
       drop_image=st.booleans())
def test_the_model_never_raises_and_is_unknown_without_the_image(name, modprobe, modules, image, conf_modules,
                                                                  inventory, drop_image):
    raw = load_fixture(name).raw
    raw.files["/etc/modprobe.d/zz-test.conf"] = FileFact(path="/etc/modprobe.d/zz-test.conf", content=modprobe)
    raw.files["/etc/modules"] = FileFact(path="/etc/modules", content=modules)
    for data in raw.initramfs.values():
        data["config_files"] = {**data["config_files"], "etc/modprobe.d/zz-test.conf": image,
                                "conf/modules": conf_modules}
        if inventory is None:
            data.pop("modules", None)
        else:
            data["modules"] = inventory
    if drop_image:
        raw.initramfs.clear()
    facts = HostFacts(raw)
    for bdf in list(facts.pci)[:4]:
        after = predict(facts, bdf)
        assert after.chain
        assert after.known == (after.label != "unknown")
        if drop_image and facts.boot_image is not None:
            assert not after.known


# -- the three states in the rules ------------------------------------------------------------------------------
def test_driver_pciback_says_pending_reboot_when_the_next_boot_gives_the_device_to_pciback():
    from xenpass.rules.driver_pciback import check as driver_check

    facts = lab(OPTIONS | LOAD | BLACKLIST, in_image(OPTIONS | BLACKLIST))  # configured, not rebooted: on mptsas
    v = driver_check(facts, LAB, Context())
    assert v.status == Status.FAIL and v.state == "pending-reboot"  # still not compliant until rebooted
    assert v.reason.startswith("pending reboot: 0000:00:05.0 is on mptsas now")
    assert any(e.source.startswith("the next boot, step by step: pciback") for e in v.evidence)


def test_driver_pciback_without_a_pending_reboot_fails_as_before():
    from xenpass.rules.driver_pciback import check as driver_check

    v = driver_check(lab(OPTIONS | LOAD | BLACKLIST), LAB, Context())  # the old image: mptsas again
    assert v.status == Status.FAIL and v.state is None and "pending reboot" not in v.reason


def test_every_fix_plan_that_needs_a_reboot_predicts_pciback_after_it():
    """The planner and the model agree: the facts as a plan leaves them boot the device onto pciback."""
    from xenpass.fix import plan_device

    planned = 0
    for name in fixture_names():
        facts = load_fixture(name)
        for bdf in [NODE03, LAB]:
            if bdf not in facts.pci:
                continue
            plan = plan_device(facts, bdf, Context())
            if not plan.reboot_required:
                continue
            assert plan.next_boot is not None, name
            if facts.distro == "dracut":  # not modelled: the plan says so, never a guess
                assert not plan.next_boot.known and "not modelled" in plan.next_boot.chain[0].text, name
                continue
            planned += 1
            assert plan.next_boot.label == "pciback", (name, plan.next_boot)
            assert "after these steps, the next boot gives" in plan.render()
    assert planned >= 8


def test_alpine_native_loaded_by_name_after_pciback_ends_on_pciback_and_the_rule_agrees():
    """OpenRC's modules service: xen_pciback (with hide=) on the line before mpt3sas seizes the device first."""
    raw = load_fixture("node03-fixed").raw
    raw.files["/etc/modules"] = FileFact(path="/etc/modules", content="xen_pciback hide=(01:00.0)\nmpt3sas\n")
    facts = HostFacts(raw)
    assert outcome(facts, NODE03).label == "pciback"
    assert blacklisted_check(facts, NODE03, Context()).status == Status.PASS
    raw.files["/etc/modules"] = FileFact(path="/etc/modules", content="mpt3sas\nxen_pciback hide=(01:00.0)\n")
    facts = HostFacts(raw)
    assert outcome(facts, NODE03).label == "mpt3sas"
    assert blacklisted_check(facts, NODE03, Context()).status == Status.FAIL


def test_pciback_listed_for_the_initramfs_but_not_rebuilt_fails_initramfs_current():
    """/etc/initramfs-tools/modules names xen-pciback, the image's conf/modules does not (no update-initramfs):
    nothing loads xen-pciback at the next boot, and initramfs-current says the image lacks it."""
    raw = load_fixture("debian12-kmod-compliant").raw
    raw.files["/etc/modules"] = FileFact(path="/etc/modules", content="")
    raw.files["/etc/initramfs-tools/modules"] = FileFact(path="/etc/initramfs-tools/modules", content="xen-pciback\n")
    facts = HostFacts(raw)
    assert outcome(facts).label == "no driver"
    v = evaluate(facts, LAB, Context())["initramfs-current"]
    assert v.status == Status.FAIL and "conf/modules" in v.reason and "xen_pciback" in v.reason


def test_a_softdep_for_a_blacklisted_module_loads_no_pciback():
    """hide-entry took `softdep mptsas pre: xen-pciback` as a loader even with mptsas blacklisted: coldplug then
    never loads mptsas, so nothing loads xen-pciback."""
    raw = load_fixture("debian12-kmod-compliant").raw
    raw.files["/etc/modules"] = FileFact(path="/etc/modules", content="")
    raw.files["/etc/modprobe.d/zz.conf"] = FileFact(path="/etc/modprobe.d/zz.conf",
                                                    content="softdep mptsas pre: xen-pciback\n")
    facts = HostFacts(raw)
    assert outcome(facts).label == "no driver"
    assert evaluate(facts, LAB, Context())["hide-entry"].status == Status.FAIL


AGREEING = [("node03-fixed", NODE03), ("node03-broken-mpt2sas-alias", NODE03), ("debian12-kmod-compliant", LAB),
            ("lab-debian12-pristine", LAB)]


@settings(max_examples=80, deadline=None)
@given(case=st.sampled_from(AGREEING), modprobe=TEXT, modules=TEXT, listed=TEXT, rebuild=st.booleans())
def test_when_the_boot_rules_pass_the_model_says_pciback(case, modprobe, modules, listed, rebuild):
    """Rules and model must not disagree: hide-entry, native-driver-blacklisted and initramfs-current passing
    means the next boot gives the device to pciback (or the model cannot tell)."""
    from xenpass.fix import simulate
    from xenpass.fix.base import Command
    from xenpass.fix.initramfs_current import rebuild_command

    name, bdf = case
    raw = load_fixture(name).raw
    for path, text in {"/etc/modprobe.d/zz-test.conf": modprobe, "/etc/modules": modules}.items():
        raw.files[path] = FileFact(path=path, content=text, mtime=1)
    if name.startswith(("debian", "lab")):
        raw.files["/etc/initramfs-tools/modules"] = FileFact(path="/etc/initramfs-tools/modules", content=listed)
    for data in raw.initramfs.values():  # the hooks put the native drivers and xen-pciback in
        data["modules"] = ["mptsas.ko", "mpt3sas.ko", "xen-pciback.ko"]
    facts = HostFacts(raw)
    if rebuild:
        facts = simulate(facts, [Command("initramfs-current", rebuild_command(facts) or (), "rebuild")])
    verdicts = evaluate(facts, bdf, Context())
    after = predict(facts, bdf)
    if all(verdicts[r].status == Status.PASS for r in ("hide-entry", "native-driver-blacklisted",
                                                       "initramfs-current")) and after.known:
        assert after.driver == "pciback", after.why


def test_pciback_listed_first_without_a_hide_for_the_device_does_not_excuse_the_native():
    listed = "xen-pciback\nmptsas\n"
    other = {"/etc/modprobe.d/xen-pciback.conf": "options xen-pciback hide=(0000:00:06.0)\n"}
    facts = lab(other | LOAD | BLACKLIST | {"/etc/initramfs-tools/modules": listed},
                in_image(other | BLACKLIST) | {"conf/modules": listed}, modules=("xen-pciback.ko", "mptsas.ko"))
    assert outcome(facts).label == "mptsas"
    assert blacklisted_check(facts, LAB, Context()).status == Status.FAIL
