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
    peak_processes: int = 0


def process_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, RSS kB, command line) from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            rss = next((int(line.split()[1]) for line in (entry / "status").read_text().splitlines()
                        if line.startswith("VmRSS:")), 0)
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        table[int(entry.name)] = (ppid, rss, cmdline)
    return table


def tree_usage(root: int) -> tuple[int, int]:
    """RSS kB and process count of `root`, its descendants, and the ssh masters it left (ControlPersist
    daemonises them away from the tree; they are found by the run's private ControlPath dir)."""
    table = process_table()
    members, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _, _) in table.items() if ppid == parent and pid not in members]
        members.update(children)
        frontier += children
    members |= {pid for pid, (_, _, cmd) in table.items() if cmd.startswith("ssh: ") and "/xp-" in cmd}
    return sum(table[p][1] for p in members if p in table), len(members)


def timed(cmd: list[str], cwd: Path = REPO, nofile: int | None = None) -> Measure:
    """Wall time, and the peak RSS of the command with every process it started (ssh included),
    sampled every 500 ms (a /proc scan of a 200-host fleet costs CPU the run would miss); with `nofile`, run
    under that open-file limit (ulimit -n)."""
    def limit() -> None:
        if nofile:
            import resource

            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env_without_ssh_agent(), preexec_fn=limit)
    peak_kb, peak_procs = 0, 0
    while proc.poll() is None:
        kb, procs = tree_usage(proc.pid)
        peak_kb, peak_procs = max(peak_kb, kb), max(peak_procs, procs)
        time.sleep(0.5)
    stdout, stderr = proc.communicate()
    seconds = time.monotonic() - start
    if proc.returncode not in (0, 1) or "Too many open files" in stdout + stderr:
        sys.stderr.write(stdout[-2000:] + stderr[-2000:])
    return Measure(seconds, peak_kb / 1024, proc.returncode, peak_procs)


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


def product(config: Path, names: list[str], work: Path, nofile: int | None = None) -> Measure:
    forget_connections()
    hosts = ",".join(f"ssh://{n}" for n in names)
    return timed([PY, "-m", "pytest", "checks/", "-q", "-p", "no:cacheprovider", f"--hosts={hosts}",
                  f"--ssh-config={config}", f"--compliance-json={work / 'c.json'}", f"--html={work / 'r.html'}",
                  f"--image-cache={work / 'image-cache'}"], nofile=nofile)


def naive(config: Path, names: list[str]) -> Measure:
    hosts = ",".join(f"ssh://{n}" for n in names)
    return timed([PY, "-m", "pytest", "bench/naive", "-q", "-p", "no:cacheprovider", f"--hosts={hosts}",
                  f"--ssh-config={config}"])


def ansible(config: Path, names: list[str], work: Path) -> Measure:
    """ansible/collect.yml with one fork per host, then the offline judgement of its snapshots."""
    inventory = work / "ansible-hosts.ini"
    inventory.write_text("[fleet]\n" + "".join(
        f"{n} ansible_host={n} ansible_ssh_common_args='-F {config}' ansible_ssh_transfer_method=piped "
        "ansible_remote_tmp=/tmp/.ansible\n" for n in names))
    snapshots = work / "ansible-snapshots"
    for old in snapshots.glob("*.json"):
        old.unlink()
    play = [str(Path(PY).parent / "ansible-playbook"), "-i", str(inventory), "-f", str(len(names)),
            "ansible/collect.yml", "-e", f"xenpass_work={work / 'ansible-work'}",
            "-e", f"xenpass_snapshots={snapshots}"]
    judge = [PY, "-m", "pytest", "checks/", "-q", "-p", "no:cacheprovider", f"--snapshot={snapshots}",
             f"--compliance-json={work / 'a.json'}", f"--html={work / 'a.html'}"]
    first, second = timed(play), timed(judge)
    judged = len(json.loads((work / "a.json").read_text())["hosts"])
    return Measure(first.seconds + second.seconds, max(first.peak_mb, second.peak_mb),
                   first.rc if judged == len(names) else 99, first.peak_processes)


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


