"""Apply a plan on a host, leaving it no worse than it was: every change is backed up, reported and undoable.

One remote script per step (two for a command with a backup: the backup, then the command), each within the
step deadline:

- edit of an existing file: check the path still holds the bytes the plan was made from; resolve it on the host
  (`readlink -f`: a symlinked config is edited where it points, the link is never touched); `cp -a` the resolved
  file to a part file, renamed once complete to the backup `.FILE.xenpass-STAMP` beside it (a name nobody holds;
  hidden, as xendomains starts every file in /etc/xen/auto and initramfs-tools sources every file in conf.d,
  but none of them reads dot-files);
  make a temp file beside it as a `cp -a` copy (mode, owner, times, and ACLs and xattrs as far as this host's
  `cp` keeps them: GNU cp does, busybox cp does not), give it the new bytes, `mv` it over the file (atomic).
- edit creating a file: it must not exist; its directories are made; a 0644 root:root temp file beside it is
  renamed into place.
- command with a backup (the initramfs): the resolved file is backed up as above, then the command runs.

Each script prints, NUL-terminated, what it resolved and what it made as it goes, so a failing step still says
which backup exists. A step cut short (its deadline, ssh exit 255) loses that output: the host is then asked
what is there (a second, read-only script), and the rollback is built from its answer, assuming the step ran
in part. Every path and message reaches the remote shell through `shlex.quote` as a variable assignment; the
script bodies are constants and print host text with `printf '%s'` only.

The report lists every backup as soon as it exists and the rollback, newest first, that restores exactly what
was there: a backup moved back over the resolved file, a created file and its new directories removed, a
backup or temp file a failed step left removed.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from xenpass.fix.base import Command, FileEdit, Plan
from xenpass.text import as_bytes, exception_line, from_bytes
from xenpass.transport import HostTimeout

# How a failed step ended (ApplyReport.fault):
REFUSED = "exit"  # the host said no (a non-zero exit): an edit changed nothing; a command may have, in part
TIMEOUT = "timeout"  # the step overran its deadline and was ended on both sides: it may have run in part
CONNECTION = "connection"  # ssh exit 255: the connection dropped mid-step; it may have run in part
ERROR = "error"  # the step could not be started, or died oddly (a signal, a shell error)

GUARD_RC = 3  # our scripts: the file is not as the plan expected (nothing changed)
CLEAN_RC = 4  # our scripts: failed before changing anything (what it had made is removed)
TAKEN_RC = 75  # the backup name is taken: the step is tried again with the next name
BACKUP_TRIES = 20


@dataclass
class ApplyReport:
    applied: list[str] = field(default_factory=list)
    failed: str | None = None
    backups: list[str] = field(default_factory=list)  # every backup the run left on the host, as soon as it exists
    rollback: list[str] = field(default_factory=list)  # shell commands, in the order to run them
    fault: str | None = None  # how the failed step ended: exit, timeout, connection, error

    def to_json(self) -> dict:
        return {"applied": self.applied, "failed": self.failed, "backups": self.backups, "rollback": self.rollback,
                "fault": self.fault}

    def render(self) -> str:
        lines = [f"applied: {a}" for a in self.applied]
        if self.failed:
            lines.append(f"FAILED: {self.failed} (remaining steps not run)")
        lines += [f"backup: {b}" for b in self.backups]
        lines += [f"rollback: {r}" for r in self.rollback]
        return "\n".join(lines) or "nothing applied"

    def undo(self, *commands: str) -> None:
        """A step's undo commands (in the order to run them) go before those of the steps run earlier."""
        self.rollback[:0] = list(commands)


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S")


def q(text: str) -> str:
    """The one way host text (paths, messages) reaches a remote shell: one single-quoted word."""
    return shlex.quote(text)


def assign(**values: str) -> str:
    """Shell variable assignments, every value quoted: the only host text in a script."""
    return "".join(f"{name}={q(value)}\n" for name, value in values.items())


