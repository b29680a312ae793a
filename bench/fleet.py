"""Fleet benchmark: wall time and peak memory of the product, a naive testinfra suite and the floor."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from tests.support.fakehost import build
from tests.support.scenarios import node03_fixed
from tests.support.sshd import Sshd, env_without_ssh_agent

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
PY = sys.executable


@dataclass
class Measure:
    seconds: float
    peak_mb: float
    rc: int


def timed(cmd: list[str], cwd: Path = REPO) -> Measure:
    """Wall time, and the peak RSS of the command's main process (GNU time's %M)."""
    stats = Path(tempfile.mktemp(prefix="xenpass-bench-"))
    start = time.monotonic()
    done = subprocess.run(["/usr/bin/time", "-o", str(stats), "-f", "%M", *cmd], cwd=cwd, capture_output=True,
                          text=True, env=env_without_ssh_agent(), timeout=3600)
    seconds = time.monotonic() - start
    peak = float(stats.read_text().split()[-1]) / 1024 if stats.exists() else 0.0
    stats.unlink(missing_ok=True)
    if done.returncode not in (0, 1):
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-2000:])
    return Measure(seconds, peak, done.returncode)


def forget_connections() -> None:
    """Every measured run starts cold: no ssh master left over from the previous one."""
    subprocess.run(["pkill", "-f", "ControlPath=/tmp/xp-"], check=False)  # xenpass.transport's per-run dirs
    subprocess.run(["pkill", "-f", "ssh: /tmp/xp-"], check=False)
    time.sleep(0.3)


def floor(config: Path, names: list[str]) -> Measure:
    start = time.monotonic()
    procs = [subprocess.Popen(["ssh", "-F", str(config), n, "true"], env=env_without_ssh_agent()) for n in names]
    rc = max(p.wait() for p in procs)
    return Measure(time.monotonic() - start, 0.0, rc)


def product(config: Path, names: list[str], work: Path) -> Measure:
    forget_connections()
    hosts = ",".join(f"ssh://{n}" for n in names)
    return timed([PY, "-m", "pytest", "checks/", "-q", "-p", "no:cacheprovider", f"--hosts={hosts}",
                  f"--ssh-config={config}", f"--compliance-json={work / 'c.json'}", f"--html={work / 'r.html'}"])


def naive(config: Path, names: list[str]) -> Measure:
    hosts = ",".join(f"ssh://{n}" for n in names)
    return timed([PY, "-m", "pytest", "bench/naive", "-q", "-p", "no:cacheprovider", f"--hosts={hosts}",
                  f"--ssh-config={config}"])


def start_fleet(work: Path, count: int) -> list[Sshd]:
    servers = []
    base = node03_fixed()
    for i in range(1, count + 1):
        name = f"h{i:02d}"
        root = build(replace(base, name=name, devices=[replace(d) for d in base.devices]), work / name / "root")
        servers.append(Sshd(work / name / "sshd", root, name=name).start())
    return servers


def write_config(path: Path, servers: list[Sshd], one_way_ms: float) -> None:
    relay = f"{PY} {REPO / 'bench' / 'delay_relay.py'} 127.0.0.1 %p {one_way_ms:g}"
    path.write_text("".join(s.config_block(proxy=relay) for s in servers))


def measure(sizes: list[int], rtt_ms: float, work: Path) -> list[dict]:
    servers = start_fleet(work, max(sizes))
    rows = []
    try:
        for n in sizes:
            config = work / f"ssh_config_{n}"
            write_config(config, servers[:n], rtt_ms / 2)
            names = [s.name for s in servers[:n]]
            f, p, v = floor(config, names), product(config, names, work), naive(config, names)
            row = {"hosts": n, "rtt_ms": rtt_ms, "product_s": round(p.seconds, 2), "naive_s": round(v.seconds, 2),
                   "floor_s": round(f.seconds, 2), "product_over_naive": round(p.seconds / v.seconds, 3),
                   "product_over_floor": round(p.seconds / f.seconds, 2), "product_peak_mb": round(p.peak_mb, 1),
                   "naive_peak_mb": round(v.peak_mb, 1), "product_rc": p.rc, "naive_rc": v.rc,
                   # of the product's time, how much was collecting (all hosts at once): the rest is pytest
                   # start-up, rules and reports, which do not grow with the RTT
                   "product_collect_s": json.loads((work / "c.json").read_text()).get("collect_seconds")}
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        forget_connections()
        for s in servers:
            s.stop()
    return rows


def markdown(rows: list[dict]) -> str:
    head = ("| hosts | product s | of which collecting s | naive s | floor s | product/naive | product/floor | "
            "product peak MB | naive peak MB |\n|---|---|---|---|---|---|---|---|---|\n")
    return head + "".join(
        f"| {r['hosts']} | {r['product_s']} | {r.get('product_collect_s')} | {r['naive_s']} | {r['floor_s']} | "
        f"{r['product_over_naive']} | "
        f"{r['product_over_floor']} | {r['product_peak_mb']} | {r['naive_peak_mb']} |\n" for r in rows)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["hosts"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label in (("naive_s", "naive testinfra suite"), ("product_s", "xenpass"), ("floor_s", "floor: ssh true")):
        values = [r[key] for r in rows]
        ax.plot(sizes, values, marker="o", label=label)
        for n, value in zip(sizes, values, strict=True):
            ax.annotate(f"{value:.1f}", (n, value), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("hosts (real sshd on 127.0.0.1)")
    ax.set_yscale("log")  # the naive suite is ~40x slower: on a linear axis product and floor merge
    ax.set_ylabel("wall time, s (log scale)")
    ax.set_title(f"Checking a fleet at {rows[0]['rtt_ms']:g} ms RTT")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/run")
    parser.add_argument("--sizes", default="1,10,50")
    parser.add_argument("--rtt-ms", type=float, default=50.0)
    parser.add_argument("--skip-report-scale", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/run: needs root (chroot fake hosts, sshd)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="xenpass-fleet-") as tmp:
        rows = measure([int(s) for s in args.sizes.split(",")], args.rtt_ms, Path(tmp))
    (OUT / "fleet.json").write_text(json.dumps(rows, indent=1) + "\n")
    (OUT / "fleet.md").write_text(markdown(rows))
    plot(rows, OUT / "fleet.png")
    print(markdown(rows))
    print(f"wrote {OUT / 'fleet.json'}, {OUT / 'fleet.md'}, {OUT / 'fleet.png'}")
    if not args.skip_report_scale:
        from bench.report_scale import main as report_scale

        report_scale()


if __name__ == "__main__":
    main()
