"""pytest wiring: options, the targets' facts (collected once, all hosts at once), the `verdict` fixture.

Host selection reuses testinfra's own options (--hosts, --ssh-config, --sudo, --ansible-inventory, ...).
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import pytest
import testinfra.backend

from xenpass.engine import evaluate
from xenpass.facts.image_cache import ImageCache, default_directory
from xenpass.facts.raw import save_snapshot
from xenpass.fix.base import STEP_TIMEOUT_DEFAULT
from xenpass.parse.bdf import Bdf
from xenpass.remediate import remediate
from xenpass.report.fixes import APPLIED, NOTHING, REFUSED, DeviceFix, device_fix, fix_note
from xenpass.report.results import RunResults
from xenpass.rules import RULES
from xenpass.rules.base import Context, Status, Verdict
from xenpass.targets import (
    DEFAULT_MAX_HOSTS,
    HostResult,
    Target,
    UsageProblem,
    gather,
    load_inventory,
    parse_devices,
    parse_domus,
    snapshot_targets,
    targets_from_backends,
)
from xenpass.text import exception_line, safe_id, visible
from xenpass.transport import CONTROL, runner_for
from xenpass.waivers import Waiver, WaiverProblem, load_waivers


def find_checks_dir() -> Path:
    """checks/ of this source tree, or the installed copy the wheel ships as xenpass.checks."""
    try:
        import xenpass.checks

        return Path(xenpass.checks.__file__).resolve().parent
    except ImportError:
        return Path(__file__).resolve().parent.parent / "checks"


CHECKS_DIR = find_checks_dir()
RESULTS = pytest.StashKey[RunResults]()
COMPACT_TABLE = "xenpass-compact-table"  # the plugin that leaves passing rows out of compact HTML reports
COMPACT_ABOVE = 2000  # tests; past this a per-test evidence dump makes the HTML too big to open


class ComplianceWarning(UserWarning):
    """A warning-level rule that did not pass."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("xenpass", "Xen PCI passthrough compliance")
    group.addoption("--device", action="append", default=[], metavar="BDF",
                    help="device to check, e.g. 01:00.0 (repeatable); default: every device the host declares")
    group.addoption("--domu", action="append", default=[], metavar="PATH",
                    help="domU config on the host that must name the device(s) (repeatable)")
    group.addoption("--inventory", metavar="YAML", help="hosts, their devices and domU configs (see README)")
    group.addoption("--snapshot", action="append", default=[], metavar="PATH",
                    help="judge saved facts (a snapshot file or a directory of them) instead of live hosts")
    group.addoption("--record", metavar="DIR", help="save each host's collected facts as a snapshot in DIR")
    group.addoption("--compliance-json", metavar="PATH", help="machine-readable results (default in reports/)")
    group.addoption("--fix", action="store_true", help="apply the fix plans (shown first), then judge again")
    group.addoption("--fix-only", metavar="RULE[,RULE]", help="with --fix: only these rules' fixes")
    group.addoption("--report-detail", choices=("auto", "full", "compact"), default="auto",
                    help="HTML detail: full puts evidence and plans on every test; compact (auto above "
                         f"{COMPACT_ABOVE} tests) keeps them in the compliance JSON only, so huge fleets stay readable")
    group.addoption("--host-timeout", type=float, default=None, metavar="SECONDS",
                    help="give up on a host that has not answered after this long (default 120)")
    group.addoption("--waivers", metavar="YAML",
                    help="accepted failures: host glob, device, rule, reason, owner, expiry date (see README); an "
                         "active one makes the failure an xfail, an expired one leaves it failing")
    group.addoption("--fix-export", metavar="DIR",
                    help="write each device's fix plan as DIR/HOST/BDF/fix.sh (POSIX, same guards and backups as "
                         "--fix, skips what is already applied) and plan.json, for review and later application")
    group.addoption("--list-rules", action="store_true",
                    help="print the rule catalogue (id, severity, seed step, what passes, why, references) and exit")
    group.addoption("--gate-exit-codes", action="store_true",
                    help="exit 0 when every host is compliant, 100 when some host is not, 101 when no host failed "
                         "but some could not be checked (unreachable, error, no device); pytest's codes otherwise")
    parser.addini("xenpass_gate_exit_codes", type="bool", default=False,
                  help="as --gate-exit-codes, from the ini file")
    group.addoption("--max-hosts", type=int, default=None, metavar="N",
                    help=f"collect at most N hosts at once (default {DEFAULT_MAX_HOSTS}; lowered to what the "
                         "open-file limit allows)")
    group.addoption("--image-cache", metavar="DIR|off",
                    help="where to remember what each host's initramfs holds, by host and image sha256, so an "
                         "unchanged image is never read or sent again (default $XENPASS_CACHE_DIR, else "
                         "$XDG_CACHE_HOME/xenpass or ~/.cache/xenpass); off: read it every run")
    group.addoption("--step-timeout", type=float, default=None, metavar="SECONDS",
                    help="with --fix: end a remote step (an edit, an initramfs rebuild) after this long and "
                         f"report it as failed, with its rollback (default {STEP_TIMEOUT_DEFAULT})")
    for ini, (_, kind, _, what) in INI_SETTINGS.items():
        parser.addini(ini, type=kind, help=f"{what} (the command line overrides it)")