# `fail RC PATH MESSAGE`: one line on stderr, every part an argument of printf's constant format.
# `resolve VAR PATH`: VAR = `readlink -f -- PATH`, a trailing newline in a file name kept (the `x` guards it).
# `names`: the backup, its part file and the temp file, beside the resolved file $t.
# `say TAG PATH`: a NUL-terminated record on stdout (T target, B backup, P part file, N temp file, A absent).
PRELUDE = r"""fail() { printf 'xenpass: %s: %s\n' "$2" "$3" >&2; exit "$1"; }
resolve() { _r=$(readlink -f -- "$2" && echo x) || fail 4 "$2" 'cannot resolve the path'; eval "$1=\${_r%??}"; }
names() {
  d=${t%/*}; n=${t##*/}; b=$d/.$n.xenpass-$when; part=$d/.$n.xenpass-part-$when; tmp=$d/.$n.xenpass-new-$when
}
say() { printf '%s%s\0' "$1" "$2"; }
exists() { [ -e "$1" ] || [ -L "$1" ]; }
"""

# The content guard: what the path holds hashes to $digest, the hash of the bytes the plan was made from.
DIGEST_GUARD = r"""h=$(sha256sum < "$p" 2>/dev/null | cut -c1-64)
[ "$h" = "$digest" ] || fail 3 "$p" 'changed since facts were collected'
"""

# Files (and, for a new file, directories) a step made but did not finish with go when its shell exits; a
# signal (the watchdog's TERM when the connection ends) exits through the same trap.
CLEANUP = r"""finished=; part=${part-}; tmp=${tmp-}; made=${made-}
cleanup() {
  [ -n "$finished" ] && return
  [ -z "$part" ] || rm -f -- "$part"; [ -z "$tmp" ] || rm -f -- "$tmp"
  x=$directory
  while [ -n "$made" ] && [ "$x" != "$made" ] && [ -n "$x" ]; do rmdir -- "$x" 2>/dev/null; x=${x%/*}; done
}
trap cleanup EXIT; trap 'exit 143' HUP INT TERM
"""

# Back up the resolved file $t: a part file first, renamed to the backup once complete (exit 75: name taken).
BACKUP = r"""if exists "$b"; then exit 75; fi
err=$( (set -C; : > "$part") 2>&1) || fail 4 "$part" "cannot create the backup: $err"
err=$(cp -af -- "$t" "$part" 2>&1) || fail 4 "$t" "cannot back it up: $err"
err=$(mv -f -- "$part" "$b" 2>&1) || fail 4 "$part" "cannot name the backup $b: $err"
part=
say B "$b"
"""

EDIT_EXISTING = PRELUDE + DIGEST_GUARD + r"""resolve t "$p"
if [ ! -f "$t" ]; then fail 4 "$t" 'is not a regular file'; fi
names; directory=
say T "$t"
""" + CLEANUP + BACKUP + r"""err=$( (set -C; : > "$tmp") 2>&1) || fail 4 "$tmp" "cannot create the temp file: $err"
err=$(cp -af -- "$t" "$tmp" 2>&1) || fail 4 "$t" "cannot copy it: $err"
err=$(printf '%s' "$payload" | base64 -d 2>&1 > "$tmp") || fail 4 "$tmp" "cannot write the new content: $err"
err=$(mv -f -- "$tmp" "$t" 2>&1) || fail 4 "$t" "cannot replace it: $err"
finished=1
"""