def measure(sizes: list[int], rtt_ms: float, work: Path, naive_max: int, nofile: int | None,
            ansible_sizes: set[int]) -> list[dict]:
    servers = start_fleet(work, max(sizes))
    rows = []
    try:
        for n in sizes:
            config = work / f"ssh_config_{n}"
            write_config(config, servers[:n], rtt_ms / 2)
            names = [s.name for s in servers[:n]]
            f, p = floor(config, names), product(config, names, work, nofile)
            v = naive(config, names) if n <= naive_max else None
            a = ansible(config, names, work) if n in ansible_sizes else None
            report = json.loads((work / "c.json").read_text())
            hosts = report.get("hosts", [])
            row = {"hosts": n, "rtt_ms": rtt_ms, "nofile": nofile, "product_s": round(p.seconds, 2),
                   "naive_s": round(v.seconds, 2) if v else None, "floor_s": round(f.seconds, 2),
                   "product_over_naive": round(p.seconds / v.seconds, 3) if v else None,
                   "product_over_floor": round(p.seconds / f.seconds, 2), "product_peak_mb": round(p.peak_mb, 1),
                   "product_peak_processes": p.peak_processes,
                   "naive_peak_mb": round(v.peak_mb, 1) if v else None, "product_rc": p.rc,
                   "naive_rc": v.rc if v else None,
                   "ansible_s": round(a.seconds, 2) if a else None, "ansible_rc": a.rc if a else None,
                   "ansible_peak_mb": round(a.peak_mb, 1) if a else None,
                   "hosts_judged": sum(1 for h in hosts if h.get("reachable")),
                   "bytes_from_host_mean": round(sum(h.get("bytes_received", 0) for h in hosts) / max(1, len(hosts))),
                   # of the product's time, how much was collecting: the rest is pytest start-up, rules and
                   # reports, which do not grow with the RTT
                   "product_collect_s": report.get("collect_seconds")}
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        forget_connections()
        for s in servers:
            s.stop()
    return rows


def markdown(rows: list[dict]) -> str:
    head = ("| hosts | judged | product s | of which collecting s | naive s | ansible playbook + judge s | floor s | "
            "product/naive | product/floor | product peak MB (with ssh) | peak processes | naive peak MB | "
            "bytes/host |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    return head + "".join(
        f"| {r['hosts']} | {r['hosts_judged']} | {r['product_s']} | {r.get('product_collect_s')} | "
        f"{r['naive_s'] or '—'} | {r['ansible_s'] or '—'} | "
        f"{r['floor_s']} | {r['product_over_naive'] or '—'} | {r['product_over_floor']} | "
        f"{r['product_peak_mb']} | {r['product_peak_processes']} | {r['naive_peak_mb'] or '—'} | "
        f"{r['bytes_from_host_mean']} |\n" for r in rows)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label in (("naive_s", "naive testinfra suite"), ("ansible_s", "ansible/collect.yml + judge"),
                       ("product_s", "xenpass"), ("floor_s", "floor: ssh true")):
        points = [(r["hosts"], r[key]) for r in rows if r[key] is not None]
        ax.plot([n for n, _ in points], [v for _, v in points], marker="o", label=label)
        for n, value in points:
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
    parser.add_argument("--sizes", default="1,10,50,200")
    parser.add_argument("--naive-max", type=int, default=10, help="run the naive suite up to this many hosts "
                        "(it takes ~7 s per host at 50 ms RTT)")
    parser.add_argument("--ansible-sizes", default="50", help="fleet sizes at which to time ansible/collect.yml")
    parser.add_argument("--nofile", type=int, help="run the product under this open-file limit (ulimit -n)")
    parser.add_argument("--rtt-ms", type=float, default=50.0)
    parser.add_argument("--skip-report-scale", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/run: needs root (chroot fake hosts, sshd)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="xenpass-fleet-") as tmp:
        rows = measure([int(s) for s in args.sizes.split(",")], args.rtt_ms, Path(tmp), args.naive_max, args.nofile,
                       {int(x) for x in args.ansible_sizes.split(",") if x})
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
