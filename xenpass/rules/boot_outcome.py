"""The next boot, as it runs: which driver owns a device after it, and the chain of steps that decide it.

Pure, like the rules. A device bound in one stage stays bound in the later ones (nothing unbinds it, except
Alpine's xen-pci service, which runs `xl pci-assignable-add`). The stages, in boot order:
1. kernel init: a built-in xen-pciback registers at fs_initcall, before the device_initcall of built-in drivers,
   and takes only `xen-pciback.hide=` from the command line; a built-in native driver binds at its initcall.
2. the initramfs, with the image's own modprobe.d (and the command line), only modules the image holds:
   - initramfs-tools (Debian): udev in init-top coldplugs every device (`modprobe -b MODALIAS`), then
     `load_modules` runs `modprobe LINE` for each line of conf/modules, in order;
   - mkinitfs (Alpine): the init loads the command line's `modules=` by name, then nlplug-findfs coldplugs through
     libkmod (blacklist honoured).
3. the real root, with the root's modprobe.d:
   - systemd (Debian): udev coldplugs again and systemd-modules-load loads /etc/modules and modules-load.d by
     name only; the two services are not ordered against each other, so when each alone would give the device
     to a different driver, the outcome is a race and the prediction is unknown;
   - OpenRC (Alpine): hwdrivers/mdev (sysinit) coldplug with busybox `modprobe -b`, then the modules service (boot)
     runs `modprobe -q MODULE ARGS` per line, then the xen-pci service (`xl pci-assignable-add`).
xen-pciback seizes, when it loads, the unbound devices its hide= names; a hide= that does not parse makes it
refuse to load ("Error parsing pci_devs_to_hide"), and the next `modprobe xen-pciback` tries again.
Where a fact is missing (the image unread, an unknown boot), the prediction is unknown, with the reason.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace

from xenpass.facts.host import PCIBACK, HostFacts, Image, xen_pci_devices
from xenpass.parse.bdf import Bdf
from xenpass.parse.modprobe import ModprobeDirective, normalize_module, parse_modprobe_conf
from xenpass.parse.modules_load import ModuleLoadLine, parse_modules_load
from xenpass.rules.base import Evidence, where
from xenpass.rules.hide_sources import (
    HideSource,
    cmdline_counts,
    decide_builtin,
    hide_sources,
    kmod_option_order,
    sources_from_line,
)
from xenpass.rules.kmod_coldplug import KmodColdplug

# What the model reads; when one of them could not be read, the prediction is unknown.
READS = ("sysfs", "kernel-modules", "modprobe.d", "modules-load", "cmdline", "initramfs")
# kmod's modprobe.d directories inside an image, in priority order (a name in an earlier one hides a later one)
IMAGE_MODPROBE_DIRS = ("etc/modprobe.d/", "run/modprobe.d/", "usr/local/lib/modprobe.d/", "usr/lib/modprobe.d/",
                       "lib/modprobe.d/")
COLDPLUG_SERVICES = ("hwdrivers", "mdev", "udev", "udev-trigger")  # OpenRC sysinit services that coldplug


@dataclass(frozen=True)
class Step:
    """One thing the boot does that matters for the device, and the file/line or source it comes from."""

    text: str
    at: str = ""

    def __str__(self) -> str:
        return f"{self.text} ({self.at})" if self.at else self.text


@dataclass(frozen=True)
class BootOutcome:
    """The driver that owns the device after the next boot: "pciback", a native module, None (no driver)."""

    driver: str | None
    known: bool
    chain: tuple[Step, ...]

    @property
    def label(self) -> str:
        return "unknown" if not self.known else self.driver or "no driver"

    @property
    def why(self) -> str:
        return "; ".join(str(s) for s in self.chain)

    def evidence(self) -> Evidence:
        lines = [f"{i}. {s}" for i, s in enumerate(self.chain, 1)]
        return Evidence(f"the next boot, step by step: {self.label}", "\n".join(lines))

    def to_json(self) -> dict:
        return {"driver": self.driver, "known": self.known, "chain": [str(s) for s in self.chain]}


@dataclass(frozen=True)
class State:
    bound: str | None = None  # the driver that owns the device so far
    pciback_loaded: bool = False  # loaded (or registered, built in): a later `modprobe xen-pciback` is a no-op
    chain: tuple[Step, ...] = ()

    def then(self, text: str, at: str = "", **changes: object) -> State:
        return replace(self, chain=(*self.chain, Step(text, at)), **changes)  # type: ignore[arg-type]


class Unknowable(Exception):
    """A fact the prediction needs is missing."""


@dataclass
class Stage:
    """Where modules load from: the initramfs (its modprobe.d, the modules it holds) or the real root."""

    name: str
    facts: HostFacts  # the host's facts as this stage sees them (the image's modprobe.d in the initramfs)
    holds: Callable[[str], bool | None]  # whether a module can load here; None: not known


def predict(facts: HostFacts, bdf: Bdf) -> BootOutcome:
    """The driver that will own `bdf` after the next boot, with the steps that decide it."""
    try:
        unknown = facts.unknown(READS)
        if unknown:
            raise Unknowable("; ".join(f"{u.what}: {u.detail.splitlines()[0]}" for u in unknown))
        if bdf not in facts.pci:
            raise Unknowable(f"{bdf} is not in /sys/bus/pci/devices")
        if not facts.pci[bdf].modalias:
            raise Unknowable(f"no modalias was collected for {bdf}")
        with_module, assumed = Boot(facts, bdf, assume_in_image=True).run()
        if not assumed:
            return BootOutcome(with_module.bound, True, with_module.chain)
        without, _ = Boot(facts, bdf, assume_in_image=False).run()
        missing = "which modules the initramfs holds was not collected"
        if without.bound == with_module.bound:
            return BootOutcome(with_module.bound, True, (*with_module.chain, Step(f"{missing}; the outcome is the "
                                                                                  "same either way")))
        raise Unknowable(f"{missing}: with {bdf}'s driver in the image it goes to {with_module.bound or 'no driver'},"
                         f" without it to {without.bound or 'no driver'}")
    except Unknowable as exc:
        return BootOutcome(None, False, (Step(f"cannot predict the next boot: {exc}"),))


class Boot:
    """One run of the boot over the facts. `assume_in_image`: the answer when the image's modules are unknown."""

    def __init__(self, facts: HostFacts, bdf: Bdf, assume_in_image: bool) -> None:
        self.facts, self.bdf, self.assume = facts, bdf, assume_in_image
        self.natives = facts.native_modules(bdf)
        self.modalias = facts.pci[bdf].modalias
        self.assumed = False  # whether the answer needed `assume_in_image`

    def run(self) -> tuple[State, bool]:
        family = self.facts.distro
        if family not in ("debian", "alpine"):
            raise Unknowable(f"the boot of a {family} host (its initramfs builder and init) is not modelled")
        state = self.kernel_init(State())
        state = self.initramfs(state)
        state = self.root_systemd(state) if family == "debian" else self.root_openrc(state)
        return state.then(f"after the boot, {self.bdf} is on {state.bound or 'no driver'}"), self.assumed

    # -- stage 1: the kernel alone ----------------------------------------------------------------
    def kernel_init(self, state: State) -> State:
        if self.facts.pciback_builtin:
            state = self.builtin_pciback(state)
        for module in self.natives:
            if module in self.facts.builtin_modules and state.bound is None:
                state = state.then(f"{module} is built into kernel {self.facts.kernel}: it binds {self.bdf} at its "
                                   "initcall, before any initramfs", bound=module)
        return state

    def builtin_pciback(self, state: State) -> State:
        chosen = decide_builtin(hide_sources(self.facts)).value
        if chosen is None:
            return state.then(f"xen-pciback is built in; no xen-pciback.hide= on the command line names "
                              f"{self.bdf}", "/proc/cmdline", pciback_loaded=True)
        if chosen.value.error:
            return state.then("built-in xen-pciback does not register: its hide= does not parse "
                              f"({chosen.value.error})", chosen.where, pciback_loaded=True)
        return self.seize(state, chosen, "built into the kernel (fs_initcall, before any other PCI driver)")

    # -- stage 2: the initramfs -------------------------------------------------------------------
    def initramfs(self, state: State) -> State:
        image = self.facts.boot_image
        if image is None:
            raise Unknowable(f"no initramfs for kernel {self.facts.kernel} in /boot")
        if image.content is None or image.content.error:
            raise Unknowable(f"{image.path} could not be read: "
                             f"{image.content.error if image.content else 'its content was not collected'}")
        stage = Stage(f"the initramfs {image.path}", image_view(self.facts, image),
                      lambda module: self.in_image(image, module))
        if self.facts.distro == "debian":
            state = self.coldplug_kmod(state, stage, "udev in the initramfs (init-top) coldplugs it")
            conf = image.content.config_files.get("conf/modules")
            lines = parse_modules_load(conf, f"{image.path}!/conf/modules") if conf is not None else []
            return self.by_name(state, stage, lines, "initramfs-tools' load_modules")
        cmdline_modules = [ModuleLoadLine("/proc/cmdline", 1, f"modules={value}", name, ())
                           for key, value in self.facts.cmdline if key == "modules" and value
                           for name in value.split(",") if name]
        state = self.by_name(state, stage, cmdline_modules, "the initramfs init (modules= on the command line)")
        return self.coldplug_kmod(state, stage, "nlplug-findfs in the initramfs coldplugs it through libkmod")

    def in_image(self, image: Image, module: str) -> bool | None:
        data = self.facts.raw.initramfs.get(image.path) or {}
        if "modules" not in data:
            return None
        return module in {normalize_module(name.split(".ko")[0]) for name in data["modules"]}

    # -- stage 3: the real root -------------------------------------------------------------------
    def root_systemd(self, state: State) -> State:
        if self.facts.init_system != "systemd":
            raise Unknowable(f"a Debian host booting with {self.facts.init_system} is not modelled")
        stage = Stage("the root filesystem", self.facts, lambda module: True)
        lines = self.facts.module_load_lines

        def coldplug(s: State) -> State:
            return self.coldplug_kmod(s, stage, "udev coldplugs it again from the root filesystem")

        def modules_load(s: State) -> State:
            return self.by_name(s, stage, lines, "systemd-modules-load", names_only=True)

        first = modules_load(coldplug(state))
        second = coldplug(modules_load(state))
        if first.bound != second.bound:
            raise Unknowable(f"a race: udev's coldplug alone gives {self.bdf} to {coldplug(state).bound or 'nothing'}"
                             f", systemd-modules-load alone to {modules_load(state).bound or 'nothing'}, and the two "
                             "services are not ordered against each other")
        return first

    def root_openrc(self, state: State) -> State:
        stage = Stage("the root filesystem", self.facts, lambda module: True)
        services = self.facts.runlevel_services
        if services and not any(s in services for s in COLDPLUG_SERVICES):
            state = state.then("no coldplug service (hwdrivers, mdev) is in a runlevel")
        else:
            state = self.coldplug_busybox(state)
        if services and "modules" not in services:
            state = state.then("the OpenRC modules service is in no runlevel: /etc/modules is not read")
        else:
            lines = [ln for ln in self.facts.module_load_lines if not ln.eof_without_newline]
            state = self.by_name(state, stage, lines, "the OpenRC modules service", busybox=True)
        return self.xen_pci_service(state)

    def xen_pci_service(self, state: State) -> State:
        level = self.facts.runlevel_services.get("xen-pci")
        if self.bdf not in xen_pci_devices(self.facts) or level is None or state.bound == "pciback":
            return state
        return state.then(f"the xen-pci service (runlevel {level}) runs `xl pci-assignable-add {self.bdf}`, which "
                          f"binds it to pciback", "/etc/conf.d/xen-pci", bound="pciback", pciback_loaded=True)

    # -- the ways a module gets loaded ------------------------------------------------------------
    def coldplug_kmod(self, state: State, stage: Stage, who: str) -> State:
        model = KmodColdplug(stage.facts)
        trace = model.coldplug(self.modalias)
        for note in trace.notes:
            state = state.then(f"{stage.name}: {note}")
        for load in trace.loads:
            state = self.load(state, stage, load.module, f"{who} (`modprobe -b {self.modalias}`)", load.via)
        return state

    def coldplug_busybox(self, state: State) -> State:
        probe = self.facts.busybox_probe(self.modalias)
        for module, at in probe.blacklist.items():
            if module in self.natives:
                state = state.then(f"the root filesystem: {module} is blacklisted for busybox `modprobe -b`", at)
        stage = Stage("the root filesystem", self.facts, lambda module: True)
        for module in probe.loads:
            state = self.load(state, stage, module, "hwdrivers/mdev (sysinit) coldplug it with busybox "
                                                     f"`modprobe -b {self.modalias}`", "")
        return state

    def by_name(self, state: State, stage: Stage, lines: list[ModuleLoadLine], who: str,
                names_only: bool = False, busybox: bool = False) -> State:
        """`modprobe NAME [ARGS]` per line, in order: the blacklist does not apply, softdep and install do (kmod)."""
        for line in lines:
            at = where(line.source, line.lineno)
            if names_only and line.args:
                if normalize_module(line.module) == PCIBACK or line.module in self.natives:
                    state = state.then(f"{who} takes module names only: `{line.raw.strip()}` is read as one "
                                       "module name and fails", at)
                continue
            if busybox:  # xen-pciback has no alias, so modules.alias does not tell busybox_by_name it exists
                pciback = self.facts.module_key(line.module) == PCIBACK
                loads = [(m, "") for m in ([PCIBACK] if pciback else self.facts.busybox_by_name(line.module))]
            else:
                loads = [(ld.module, ld.via) for ld in KmodColdplug(stage.facts).load_by_name(line.module).loads]
            for module, via in loads:
                state = self.load(state, stage, module, f"{who} loads it by name", via or at, line)
        return state

    def load(self, state: State, stage: Stage, module: str, how: str, via: str,
             line: ModuleLoadLine | None = None) -> State:
        module = normalize_module(module)
        if module != PCIBACK and module not in self.natives:
            return state
        if module == PCIBACK and state.pciback_loaded:
            return state
        if module != PCIBACK and state.bound is not None:
            return state
        held = stage.holds(module)
        if held is None:
            self.assumed, held = True, self.assume
        if not held:
            return state.then(f"{stage.name}: {how}, but {module} is not in the image, so it cannot load there")
        if module == PCIBACK:
            return self.load_pciback(state, stage, f"{stage.name}: {how}", via, line)
        return state.then(f"{stage.name}: {how} and {module} binds {self.bdf}", via, bound=module)

    def load_pciback(self, state: State, stage: Stage, how: str, via: str, line: ModuleLoadLine | None) -> State:
        if self.facts.not_dom0_reason:
            return state.then(f"{how}; xen-pciback refuses to load outside dom0 (-ENODEV)", via)
        chosen = hide_value(stage.facts, line)
        if chosen is None:
            return state.then(f"{how}: xen-pciback loads with no hide=, so it seizes nothing", via,
                              pciback_loaded=True)
        if chosen.value.error:
            return state.then(f"{how}: xen-pciback refuses to load, its hide= does not parse "
                              f"({chosen.value.error})", chosen.where)
        return self.seize(state, chosen, how + (f" ({via})" if via and via != chosen.where else ""))

    def seize(self, state: State, chosen: HideSource, how: str) -> State:
        slot = chosen.value.covering_slot(self.facts.chain(self.bdf))
        if slot is None:
            return state.then(f"{how}: xen-pciback loads with hide={chosen.value.raw}, which does not name "
                              f"{self.bdf}", chosen.where, pciback_loaded=True)
        if state.bound is not None:
            return state.then(f"{how}: xen-pciback loads with hide={chosen.value.raw}, but {self.bdf} is already "
                              f"bound to {state.bound}", chosen.where, pciback_loaded=True)
        return state.then(f"{how}: xen-pciback loads with hide={chosen.value.raw} and seizes {self.bdf}",
                          chosen.where, bound="pciback", pciback_loaded=True)