# Defaults from the ini file ([tool.pytest.ini_options], pytest.ini): option dest -> (ini key, ini type,
# built-in default, help). Paths are relative to the ini file; the command line always wins.
INI_SETTINGS: dict[str, tuple[str, str, object, str]] = {
    "xenpass_inventory": ("inventory", "string", None, "--inventory: the hosts YAML"),
    "xenpass_devices": ("device", "linelist", [], "--device: the devices to check, one per line"),
    "xenpass_compliance_json": ("compliance_json", "string", None, "--compliance-json: where the JSON goes"),
    "xenpass_html": ("htmlpath", "string", None, "--html: where the HTML report goes"),
    "xenpass_host_timeout": ("host_timeout", "string", 120.0, "--host-timeout: seconds"),
    "xenpass_step_timeout": ("step_timeout", "string", float(STEP_TIMEOUT_DEFAULT), "--step-timeout: seconds"),
    "xenpass_max_hosts": ("max_hosts", "string", DEFAULT_MAX_HOSTS, "--max-hosts: hosts collected at once"),
    "xenpass_image_cache": ("image_cache", "string", None, "--image-cache: DIR or off"),
    "xenpass_waivers": ("waivers", "string", None, "--waivers: the waivers YAML"),
}
PATH_SETTINGS = {"inventory", "compliance_json", "htmlpath", "image_cache", "waivers"}
NUMBER_SETTINGS = {"host_timeout": float, "step_timeout": float, "max_hosts": int}


def apply_ini_settings(config: pytest.Config) -> None:
    """Fill every option the command line left unset from the ini file, then from the built-in default."""
    base = Path(config.inipath).parent if config.inipath else Path(config.invocation_params.dir)
    for ini, (dest, _, default, _) in INI_SETTINGS.items():
        if getattr(config.option, dest, None) not in (None, []):
            continue  # given on the command line
        value = config.getini(ini)
        if value in ("", [], None):
            if default is not None and dest != "htmlpath":
                setattr(config.option, dest, default)
            continue
        if dest in NUMBER_SETTINGS:
            try:
                value = NUMBER_SETTINGS[dest](value)
            except ValueError:
                raise UsageProblem(f"{ini} = {value!r} in {config.inipath}: not a number") from None
        elif dest in PATH_SETTINGS and value != "off":
            value = str(base / value)
        setattr(config.option, dest, value)
        if dest == "htmlpath":
            config.option.self_contained_html = True

def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if config.getoption("list_rules"):
        from xenpass.catalogue import text

        print(text())
        return 0
    return None


