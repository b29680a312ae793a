"""A fix plan as an Ansible playbook (ansible.builtin modules only) that a change-review process can apply.

The same guards as fix.sh and --fix, in Ansible's terms:
- the host: the play targets one inventory name made from the whole connection xenpass used, and pins that
  connection (address or ssh alias, user, port, ssh options) in its own vars, which beat any inventory; its first
  task asserts them, so no inventory group and no stray variable can point it at another machine;
- the content guard: before a file is written, `stat` (sha256) must find the bytes the plan was made from (or
  the plan's new bytes: already applied); a file the plan creates must not exist yet;
- every write is a `copy` following a symlink to the file it points to (the link stays), with the mode and
  owner that file had; a new file is 0644 root:root. The file it replaces is first copied (`remote_src`) to
  fix.sh's backup, `.NAME.xenpass-WHEN` beside the file it resolves to, never to copy's own `backup: true`
  NAME.PID.DATE~: xendomains starts every `*` in /etc/xen/auto, so that one would be a second config of the
  same domain (the old one started if the new one fails); a dot-file is matched by no `*`. Rollback: move
  each backup over the file it sits beside, last step first;
- commands run only when still needed: a rebuild when an edit of this run changed a file or the image is still
  the one the facts saw, `xl pci-assignable-add` when the device is not assignable yet, `modprobe xen-pciback`
  when pciback is not there, `rc-update add` unless the runlevel link exists. A second run changes nothing;
- `--check` runs only reads (stat, the read-only `xl pci-assignable-list`) and says what would change;
- the first failure stops the play (any_errors_fatal); every task has a `timeout`.

Every string that comes from the host or the plan (paths, contents, argv) is tagged `!unsafe`: Ansible never
templates it, so a `{{ ... }}` in a file name or a config file is data, not code run on the controller.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from xenpass.facts.host import HostFacts
from xenpass.fix.base import STEP_TIMEOUT_DEFAULT, Command, FileEdit, Plan
from xenpass.text import as_bytes, visible


class Unsafe(str):
    """Host or plan text: a string Ansible must take as it is, never as a template."""


class PlaybookDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: object) -> bool:
        return True


def represent_unsafe(dumper: PlaybookDumper, value: Unsafe) -> yaml.Node:
    """Jinja only starts at `{{`, `{%` or `{#`: text holding a `{` is tagged `!unsafe`. Only that text: Ansible
    resolves an `!unsafe` scalar as if it were plain, quotes or not (`!unsafe "0000:01:00.0"` loads as the float
    60.0), while text with a `{` is a string to every YAML 1.1 resolver. Other text is an ordinary YAML string,
    quoted by the dumper wherever it would load as something else. Lines are shown as lines (a literal block)
    where YAML can hold them exactly so; elsewhere PyYAML falls back to a quoted scalar."""
    style = "|" if "\n" in value else None
    if "{" in value:
        return dumper.represent_scalar("!unsafe", str(value), style=style or '"')
    if style:
        return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style=style)
    return dumper.represent_str(str(value))


PlaybookDumper.add_representer(Unsafe, represent_unsafe)


@dataclass(frozen=True)
class Connection:
    """Exactly how xenpass reached the host, as Ansible's ssh connection variables."""

    address: str  # the ssh destination: an address or an ssh_config alias (ansible_host)
    user: str
    port: int
    ssh_args: str  # -F CONFIG, -i KEY and any extra ssh options (ansible_ssh_common_args)
    become_user: str | None = None  # testinfra's --sudo: the play becomes this user (None: no become)
    ssh_config: str | None = None  # the -F file, which decides where an alias leads: checked unchanged
    ssh_config_sha256: str | None = None

    @property
    def inventory_name(self) -> str:
        """A literal host pattern no group or other host shares: readable part + hash of the whole connection."""
        digest = hashlib.sha256("\0".join([self.address, self.user, str(self.port), self.ssh_args,
                                           self.become_user or "", self.ssh_config_sha256 or ""]
                                          ).encode(errors="surrogatepass")).hexdigest()
        readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.address).strip("._-")[:40] or "host"
        return f"xenpass-{readable}-{digest[:10]}"

    def variables(self) -> dict[str, object]:
        return {"ansible_connection": "ssh", "ansible_host": Unsafe(self.address), "ansible_user": Unsafe(self.user),
                "ansible_port": self.port, "ansible_ssh_common_args": Unsafe(self.ssh_args)}