# A new file: made at the path as given (a directory link on the way is followed; nothing is resolved, nothing
# is replaced). `made`: the nearest existing ancestor of its directory; what is below it was made here.
EDIT_NEW = PRELUDE + r"""if exists "$p"; then fail 3 "$p" 'appeared since facts were collected'; fi
made=$directory
while ! exists "$made"; do made=${made%/*}; [ -n "$made" ] || made=/; done
if [ ! -d "$made" ]; then fail 4 "$made" 'is not a directory'; fi
say E "$made"
""" + CLEANUP + r"""err=$(mkdir -p -- "$directory" 2>&1) || fail 4 "$directory" "cannot make the directory: $err"
err=$( (umask 077; set -C; : > "$tmp") 2>&1) || fail 4 "$tmp" "cannot create the temp file: $err"
err=$(printf '%s' "$payload" | base64 -d 2>&1 > "$tmp") || fail 4 "$tmp" "cannot write the new content: $err"
err=$( (chmod 644 "$tmp" && chown 0:0 "$tmp") 2>&1) || fail 4 "$tmp" "cannot make it 0644 root:root: $err"
err=$(mv -f -- "$tmp" "$p" 2>&1) || fail 4 "$p" "cannot create it: $err"
finished=1
"""

# The file a command rewrites, backed up before it runs (A: there is none yet).
BACKUP_FOR_COMMAND = PRELUDE + r"""if ! exists "$p"; then say A "$p"; exit 0; fi
resolve t "$p"
if [ ! -f "$t" ]; then fail 4 "$t" 'is not a regular file: cannot back it up'; fi
names; directory=; tmp=
say T "$t"
""" + CLEANUP + BACKUP + "finished=1\n"

# After a step was cut short: what is there now (read-only).
LEFT_BY_EXISTING = PRELUDE + r"""resolve t "$p"
names
say T "$t"
if exists "$b"; then say B "$b"; fi
if exists "$part"; then say P "$part"; fi
if exists "$tmp"; then say N "$tmp"; fi
"""

LEFT_BY_NEW = PRELUDE + r"""if exists "$p"; then say T "$p"; fi
if exists "$tmp"; then say N "$tmp"; fi
"""


@dataclass
class Outcome:
    ok: bool
    fault: str | None = None  # None when ok
    detail: str = ""
    records: dict[str, str] = field(default_factory=dict)  # what the script said it resolved and made

    @property
    def clean(self) -> bool:
        """The script stopped where it meant to (our scripts: nothing changed; a command: it said no)."""
        return self.fault == REFUSED

    @property
    def taken(self) -> bool:
        return self.clean and self.detail == f"exit {TAKEN_RC}"


def records(stdout: bytes) -> dict[str, str]:
    """`say TAG PATH` records: TAG -> PATH (host bytes kept in str)."""
    out = {}
    for field_ in stdout.split(b"\0")[:-1]:
        if field_[:1].isalpha():
            out[chr(field_[0])] = from_bytes(field_[1:])
    return out


def run(host, script: str, timeout: float | None, ours: bool = True) -> Outcome:
    """One remote script, never raising: a deadline, a dropped connection or a local failure is an Outcome."""
    try:
        result = host.run_script(script, timeout)
    except HostTimeout as exc:
        return Outcome(False, TIMEOUT, str(exc))
    except Exception as exc:  # TransportProblem, OSError starting ssh, a backend's own errors
        return Outcome(False, ERROR, f"could not run it: {exception_line(exc)}")
    said = records(result.stdout) if ours else {}
    if result.rc == 0:
        return Outcome(True, records=said)
    stderr = from_bytes(result.stderr or b"").strip()
    lines = stderr.splitlines() or from_bytes(result.stdout or b"").strip().splitlines()
    last = lines[-1] if lines else ""
    if result.rc == 255:
        return Outcome(False, CONNECTION, "the connection was lost (ssh exit 255) while it ran"
                       + (f": {last}" if last else ""), said)
    if not ours:
        return Outcome(False, REFUSED, f"exit {result.rc}: {last or 'no output'}")
    if result.rc in (GUARD_RC, CLEAN_RC) and "xenpass: " in stderr:
        return Outcome(False, REFUSED, stderr[stderr.rindex("xenpass: ") + len("xenpass: "):], said)
    if result.rc == TAKEN_RC:
        return Outcome(False, REFUSED, f"exit {TAKEN_RC}", said)
    # Our scripts exit 0, 3, 4 or 75 by design; anything else (a signal, a shell error) leaves the step unknown.
    return Outcome(False, ERROR, f"exit {result.rc}: {last or 'no output'}", said)