def hide_value(facts: HostFacts, line: ModuleLoadLine | None) -> HideSource | None:
    """The hide= xen-pciback gets when modprobe loads it: modprobe.d options, the command line's (kmod puts them
    after the options; busybox too), then the arguments of the call itself. The kernel keeps the last."""
    sources = [s for s in hide_sources(facts) if s.kind in ("options", "cmdline") and cmdline_counts(facts, s)]
    if facts.modprobe_impl == "kmod":
        sources = kmod_option_order(sources)
    else:
        sources = [s for s in sources if s.kind == "options"] + [s for s in sources if s.kind == "cmdline"]
    if line is not None and normalize_module(line.module) == PCIBACK:
        sources += sources_from_line(line, "modules-line")
    return sources[-1] if sources else None


def image_directives(image: Image) -> list[ModprobeDirective]:
    """The image's modprobe.d as kmod reads it: each file name once, from the first directory that has it,
    sorted by name."""
    assert image.content is not None
    files = image.content.config_files
    chosen: dict[str, str] = {}
    for directory in IMAGE_MODPROBE_DIRS:
        for path in sorted(files):
            name = path[len(directory):]
            if path.startswith(directory) and "/" not in name and name.endswith(".conf"):
                chosen.setdefault(name, path)
    return [d for name in sorted(chosen) for d in parse_modprobe_conf(files[chosen[name]],
                                                                      f"{image.path}!/{chosen[name]}")]