def checks_mode(config: pytest.Config) -> bool:
    """True when the user runs the compliance suites (not the project's own tests)."""
    for arg in config.args:
        target = arg.split("::")[0]
        if target == "xenpass.checks" or target.startswith("xenpass.checks."):  # pytest --pyargs xenpass.checks
            return True
        path = Path(target).resolve()
        if path == CHECKS_DIR or CHECKS_DIR in path.parents:
            return True
    return False


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for rule in RULES.values():
        config.addinivalue_line("markers", f"{rule.id}: rule {rule.id} — {rule.title}")
    config.addinivalue_line("markers", "rule(id): the compliance rule a check proves")
    try:
        apply_ini_settings(config)
    except UsageProblem as exc:
        raise pytest.UsageError(visible(str(exc), keep_newlines=False)) from None
    if not checks_mode(config):
        return
    root = Path(config.rootpath)
    # the project's reports/ when run in its tree; else where the user stands (never into site-packages)
    reports = (root if root == CHECKS_DIR.parent else Path(config.invocation_params.dir)) / "reports"
    if getattr(config.option, "htmlpath", "missing") is None:
        config.option.htmlpath = str(reports / "report.html")
        config.option.self_contained_html = True
    if config.getoption("compliance_json") is None:
        config.option.compliance_json = str(reports / "compliance.json")
    run = RunResults()
    try:  # bad input is a usage error before anything runs
        check_options(config)
        run.waivers = waivers(config)
        run.targets = resolve_targets(config)
    except UsageProblem as exc:
        raise pytest.UsageError(visible(str(exc), keep_newlines=False)) from None
    config.stash[RESULTS] = run
    from xenpass.report.html import CompactTable

    config.pluginmanager.register(CompactTable(run, config), COMPACT_TABLE)


def waivers(config: pytest.Config) -> list[Waiver]:
    path = config.getoption("waivers")  # or the ini's xenpass_waivers (apply_ini_settings)
    if not path:
        return []
    try:
        return load_waivers(path)
    except WaiverProblem as exc:
        raise UsageProblem(f"--waivers {exc}") from None


def check_options(config: pytest.Config) -> None:
    """Every bad option or unwritable output path, as one line, before any host is asked."""
    for option in ("host_timeout", "step_timeout"):
        timeout = config.getoption(option)
        if not (math.isfinite(timeout) and timeout > 0):
            name = "--" + option.replace("_", "-")
            raise UsageProblem(f"{name}: must be a positive number of seconds, not {timeout:g}")
    if config.getoption("max_hosts") < 1:
        raise UsageProblem(f"--max-hosts: must be at least 1, not {config.getoption('max_hosts')}")
    if config.getoption("fix_only") and not config.getoption("fix"):
        raise UsageProblem("--fix-only: only means something with --fix (add --fix, or drop --fix-only)")
    fix_only(config)
    for option, path in (("--html", getattr(config.option, "htmlpath", None)),
                         ("--compliance-json", config.getoption("compliance_json"))):
        if path:
            check_writable_file(option, Path(path))
    for option in ("record", "fix_export"):
        if config.getoption(option):
            check_writable_dir("--" + option.replace("_", "-"), Path(config.getoption(option)))


def check_writable_file(option: str, path: Path) -> None:
    if path.is_dir():
        raise UsageProblem(f"{option} {path}: is a directory, not a file")
    check_writable_dir(option, path.parent, f"{option} {path}: cannot write there")


