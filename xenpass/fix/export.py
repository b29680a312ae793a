"""A fix plan as an artifact: a POSIX `fix.sh` a change-review process can read, approve and run as root.

It runs the very scripts `--fix` sends (xenpass.fix.apply): every host path quoted by the one quoting path,
the content guard (a file that changed since the facts were collected is left alone), a backup beside the
resolved file before it is replaced, stop at the first failure. Added for a script that may be run twice:
an edit whose file already holds the new content is skipped, and the plan's commands (initramfs rebuild,
`xl pci-assignable-add`) run only when an edit of this run changed a file, or when the plan has no edit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from xenpass.fix.apply import command_backup_script, edit_existing_script, edit_new_script, q, stamp
from xenpass.fix.base import STEP_TIMEOUT_DEFAULT, Command, FileEdit, Plan
from xenpass.text import as_bytes, safe_file_stem, visible

READABLE_SAY = ("say() { case $1 in B) printf 'xenpass: backup %s\\n' \"$2\" >&2 ;; "
                "T) printf 'xenpass: file %s\\n' \"$2\" >&2 ;; esac; }")
NUL_SAY = "say() { printf '%s%s\\0' \"$1\" \"$2\"; }"

HEADER = """#!/bin/sh
# xenpass fix for {host} {bdf}, planned {when} from facts collected {collected}.
# Review, then run as root on that host: sh fix.sh. Stops at the first failing step. Every file is backed up
# beside the file it resolves to (.NAME.xenpass-{when}) before it is replaced; to roll back, move each
# "backup" printed below over its "file", last step first.
set -u
changed=
stop() {{ printf 'xenpass: step %s failed (exit %s): %s\\n' "$1" "$2" "$3" >&2; exit "$2"; }}
"""


def step_label(step: FileEdit | Command) -> str:
    return f"edit {step.path}" if isinstance(step, FileEdit) else f"run {' '.join(step.argv)}"


def edit_script(step: FileEdit, when: str) -> str:
    return edit_new_script(step, when) if step.before is None else edit_existing_script(step, when)


def already_done(step: FileEdit) -> str:
    """A shell test: the file already holds the plan's new content."""
    after = hashlib.sha256(as_bytes(step.after)).hexdigest()
    return f"[ \"$(sha256sum < {q(step.path)} 2>/dev/null | cut -c1-64)\" = {q(after)} ]"


def fix_script(plan: Plan, bdf: str, when: str, collected: str) -> str:
    """The whole plan as one POSIX script (each step in its own subshell, as --fix runs them)."""
    out = [HEADER.format(host=visible(plan.host, keep_newlines=False), bdf=bdf, when=when,
                         collected=collected or "at an unknown time")]
    edits = any(isinstance(s, FileEdit) for s in plan.steps)
    for number, step in enumerate(plan.steps, start=1):
        label = q(visible(step_label(step), keep_newlines=False))
        out.append(f"\n# step {number}: {visible(step_label(step), keep_newlines=False)}\n"
                   f"#   why: {visible(step.why, keep_newlines=False)}\n")
        if isinstance(step, FileEdit):
            body = edit_script(step, when).replace(NUL_SAY, READABLE_SAY)
            out.append(f"if {already_done(step)}; then\n  printf 'xenpass: step {number}: already applied\\n' >&2\n"
                       f"else\n( {body}\n) || stop {number} $? {label}\nchanged=1\nfi\n")
            continue
        backup = ""
        if step.backup:
            backup = (f"( {command_backup_script(step.backup, when).replace(NUL_SAY, READABLE_SAY)}\n"
                      f") || stop {number} $? {label}\n")
        condition = '[ -n "$changed" ]' if edits else "true"
        out.append(f"if {condition}; then\n{backup}{' '.join(q(a) for a in step.argv)} || stop {number} $? {label}\n"
                   f"else\n  printf 'xenpass: step {number}: skipped, no file changed in this run\\n' >&2\nfi\n")
    out.append("\nprintf 'xenpass: done%s\\n' \"${changed:+ (files changed: reboot for the new boot state)}\" >&2\n")
    return "".join(out)


@dataclass
class Exported:
    """What --fix-export wrote, and why a host got no playbook."""

    scripts: list[Path] = field(default_factory=list)
    playbooks: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def export_fixes(run, directory: Path, step_timeout: float | None = None) -> Exported:
    """Per host x device with steps, planned from the facts collected before any --fix: fix.sh, plan.json and
    an Ansible fix.yml (with DIR/HOST/inventory.yml naming that one host)."""
    from xenpass.fix.ansible_export import boot_mtimes, fix_playbook, inventory_text, ssh_connection

    out, when = Exported(), stamp()
    timeout = max(1, int(step_timeout or STEP_TIMEOUT_DEFAULT))
    for host in run.hosts or []:
        backend = getattr(host.target.runner, "backend", None)
        if backend is not None:
            connection, why_not = ssh_connection(backend)
        else:
            connection = None
            why_not = "a snapshot is not a host" if host.target.snapshot else "its connection is not ssh"
        for bdf in sorted(run.reported.get(host.name, {})):
            if host.facts is None:
                continue
            plan = run.plan(host, bdf)
            if not plan.steps:
                continue
            collected = host.facts.raw.collected_at
            target = directory / safe_file_stem(host.name) / str(bdf).replace(":", "_")
            target.mkdir(parents=True, exist_ok=True)
            script = target / "fix.sh"
            script.write_text(fix_script(plan, str(bdf), when, collected))
            script.chmod(0o700)
            (target / "plan.json").write_text(json.dumps(plan.to_json(), indent=1) + "\n")
            out.scripts.append(script)
            if connection is None:
                out.notes.append(visible(f"{host.name} {bdf}: no fix.yml: {why_not}", keep_newlines=False))
                continue
            text, files = fix_playbook(plan, str(bdf), when, collected, connection, timeout=timeout,
                                       image_mtimes=boot_mtimes(host.facts))
            for name, data in files.items():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                (target / name).write_bytes(data)
            (target / "fix.yml").write_text(text)
            (target.parent / "inventory.yml").write_text(inventory_text(connection))
            out.playbooks.append(target / "fix.yml")
    return out
