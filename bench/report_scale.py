"""Report scale: HTML + JSON for 1,000 hosts x 2 devices x 7 rules, from snapshots."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from xenpass.facts.raw import load_snapshot, save_snapshot

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
SOURCES = ("node03-broken-mpt2sas-alias", "node03-fixed")


def make_snapshots(directory: Path, count: int) -> None:
    for i in range(count):
        raw = load_snapshot(REPO / "fixtures" / f"{SOURCES[i % 2]}.json")
        raw.host = f"dom0-{i:04d}"
        save_snapshot(raw, directory)


def main(count: int = 1000) -> dict:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="xenpass-scale-") as tmp:
        snaps = Path(tmp) / "snaps"
        make_snapshots(snaps, count)
        html, result = OUT / "scale-report.html", OUT / "scale-compliance.json"
        start = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "pytest", "checks/", "-q", "-p", "no:cacheprovider",
                               "-p", "bench.timing", "--snapshot", str(snaps), "--device", "01:00.0", "--device",
                               "02:00.0", f"--html={html}", f"--compliance-json={result}", "--tb=no"],
                              cwd=REPO, capture_output=True, text=True, timeout=1800)
        total = time.monotonic() - start
    written = re.search(r"reports written in ([\d.]+) s", done.stderr)
    tests = sum(len(d["rules"]) for h in json.loads(result.read_text())["hosts"] for d in h["devices"])
    figures = {"hosts": count, "tests": tests, "pytest_wall_s": round(total, 1),
               "reports_written_s": float(written.group(1)) if written else None,
               "html_mb": round(html.stat().st_size / 2**20, 2), "json_mb": round(result.stat().st_size / 2**20, 2)}
    (OUT / "report-scale.json").write_text(json.dumps(figures, indent=1) + "\n")
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