def check_writable_dir(option: str, path: Path, prefix: str = "") -> None:
    """Make the directory if needed and prove a file can be created in it."""
    prefix = prefix or f"{option} {path}"
    if path.exists() and not path.is_dir():
        raise UsageProblem(f"{prefix}: {path} is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise UsageProblem(f"{prefix}: {exc.strerror or exc}") from None


def results(config: pytest.Config) -> RunResults:
    if RESULTS not in config.stash:
        config.stash[RESULTS] = RunResults()
    return config.stash[RESULTS]


def resolve_targets(config: pytest.Config) -> list[Target]:
    devices = parse_devices(config.getoption("device"))
    domus = parse_domus(config.getoption("domu"))
    given = [name for name, value in (("--inventory", config.getoption("inventory")),
                                      ("--snapshot", config.getoption("snapshot")),
                                      ("--hosts", config.getoption("hosts", None))) if value]
    if len(given) > 1:  # one would be ignored: a gate must never pass on hosts it did not look at
        raise UsageProblem(f"{' and '.join(given)}: name the hosts one way (one of --inventory, --snapshot, --hosts)")
    if config.getoption("inventory"):
        return [with_runner(config, t) for t in load_inventory(config.getoption("inventory"))]
    if config.getoption("snapshot"):
        return snapshot_targets(config.getoption("snapshot"), devices, domus)
    hosts = config.getoption("hosts", None) or ""  # testinfra's option: one comma-separated string
    specs = [s.strip() for s in (hosts if isinstance(hosts, str) else ",".join(hosts)).split(",") if s.strip()]
    if config.getoption("ansible_inventory", None) and not specs:
        specs = ["ansible://all"]
    return expand_specs(config, specs or ["local://"], devices, domus)


def expand_specs(
    config: pytest.Config, specs: list[str], devices: tuple[Bdf, ...], domus: tuple[str, ...]
) -> list[Target]:
    """testinfra expands specs (ansible groups, globs) into backends: one target per backend."""
    if config.getoption("ansible_inventory", None) or any(s.startswith("ansible://") for s in specs):
        find_ansible_inventory_command()
    pairs = []
    for spec in specs:  # one spec at a time: each target keeps the spec it came from
        try:
            backends = testinfra_backends(config, [spec])
        except Exception as exc:  # a bad inventory or spec: one line, before anything runs
            detail = " ".join(str(exc).split())[:400]
            raise UsageProblem(f"cannot expand hosts {spec}: {detail}") from None
        pairs += [(spec if len(backends) == 1 else f"{spec}#{b.get_hostname()}", b) for b in backends]
    if not pairs:
        raise UsageProblem(f"no hosts match {','.join(specs)}")
    try:
        return targets_from_backends(pairs, devices, domus)
    except Exception as exc:
        raise UsageProblem(f"cannot connect to {','.join(specs)}: {' '.join(str(exc).split())[:400]}") from None


def with_runner(config: pytest.Config, target: Target) -> Target:
    """An inventory target's connection, built before anything runs (a bad spec is a usage error)."""
    if target.snapshot or target.runner is not None:
        return target
    try:
        backend = testinfra.backend.get_backend(target.spec or "local://", **backend_options(config))
        return replace(target, runner=runner_for(backend))
    except Exception as exc:
        raise UsageProblem(f"inventory host {target.name!r}: {target.spec}: {' '.join(str(exc).split())[:300]}") \
            from None


def find_ansible_inventory_command() -> None:
    """testinfra runs `ansible-inventory` through the shell: find it beside this Python when the venv is not active."""
    if shutil.which("ansible-inventory"):
        return
    venv_bin = Path(sys.executable).parent
    if not (venv_bin / "ansible-inventory").exists():
        raise UsageProblem("ansible hosts need ansible-core's `ansible-inventory` (pip install ansible-core)")
    os.environ["PATH"] = f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"


def backend_options(config: pytest.Config) -> dict:
    opt = config.option
    kwargs = {
        "ssh_config": getattr(opt, "ssh_config", None),
        "ssh_identity_file": getattr(opt, "ssh_identity_file", None),
        "sudo": getattr(opt, "sudo", False),
        "sudo_user": getattr(opt, "sudo_user", None),
        "ansible_inventory": getattr(opt, "ansible_inventory", None),
        "force_ansible": getattr(opt, "force_ansible", False),
        "connection": getattr(opt, "connection", None),
    }
    return {k: v for k, v in kwargs.items() if v is not None}


def testinfra_backends(config: pytest.Config, specs: list[str]) -> list:
    return testinfra.backend.get_backends(specs, **backend_options(config))


def connector(config: pytest.Config) -> Callable[[Target], object]:
    """A target's runner (xenpass.transport): its own connection, never another target's."""

    def connect(target: Target) -> object:
        return target.runner if target.runner is not None else with_runner(config, target).runner

    return connect


def collected_hosts(config: pytest.Config) -> list[HostResult]:
    run = results(config)
    if run.hosts is None:
        if run.targets is None:
            try:
                run.targets = resolve_targets(config)
            except UsageProblem as exc:
                raise pytest.UsageError(visible(str(exc), keep_newlines=False)) from None
        start = time.monotonic()
        run.image_cache = image_cache(config)
        run.hosts = gather(run.targets, connector(config), config.getoption("host_timeout"), progress(config),
                           max_hosts=config.getoption("max_hosts"), cache=run.image_cache)
        run.collect_seconds = time.monotonic() - start
        record(config, run.hosts)
        if config.getoption("fix"):
            remediate(run, connector(config), fix_only(config), lambda text: say(config, text),
                      config.getoption("host_timeout"), config.getoption("step_timeout"))
    return run.hosts


def image_cache(config: pytest.Config) -> ImageCache | None:
    value = config.getoption("image_cache")
    if value == "off":
        return None
    return ImageCache(Path(value) if value else default_directory())


def fix_only(config: pytest.Config) -> set[str] | None:
    value = config.getoption("fix_only")
    if not value:
        return None
    wanted = {r.strip() for r in value.split(",") if r.strip()}
    unknown = wanted - set(RULES)
    if unknown or not wanted:
        raise UsageProblem(f"--fix-only: unknown rule(s) {', '.join(sorted(unknown)) or repr(value)}; "
                           f"known: {', '.join(RULES)}")
    return wanted


SAY_LOCK = threading.Lock()  # progress lines come from the collector threads


def say(config: pytest.Config, text: str) -> None:
    """Write to the real stderr even while pytest captures output (collection is captured).

    The text is made `visible`: it carries host names, errors and ssh stderr, whose ESC sequences and
    undecodable bytes must not reach the operator's terminal raw.
    """
    capman = config.pluginmanager.getplugin("capturemanager")
    with SAY_LOCK, capman.global_and_fixture_disabled() if capman else nullcontext():
        sys.stderr.write(visible(text.rstrip("\n")) + "\n")
        sys.stderr.flush()


def progress(config: pytest.Config):
    verbose = config.getoption("verbose") >= 0

    def line(result: HostResult) -> None:
        if not verbose:
            return
        if result.error:
            state = f"ERROR {result.error}"
        elif result.target.snapshot:
            state = f"{len(result.devices)} device(s), from snapshot {result.target.snapshot}"
        else:
            state = f"{len(result.devices)} device(s), {result.facts.raw.remote_commands} remote command(s)"
        # one line per host whatever its name or error holds (a newline in either cannot forge another host's line)
        say(config, visible(f"xenpass: {result.name}: {state} ({result.seconds:.2f} s)", keep_newlines=False))

    return line


def record(config: pytest.Config, hosts: list[HostResult]) -> None:
    directory = config.getoption("record")
    if not directory:
        return
    for host in hosts:
        if host.facts is not None:
            path = save_snapshot(host.facts.raw, directory)
            say(config, f"xenpass: recorded {host.name} -> {path}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("rule")
    if marker is None or "verdict" not in metafunc.fixturenames:
        return
    rule_id = marker.args[0]
    params = []
    for host in collected_hosts(metafunc.config):
        for device in host.devices or [None]:
            # the host name is the inventory's or the host's own: pytest-html puts the id into its page as HTML,
            # so it is made harmless (and kept unique) by construction; BDFs and rule ids are already
            test_id = f"{safe_id(host.name)}-{device if device else 'no-device'}-{rule_id}"
            params.append(pytest.param((host.name, device, rule_id), id=test_id,
                                       marks=[getattr(pytest.mark, rule_id)]))
    metafunc.parametrize("verdict", params, indirect=True)


@pytest.fixture
def verdict(request: pytest.FixtureRequest) -> Verdict:
    host_name, device, rule_id = request.param
    run = results(request.config)
    host = run.host(host_name)
    # JUnit XML (--junitxml) carries these as <property>: a CI system can group by rule, host and device
    request.node.user_properties += [("xenpass_rule", rule_id), ("xenpass_host", visible(host_name)),
                                     ("xenpass_device", str(device) if device else "")]
    if host.error or device is None:  # the HTML says why under the host's card and "What failed"
        request.node.stash[SUMMARISED] = True
        request.node.stash[WHERE] = (host_name, None)
    if host.error:  # an error quotes the host (ssh stderr, a snapshot's path): shown, never obeyed
        pytest.fail(visible(f"{host_name}: {host.error}"), pytrace=False)
    if device is None:
        pytest.fail(visible(f"{host_name}: no device to check: the host declares none for passthrough (no hide= "
                            "entry, xen-pci DEVICES, domU pci line or pciback binding); name one with --device"),
                    pytrace=False)
    assert host.facts is not None
    verdicts = run.verdicts(host, device, lambda: evaluate(host.facts, device, Context(host.target.domus)))
    found = verdicts[rule_id]
    run.record(host_name, device, found)
    request.node.user_properties += [("xenpass_status", found.status.value), ("xenpass_reason", visible(found.reason))]
    request.node.stash[VERDICT] = found
    request.node.stash[WHERE] = (host_name, device)
    waiver = run.waiver(host_name, device, found)
    if waiver is not None and not waiver.expired(run.today):
        pytest.xfail(visible(f"[{rule_id}] waived until {waiver.expires} by {waiver.owner}: {waiver.reason} "
                             f"(was: {found.reason})"))
    if waiver is not None:  # expired: still a failure, which says since when
        days = (run.today - waiver.expires).days
        found = replace(found, reason=f"{waiver.describe()} expired on {waiver.expires} ({days} day(s) ago): "
                                      f"{waiver.reason}\n\n{found.reason}")
    # after --fix: what the fix did to this device (the plan was made, and applied, before these verdicts)
    fix = device_fix(run, host_name, device) if request.config.getoption("fix") else None
    if fix is not None and fix.affects(rule_id):
        request.node.stash[FIX] = fix
    if not found.status.ok and found.status != Status.BLOCKED:
        # this rule's steps, and those of the rules it blocks (e.g. the initramfs rebuild after a blacklist);
        # after --fix also those it blocked before fixing: the plan was made from those verdicts
        blocked = blocked_by(rule_id, verdicts) + (blocked_by(rule_id, fix.before) if fix is not None else [])
        plan = run.plan(host, device).for_rule(rule_id, *blocked)
        if fix is not None:  # what was applied, what failed, what remains: never "apply with --fix" again
            remaining = None
            if fix.outcome in (APPLIED, REFUSED, NOTHING) and not run.compact:
                remaining = run.remaining_plan(host, device).for_rule(rule_id, *blocked_by(rule_id, verdicts))
            note = fix_note(fix, rule_id, plan, remaining, brief=run.compact)
            run.notes[(host_name, device, rule_id)] = note
            found = replace(found, reason=f"{found.reason}\n\n{note}")
        elif not plan.empty and not run.compact:
            note = f"fix plan (apply with --fix):\n{plan.render()}"
            run.notes[(host_name, device, rule_id)] = note
            found = replace(found, reason=f"{found.reason}\n\n{note}")
    return found


def blocked_by(rule_id: str, verdicts: dict[str, Verdict]) -> list[str]:
    return [r for r, v in verdicts.items() if v.status == Status.BLOCKED and v.reason.startswith(
        f"blocked by {rule_id}:")]


VERDICT = pytest.StashKey[Verdict]()
WHERE = pytest.StashKey[tuple[str, Bdf | None]]()
SUMMARISED = pytest.StashKey[bool]()  # the test's failure (its host's error, no device) is said in the summary
FIX = pytest.StashKey[DeviceFix]()


def assert_verdict(found: Verdict) -> None:
    """Turn a verdict into the test's outcome; the message is the rule's reason, not a Python diff.

    The reason quotes host files and output: it is made `visible`, so pytest prints (and pytest-html logs)
    escapes, not a host's ESC sequences or undecodable bytes.
    """
    message = visible(f"[{found.rule}] {found.reason}")
    if found.status in (Status.FAIL, Status.ERROR):
        pytest.fail(message, pytrace=False)
    if found.status in (Status.BLOCKED, Status.SKIP):
        pytest.skip(message)
    if found.status == Status.WARN:
        warnings.warn(ComplianceWarning(message), stacklevel=2)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    detail = config.getoption("report_detail")
    results(config).compact = detail == "compact" or (detail == "auto" and len(items) > COMPACT_ABOVE)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    found = item.stash.get(VERDICT, None)
    if item.stash.get(SUMMARISED, False) or (found is not None and report.when == "call"):
        # its row in the HTML says it once, in a sentence (extras), without pytest's message box; a compact
        # report has no extras and lists only some failures above: its row keeps the message, as text
        report.xenpass_log = plain_message(report, found) if results(item.config).compact else ""
    if item.stash.get(SUMMARISED, False) and report.failed and not results(item.config).compact:
        from xenpass.report.html import not_checked_extras

        report.extras = getattr(report, "extras", []) + not_checked_extras(item.stash[WHERE][0])
    if found is None or report.when != "call":
        return
    report.user_properties.append(("status", found.status.value))
    if not results(item.config).compact:
        from html import escape

        from pytest_html import extras

        from xenpass.report.html import verdict_extras

        run = results(item.config)
        try:
            host, device = item.stash[WHERE]
            label = run.status_label(host, device, found)
            more = verdict_extras(found, item.stash.get(FIX, None), (host, device), label)
        except Exception as exc:  # the test's outcome stands; its evidence is in the JSON
            more = [extras.html(f"<p>xenpass: could not show this test's evidence: {escape(exception_line(exc))}</p>")]
        report.extras = getattr(report, "extras", []) + more


def pytest_html_report_title(report) -> None:
    if RESULTS in report.config.stash:  # the compliance suites, not the project's own tests
        report.title = "Xen PCI passthrough compliance"


def pytest_html_results_summary(prefix: list, summary: list, postfix: list, session: pytest.Session) -> None:
    """The verdict, a card per host, the matrix, each failure once, the fix history: above the table of tests."""
    run = results(session.config)
    if not run.hosts:
        return
    from html import escape

    from xenpass.report.html import report_html

    try:
        note = session.config.pluginmanager.get_plugin(COMPACT_TABLE).note() if run.compact else ""
        prefix.append(report_html(run, fixing=bool(session.config.getoption("fix")), compact_note=note))
    except Exception as exc:  # the rest of the page (every test) is still written
        prefix.append(f"<p>xenpass: could not render the compliance summary: {escape(exception_line(exc))}</p>")


def plain_message(report: pytest.TestReport, found: Verdict | None = None) -> str:
    """A test's outcome message as a reader wants it: a skip's `(path, line, 'Skipped: ...')` becomes its text,
    and a blocked rule names the rule it waits for without repeating that rule's reason."""
    from xenpass.report.html import blocker

    if found is not None and report.when == "call" and blocker(found):
        return f"[{found.rule}] not judged: it needs {blocker(found)}, which did not pass on this device"
    if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return report.longreprtext


def pytest_html_results_table_html(report: pytest.TestReport, data: list) -> None:
    """No log box for a test whose reason the page already says (pytest's message, or a skip's raw
    `(path, line, 'Skipped: ...')` tuple): its row's own extras say it in a sentence."""
    log = getattr(report, "xenpass_log", None)
    if log is not None:
        from html import escape

        data[:] = [escape(visible(log))] if log else []


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """The compliance JSON first, then the Rich matrix; a step that fails says so in one line, the other runs.

    Nothing here raises: an exception in a terminal-summary hook would turn the run into pytest's exit 3.
    """
    run = config.stash.get(RESULTS, None)
    if run is None or not run.hosts:
        return
    path = config.getoption("compliance_json")
    if path:
        try:
            written = run.write_json(path)
            terminalreporter.write_line(f"compliance JSON: {visible(str(written), keep_newlines=False)}")
        except Exception as exc:  # write_json leaves no earlier run's JSON behind to pass for this one's
            terminalreporter.write_line(visible(f"xenpass: could not write the compliance JSON {path}: ",
                                                keep_newlines=False) + exception_line(exc))
    try:
        from xenpass.report.terminal import print_matrix

        print_matrix(run, terminalreporter)
    except Exception as exc:
        terminalreporter.write_line(f"xenpass: could not print the compliance matrix: {exception_line(exc)}")
    if getattr(getattr(config, "option", None), "fix", False):
        try:
            from xenpass.report.terminal import print_fix_summary

            print_fix_summary(run, terminalreporter)
        except Exception as exc:
            terminalreporter.write_line(f"xenpass: could not print the --fix summary: {exception_line(exc)}")
    if config.getoption("fix_export"):
        try:
            from xenpass.fix.export import export_fixes

            done = export_fixes(run, Path(config.getoption("fix_export")), config.getoption("step_timeout"))
            terminalreporter.write_line(visible(f"xenpass: fix export: {len(done.scripts)} fix.sh written under "
                                                f"{config.getoption('fix_export')}, {len(done.playbooks)} "
                                                "Ansible fix.yml", keep_newlines=False))
            for note in done.notes:
                terminalreporter.write_line(f"xenpass: fix export: {note}")
        except Exception as exc:
            terminalreporter.write_line(f"xenpass: could not export the fix plans: {exception_line(exc)}")
    for waiver in run.unused_waivers():  # a waiver for nothing hides nothing, but it should not linger
        terminalreporter.write_line(visible(f"xenpass: warning: {waiver.describe()} matched no failure "
                                            f"(expires {waiver.expires})", keep_newlines=False), yellow=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    """No ssh process of this run outlives it: every master is told to exit, the socket directory goes."""
    CONTROL.close()


GATE_EXIT = {"compliant": 0, "waived": 0, "non-compliant": 100, "could-not-check": 101}


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A --fix that failed on a host is a failed run, even where every rule passes afterwards. With
    --gate-exit-codes, a run that got as far as judging exits 0 / 100 / 101 by the run's verdict."""
    run = session.config.stash.get(RESULTS, None)
    if run is None or exitstatus not in (0, 1):
        return  # interrupted, internal or usage error, no tests: pytest's own code stands
    from xenpass.remediate import SNAPSHOT_NOTE

    fix_failed = any(report.failed and report.failed != SNAPSHOT_NOTE for report in run.applied.values())
    if gate_exit_codes(session.config) and run.hosts:
        verdict = run.to_json()["verdict"]
        if fix_failed and verdict == "compliant":
            verdict = "could-not-check"  # the fix did not finish: what it left is not proven
        session.exitstatus = GATE_EXIT[verdict]
    elif fix_failed and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def gate_exit_codes(config: pytest.Config) -> bool:
    return bool(config.getoption("gate_exit_codes") or config.getini("xenpass_gate_exit_codes"))
