"""The collector under Ansible: `ansible/collect.yml` runs it on any inventory with forks; this module renders
the script for it and turns what each host printed into snapshots that `pytest checks/ --snapshot DIR` judges.

    python -m xenpass.playbook render WORK          # WORK/collect.sh (+ WORK/token)
    python -m xenpass.playbook snapshots WORK DIR   # WORK/<host>.out -> DIR/<host>.json

Ansible hands a module's stdout over as text; the script's output is therefore base64-encoded on the host
(`base64`, else `od`), so every byte of every file arrives exactly, as with xenpass's own transport.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import secrets
import sys
from pathlib import Path

from xenpass.facts.collector import parse_output, render_script
from xenpass.facts.raw import save_snapshot
from xenpass.text import from_bytes

WRAPPER = """#!/bin/sh
# xenpass collector, wrapped for Ansible's script module: the output goes back base64-encoded.
collect() {{
{script}
}}
if command -v base64 >/dev/null 2>&1; then
  echo XENPASS-BASE64; collect 2>/dev/null | base64
else
  echo XENPASS-HEX; collect 2>/dev/null | od -An -v -tx1
fi
"""


def render(work: Path) -> Path:
    """The collector for every host of the play, one token for the run."""
    work.mkdir(parents=True, exist_ok=True)
    for stale in work.glob("*.out"):  # a previous run's outputs carry another token
        stale.unlink()
    token = secrets.token_hex(8)
    body = render_script(token).replace("exit 0\n", "return 0\n")  # a function now: `exit` would end the wrapper
    script = work / "collect.sh"
    script.write_text(WRAPPER.format(script=body))
    script.chmod(0o700)
    (work / "token").write_text(token + "\n")
    return script


def decode(text: str) -> bytes:
    head, _, body = text.lstrip().partition("\n")
    if head.strip() == "XENPASS-BASE64":
        return base64.b64decode("".join(body.split()))
    if head.strip() == "XENPASS-HEX":
        return bytes.fromhex("".join(body.split()))
    raise ValueError("not the output of the xenpass collector")


def snapshots(work: Path, out: Path) -> list[str]:
    """One snapshot per `<host>.out`; returns the problems (a host whose output cannot be read)."""
    token = (work / "token").read_text().strip()
    problems = []
    for output in sorted(work.glob("*.out")):
        host = output.name.removesuffix(".out")
        try:
            text = from_bytes(decode(output.read_text()))
        except (ValueError, binascii.Error) as exc:
            problems.append(f"{host}: {exc}")
            continue
        if f"==XP:{token}:" not in text:
            problems.append(f"{host}: no collector output (token {token} not found)")
            continue
        save_snapshot(parse_output(text, token, host), out)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xenpass.playbook")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("render").add_argument("work", type=Path)
    snap = sub.add_parser("snapshots")
    snap.add_argument("work", type=Path)
    snap.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.command == "render":
        print(render(args.work))
        return 0
    problems = snapshots(args.work, args.out)
    for problem in problems:
        print(f"xenpass: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