def edit_existing_script(step: FileEdit, when: str) -> str:
    """Replace an existing file (backups named with `when`), guarded by the hash of the bytes it had."""
    digest = hashlib.sha256(as_bytes(step.before)).hexdigest()  # the exact bytes the host had
    payload = base64.b64encode(as_bytes(step.after)).decode()
    return assign(p=step.path, digest=digest, payload=payload, when=when) + EDIT_EXISTING


def new_file_tmp(path: str, when: str) -> str:
    """Where a new file is written before it is renamed into place."""
    return f"{parent(path).rstrip('/')}/.{path.rsplit('/', 1)[1]}.xenpass-new-{when}"


def edit_new_script(step: FileEdit, when: str) -> str:
    """Create a file that must not exist yet."""
    payload = base64.b64encode(as_bytes(step.after)).decode()
    return assign(p=step.path, directory=parent(step.path), tmp=new_file_tmp(step.path, when),
                  payload=payload) + EDIT_NEW


def command_backup_script(path: str, when: str) -> str:
    """Back up the file a command rewrites (or say it is absent)."""
    return assign(p=path, when=when) + BACKUP_FOR_COMMAND


def rm(path: str) -> str:
    return f"rm -f -- {q(path)}"


def restore(backup: str, target: str) -> str:
    return f"mv -f -- {q(backup)} {q(target)}"


def parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def made_dirs(directory: str, existing: str) -> list[str]:
    """The directories `mkdir -p directory` makes below its nearest existing ancestor, deepest first."""
    made = []
    while directory not in (existing, "/", ""):
        made.append(directory)
        directory = parent(directory)
    return made