def image_view(facts: HostFacts, image: Image) -> HostFacts:
    """The host's facts as the initramfs sees them: the image's modprobe.d, read by libkmod (initramfs-tools'
    modprobe and udev, mkinitfs's nlplug-findfs), the same kernel and command line."""
    view = copy.copy(facts)
    view.__dict__["modprobe"] = image_directives(image)
    view.__dict__["modprobe_impl"] = "kmod"
    return view


def pending(now: str | None, after: BootOutcome) -> bool:
    """Whether the next boot changes who owns the device: pciback, a native driver, or none (a sysfs driver name
    and its module's name may differ, e.g. i801_smbus / i2c_i801, so natives are not told apart)."""
    if not after.known:
        return False

    def owner(driver: str | None) -> str:
        return "none" if not driver else "pciback" if driver == "pciback" else "native"

    return owner(now) != owner(after.driver)


def now_driver(facts: HostFacts, bdf: Bdf) -> str | None:
    """The driver bound now (sysfs), else what lspci says is in use."""
    dev = facts.pci.get(bdf)
    if dev is not None:
        return dev.driver
    listed = facts.lspci.get(bdf)
    return listed.driver if listed is not None else None


def boot_states(facts: HostFacts, bdf: Bdf) -> dict:
    """The three states of a device for the reports: now, after the next boot (with its chain), pending reboot."""
    now = now_driver(facts, bdf)
    after = predict(facts, bdf)
    return {"now": now, "after_reboot": after.to_json(), "pending_reboot": pending(now, after)}