def ssh_connection(backend) -> tuple[Connection | None, str]:
    """The connection of a testinfra ssh backend, user and port resolved by `ssh -G` as that very command line
    would (ssh_config included), or None and why it cannot be pinned."""
    if getattr(backend, "NAME", "") not in ("ssh", "safe-ssh"):
        return None, f"the {getattr(backend, 'NAME', 'unknown')} backend is not an ssh connection"
    spec = backend.host
    if spec.password:
        return None, "the connection uses a password, which is not written to a file"
    args = shlex.split(backend.ssh_extra_args or "")
    config = digest = None
    if backend.ssh_config:
        config = str(absolute(backend.ssh_config))
        args += ["-F", config]
        try:
            digest = hashlib.sha256(Path(config).read_bytes()).hexdigest()
        except OSError as exc:
            return None, f"cannot read the ssh config {config}: {exc.strerror}"
    if backend.ssh_identity_file:
        args += ["-i", str(absolute(backend.ssh_identity_file))]
    options = [*(["-o", f"User={spec.user}"] if spec.user else []), *(["-o", f"Port={spec.port}"] if spec.port else [])]
    try:
        done = subprocess.run(["ssh", "-G", *args, *options, "--", spec.name], capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"ssh -G could not resolve the connection: {exc}"
    resolved = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    if done.returncode != 0 or not resolved.get("user") or not resolved.get("port", "").isdigit():
        return None, f"ssh -G could not resolve the connection: {done.stderr.strip() or 'no user or port'}"
    sudo_user = (backend.sudo_user or "root") if getattr(backend, "sudo", False) else None
    return Connection(spec.name, resolved["user"], int(resolved["port"]), shlex.join(args), sudo_user, config,
                      digest), ""


def absolute(path: str) -> Path:
    return Path(path).expanduser().resolve()


def boot_mtimes(facts: HostFacts) -> dict[str, int]:
    """When each /boot file was last written, as collected: a rebuild is needed until its image's changes."""
    return {path: stat.mtime for path, stat in facts.raw.boot.items() if stat.mtime is not None}


def sha256(text: str) -> str:
    return hashlib.sha256(as_bytes(text)).hexdigest()


def carried_inline(text: str) -> bool:
    """YAML carries any Unicode text; a byte that is not UTF-8 (a lone surrogate here) goes in a file."""
    return not re.search("[\ud800-\udfff]", text)


def shown(text: str) -> Unsafe:
    return Unsafe(visible(text, keep_newlines=False))


class PlaybookBuilder:
    """The tasks of one plan, numbered as fix.sh numbers its steps."""

    def __init__(self, plan: Plan, when: str, timeout: int, image_mtimes: dict[str, int]) -> None:
        self.plan, self.when, self.timeout, self.image_mtimes = plan, when, timeout, image_mtimes
        self.guards: list[dict] = []  # every file checked before anything is changed
        self.tasks: list[dict] = []
        self.files: dict[str, bytes] = {}  # playbook-relative path -> exact bytes (content YAML cannot carry)
        self.edits: list[str] = []  # registered results of the writes so far

    def task(self, name: str, module: str, args: dict, *, guard: bool = False, **keywords: object) -> None:
        (self.guards if guard else self.tasks).append({"name": shown(name), module: args, **keywords,
                                                       "timeout": self.timeout})

    def any_edit_changed(self) -> str:
        return " or ".join(f"{r} is changed" for r in self.edits) or "false"

    def content(self, number: int, step: FileEdit) -> dict:
        if carried_inline(step.after):
            return {"content": Unsafe(step.after)}
        name = f"files/step-{number}"
        self.files[name] = as_bytes(step.after)
        return {"src": name}

    def edit(self, number: int, step: FileEdit) -> None:
        seen, after = f"xenpass_seen_{number}", sha256(step.after)
        label = f"step {number}: edit {step.path}"
        new = step.before is None
        self.task(f"{label}: is it as the facts saw it?", "ansible.builtin.stat",
                  {"path": Unsafe(step.path), "follow": not new, "get_checksum": True,
                   "checksum_algorithm": "sha256"}, register=seen, guard=True)
        if new:
            that = [f"not {seen}.stat.exists or ({seen}.stat.isreg and {seen}.stat.checksum == '{after}')"]
            why = "appeared since facts were collected"
        else:
            that = [f"{seen}.stat.exists", f"{seen}.stat.isreg",
                    f"{seen}.stat.checksum in ['{sha256(step.before or '')}', '{after}']"]
            why = "changed since facts were collected"
        self.task(f"{label}: guard", "ansible.builtin.assert",
                  {"that": that, "quiet": True,
                   "fail_msg": shown(f"xenpass: step {number}: {step.path}: {why}; nothing was changed")}, guard=True)
        # never copy's `backup: true`: its NAME.PID.DATE~ beside a domU config in /etc/xen/auto is a second
        # config xendomains would start at boot (the old one, if the new one fails to start)
        write = {"dest": Unsafe(step.path), **self.content(number, step), "backup": False}
        if new:
            self.task(f"{label}: its directory", "ansible.builtin.file",
                      {"path": Unsafe(step.path.rsplit("/", 1)[0] or "/"), "state": "directory"})
            write |= {"follow": False, "mode": "0644", "owner": "0", "group": "0"}
        else:  # written through a symlink to the file it points to, with that file's mode and owner
            owner = {"owner": f"{{{{ {seen}.stat.uid }}}}", "group": f"{{{{ {seen}.stat.gid }}}}"}
            self.backup_edited(number, step, label, owner)
            write |= {"follow": True, "mode": f"{{{{ {seen}.stat.mode }}}}", **owner}
        register = f"xenpass_edit_{number}"
        self.task(f"{label}: {step.why}", "ansible.builtin.copy", write, register=register)
        self.edits.append(register)

    def command(self, number: int, step: Command) -> None:
        label = f"step {number}: run {' '.join(step.argv)}"
        needed = self.probe(number, step, label)
        argv = {"argv": [Unsafe(a) for a in step.argv]}
        if step.backup:
            self.backup_before(number, step.backup, needed, label)
        if step.argv[0] == "rc-update" and len(step.argv) == 4 and step.argv[1] == "add":
            argv["creates"] = Unsafe(f"/etc/runlevels/{step.argv[3]}/{step.argv[2]}")
        self.task(f"{label}: {step.why}", "ansible.builtin.command", argv, when=needed)
        self.tasks.append({"name": shown(f"{label}: in check mode"), "ansible.builtin.debug": {
            "msg": shown(f"would run: {' '.join(step.argv)}")}, "when": f"ansible_check_mode and ({needed})",
            "timeout": self.timeout})

    def probe(self, number: int, step: Command, label: str) -> str:
        """A Jinja condition: the command still has something to do (read-only tasks answer it)."""
        probe = f"xenpass_probe_{number}"
        if step.argv[:2] == ("xl", "pci-assignable-add") and len(step.argv) == 3:
            self.task(f"{label}: is {step.argv[2]} assignable already?", "ansible.builtin.command",
                      {"argv": ["xl", "pci-assignable-list"]}, register=probe, changed_when=False,
                      failed_when=False, check_mode=False)  # read-only; a failing list means: not assignable
            return f"'{bdf_literal(step.argv[2])}' not in {probe}.stdout.split()"
        if step.argv == ("modprobe", "xen-pciback"):
            self.task(f"{label}: is pciback there already?", "ansible.builtin.stat",
                      {"path": "/sys/bus/pci/drivers/pciback", "get_checksum": False}, register=probe)
            return f"not {probe}.stat.exists"
        if step.argv[0] == "rc-update":
            return "true"  # `creates:` decides
        if step.backup and step.backup in self.image_mtimes:  # a rebuild: needed until the image changes
            self.task(f"{label}: is {step.backup} the image the facts saw?", "ansible.builtin.stat",
                      {"path": Unsafe(step.backup), "follow": True, "get_checksum": False}, register=probe)
            still = f"({probe}.stat.exists and ({probe}.stat.mtime | int) == {int(self.image_mtimes[step.backup])})"
            return f"{self.any_edit_changed()} or {still}"
        return self.any_edit_changed() if self.edits else "true"

    def backup_edited(self, number: int, step: FileEdit, label: str, owner: dict[str, str]) -> None:
        """The file an edit replaces, copied first to fix.sh's backup (hidden, beside the file it resolves to),
        only when the edit is still to be made: a second run makes none. The guards, before any change, refuse a
        backup name another file holds (a backup of the very bytes the plan was made from is one an interrupted
        run made, and kept: it is the original)."""
        found, kept = f"xenpass_resolved_{number}", f"xenpass_kept_{number}"
        self.task(f"{label}: where it resolves", "ansible.builtin.stat",
                  {"path": Unsafe(step.path), "follow": False, "get_checksum": False}, register=found, guard=True)
        resolved, backup = resolved_path(found), self.backup_path(found)
        self.task(f"{label}: is its backup name free?", "ansible.builtin.stat",
                  {"path": backup, "follow": False, "get_checksum": True, "checksum_algorithm": "sha256"},
                  register=kept, guard=True)
        self.task(f"{label}: backup guard", "ansible.builtin.assert", {
            "that": [f"not {kept}.stat.exists or ({kept}.stat.isreg and {kept}.stat.checksum == "
                     f"'{sha256(step.before or '')}')"], "quiet": True,
            "fail_msg": shown(f"xenpass: step {number}: {step.path}: its backup name is taken by another file; "
                              "nothing was changed")}, guard=True)
        self.task(f"{label}: back it up", "ansible.builtin.copy",
                  {"src": f"{{{{ {resolved} }}}}", "remote_src": True, "force": False, "mode": "preserve",
                   **owner, "dest": backup},
                  when=f"xenpass_seen_{number}.stat.checksum != '{sha256(step.after)}'")

    def backup_path(self, found: str) -> str:
        """fix.sh's backup name (.NAME.xenpass-WHEN beside the resolved file), as Jinja on a `stat` result:
        hidden, as xendomains starts every `*` in /etc/xen/auto and /boot globs and conf.d readers skip
        dot-files."""
        resolved = resolved_path(found)
        return f"{{{{ {resolved} | dirname }}}}/.{{{{ {resolved} | basename }}}}.xenpass-{self.when}"

    def backup_before(self, number: int, path: str, needed: str, label: str) -> None:
        """The file a command rewrites, copied aside first as fix.sh names it; an existing backup is never
        overwritten."""
        found = f"xenpass_backup_{number}"
        self.task(f"{label}: where {path} resolves", "ansible.builtin.stat",
                  {"path": Unsafe(path), "follow": False, "get_checksum": False}, register=found)
        self.task(f"{label}: back up {path}", "ansible.builtin.copy",
                  {"src": f"{{{{ {resolved_path(found)} }}}}", "remote_src": True, "force": False,
                   "mode": "preserve", "dest": self.backup_path(found)},
                  when=f"({needed}) and {found}.stat.exists")

    def build(self) -> list[dict]:
        for number, step in enumerate(self.plan.steps, start=1):
            if isinstance(step, FileEdit):
                self.edit(number, step)
            else:
                self.command(number, step)
        if self.plan.reboot_required:
            self.tasks.append({"name": "Reboot needed", "ansible.builtin.debug": {
                "msg": "files changed: reboot for the new boot state"}, "when": self.any_edit_changed(),
                "timeout": self.timeout})
        return self.guards + self.tasks


def resolved_path(found: str) -> str:
    """Jinja: the file a `stat` (follow: false) result resolves to (Ansible's lnk_source is the realpath)."""
    return f"({found}.stat.lnk_source if {found}.stat.islnk else {found}.stat.path)"


def bdf_literal(bdf: str) -> str:
    """A BDF inside a Jinja string literal: only the characters a BDF has."""
    if not re.fullmatch(r"[0-9a-fA-F:.]+", bdf):
        raise ValueError(f"not a PCI address: {bdf!r}")
    return bdf


HEADER = """\
# xenpass fix for {host} {bdf}, planned {when} from facts collected {collected}.
# Review, then apply (Python on the host; ansible.builtin modules only):
#   ansible-playbook -i {inventory} fix.yml --check --diff    # what would change, nothing is changed
#   ansible-playbook -i {inventory} fix.yml                   # apply (add -b if not root); stops at the first failure
# The play reaches exactly the connection xenpass checked ({user}@{address} port {port}); a file that changed
# since the facts were collected is left alone; run again, it changes nothing. Each file it replaces (config
# or initramfs image) is first copied, as fix.sh does, beside the file a symlink resolves to:
#   .NAME.xenpass-{when}
# (hidden: xendomains starts every `*` in /etc/xen/auto). Rollback: move each such backup over the NAME beside
# it, last step first; remove the files the plan created.
"""


def fix_playbook(plan: Plan, bdf: str, when: str, collected: str, connection: Connection, *,
                 timeout: int = STEP_TIMEOUT_DEFAULT, image_mtimes: dict[str, int] | None = None,
                 inventory: str = "../inventory.yml") -> tuple[str, dict[str, bytes]]:
    """The playbook text and the files it copies from (playbook-relative path -> exact bytes)."""
    host = connection.inventory_name
    builder = PlaybookBuilder(plan, when, timeout, image_mtimes or {})
    steps = builder.build()
    identity = {"host": Unsafe(connection.address), "user": Unsafe(connection.user), "port": connection.port,
                "ssh_args": Unsafe(connection.ssh_args)}
    in_inventory = {"name": "The inventory holds the host this plan was made for", "hosts": "localhost",
                    "gather_facts": False, "tasks": [{
                        "name": "Find it", "ansible.builtin.assert": {
                            "that": [f"'{host}' in groups['all']"], "quiet": True,
                            "fail_msg": f"xenpass: {host} is not in the inventory: use -i {inventory}"},
                        "timeout": timeout}, *same_ssh_config(connection, timeout)]}
    play: dict[str, object] = {
        "name": shown(f"xenpass fix for {plan.host} {bdf}"), "hosts": host, "gather_facts": False,
        "any_errors_fatal": True,
        # --sudo is pinned; otherwise become is left to the command line (-b) or the inventory
        **({"become": True, "become_user": Unsafe(connection.become_user)} if connection.become_user else {}),
        "vars": {**connection.variables(), "xenpass_identity": identity},
        "tasks": [{"name": "This is the host the plan was made for", "ansible.builtin.assert": {
            "that": ["ansible_play_hosts_all | length == 1", "ansible_connection in ['ssh', 'ansible.builtin.ssh']",
                     "ansible_host == xenpass_identity.host", "ansible_user == xenpass_identity.user",
                     "(ansible_port | int) == xenpass_identity.port",
                     "ansible_ssh_common_args == xenpass_identity.ssh_args"],
            "quiet": True, "fail_msg": "xenpass: the connection is not the one the plan was made for; nothing "
                                       "was changed"}, "timeout": timeout}, *steps]}
    header = HEADER.format(host=visible(plan.host, keep_newlines=False), bdf=bdf, when=when,
                           collected=collected or "at an unknown time", inventory=inventory,
                           user=visible(connection.user, keep_newlines=False),
                           address=visible(connection.address, keep_newlines=False), port=connection.port)
    body = yaml.dump([in_inventory, play], Dumper=PlaybookDumper, sort_keys=False, width=120,
                     allow_unicode=False)
    return header + body, builder.files


def same_ssh_config(connection: Connection, timeout: int) -> list[dict]:
    """On the controller: the -F file still says what it said at export (an alias cannot lead elsewhere)."""
    if connection.ssh_config is None:
        return []
    return [{"name": "Read the ssh config", "ansible.builtin.stat": {
                "path": Unsafe(connection.ssh_config), "get_checksum": True, "checksum_algorithm": "sha256"},
             "register": "xenpass_ssh_config", "timeout": timeout},
            {"name": "The ssh config is the one the host was checked with", "ansible.builtin.assert": {
                "that": [f"xenpass_ssh_config.stat.checksum | default('') == '{connection.ssh_config_sha256}'"],
                "quiet": True, "fail_msg": shown(f"xenpass: {connection.ssh_config} changed since the export: the "
                                                 "connection may lead elsewhere; nothing was changed")},
             "timeout": timeout}]


def inventory_text(connection: Connection) -> str:
    """An inventory of that one host (its connection again: the playbooks pin it in their own vars too)."""
    data = {"all": {"hosts": {connection.inventory_name: connection.variables()}}}
    return ("# xenpass: the one host the fix playbooks beside this file were made for. Add interpreter or\n"
            "# become settings here if needed; the connection itself is pinned by each fix.yml.\n"
            + yaml.dump(data, Dumper=PlaybookDumper, sort_keys=False, width=120))