class Applier:
    """One plan on one host: runs its steps and keeps the report true after each remote script."""

    def __init__(self, host, timeout: float | None, when: str) -> None:
        self.host, self.timeout, self.when = host, timeout, when
        self.report = ApplyReport()

    def fail(self, label: str, outcome: Outcome, note: str = "") -> bool:
        self.report.failed = f"{label}: {outcome.detail}{note}"
        self.report.fault = outcome.fault
        return False

    def names(self, attempt: int) -> str:
        return self.when + (f"-{attempt + 1}" if attempt else "")

    def ask(self, script: str) -> tuple[dict[str, str] | None, str]:
        """After a step was cut short: what is there now, or None and why the host cannot say."""
        found = run(self.host, script, self.timeout)
        if found.ok:
            return found.records, ""
        return None, f"; the host could not be asked what the step left ({found.detail}): look for .*.xenpass-*"

    def left_behind(self, step_path: str, when: str, restore_backup: bool) -> str:
        """After a step cut short: list the backup it made, and undo what it may have done. A note on failure."""
        there, note = self.ask(assign(p=step_path, when=when) + LEFT_BY_EXISTING)
        if there is None or "T" not in there:
            return note or "; the host did not say where the path resolves: look for .*.xenpass-*"
        target = there["T"]
        if "B" in there:  # a complete backup: the file may have been replaced after it, so it goes back
            self.report.backups.append(there["B"])
            self.report.undo(*[rm(there[k]) for k in "PN" if k in there],
                             restore(there["B"], target) if restore_backup else rm(there["B"]))
        else:  # no backup yet: the file itself was not touched
            self.report.undo(*[rm(there[k]) for k in "PN" if k in there])
        return ""

    def edit(self, step: FileEdit) -> bool:
        label = f"edit {step.path}"
        if step.before is None:
            return self.create(step, label)
        for attempt in range(BACKUP_TRIES):
            when = self.names(attempt)
            done = run(self.host, edit_existing_script(step, when), self.timeout)
            if not done.taken:
                break
        else:
            return self.fail(label, Outcome(False, REFUSED, f"no free backup name for {step.path}"))
        said = done.records
        if done.ok and not {"B", "T"} <= said.keys():  # an odd shell: what it did is not known
            done = Outcome(False, ERROR, "the host did not say what it backed up")
        if done.ok:
            self.report.backups.append(said["B"])
            self.report.undo(restore(said["B"], said["T"]))
            return True
        if done.clean:  # stopped before replacing the file (the script removed its part and temp files)
            if "B" in said:
                self.report.backups.append(said["B"])
                self.report.undo(rm(said["B"]))  # the file is as it was: its backup is redundant
            return self.fail(label, done)
        return self.fail(label, done, self.left_behind(step.path, when, restore_backup=True))

    def create(self, step: FileEdit, label: str) -> bool:
        directory, tmp = parent(step.path), new_file_tmp(step.path, self.when)
        done = run(self.host, edit_new_script(step, self.when), self.timeout)
        made = made_dirs(directory, done.records["E"]) if "E" in done.records else []
        if done.ok:
            self.report.undo(rm(step.path), *([f"rmdir -- {' '.join(q(d) for d in made)}"] if made else []))
            return True
        if done.clean:  # the script removed what it had made
            return self.fail(label, done)
        there, note = self.ask(assign(p=step.path, tmp=tmp) + LEFT_BY_NEW)
        if there is not None:
            self.report.undo(*[rm(there[k]) for k in "NT" if k in there])
            note = "" if not made else f"; directories it may have made: {', '.join(made)}"
        return self.fail(label, done, note)

    def command(self, step: Command) -> bool:
        label = f"run {' '.join(step.argv)}"
        undo: list[str] = []
        if step.backup:
            for attempt in range(BACKUP_TRIES):
                when = self.names(attempt)
                saved = run(self.host, command_backup_script(step.backup, when), self.timeout)
                if not saved.taken:
                    break
            else:
                return self.fail(label, Outcome(False, REFUSED, f"no free backup name for {step.backup}"))
            if saved.ok and not ({"B", "T"} <= saved.records.keys() or "A" in saved.records):
                saved = Outcome(False, ERROR, "the host did not say what it backed up")
            if not saved.ok:
                why = Outcome(False, saved.fault, f"not run: {saved.detail}")
                if saved.clean:
                    return self.fail(label, why)
                return self.fail(label, why, self.left_behind(step.backup, when, restore_backup=False))
            if "B" in saved.records:
                self.report.backups.append(saved.records["B"])
                undo = [restore(saved.records["B"], saved.records["T"])]
            else:  # nothing there yet: what the command makes goes
                undo = [rm(step.backup)]
        done = run(self.host, " ".join(q(a) for a in step.argv), self.timeout, ours=False)
        # Done, failed or cut short, the command may have written its file: the rollback puts back what was there.
        self.report.undo(*undo)
        if done.ok:
            return True
        return self.fail(label, done)


STEPS: dict[type, Callable[[Applier, object], bool]] = {FileEdit: Applier.edit, Command: Applier.command}


def apply_plan(host, plan: Plan, timeout: float | None = None, *, when: str | None = None) -> ApplyReport:
    """Run the steps in order on `host` (a xenpass.transport runner), each remote script within `timeout`.

    The first failing step stops the rest. Never raises for what the host or the connection does: the report
    says what was applied, what failed and how (`fault`), every backup made, and the rollback."""
    applier = Applier(host, timeout, when or stamp())
    for step in plan.steps:
        if not STEPS[type(step)](applier, step):
            break
        applier.report.applied.append(f"edit {step.path}" if isinstance(step, FileEdit)
                                      else f"run {' '.join(step.argv)}")
    return applier.report
