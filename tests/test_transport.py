"""The ssh command line a target gets: its own ControlPath, whatever else the options say (no network)."""

from __future__ import annotations

import os
import stat

import testinfra.backend

from xenpass.transport import ControlDir, SshRunner


def runner(spec: str, control: ControlDir, **options: object) -> SshRunner:
    return SshRunner(testinfra.backend.get_backend(spec, **options), control)


def control_path(argv: list[str]) -> str:
    """The ControlPath ssh will use: the first one on the command line."""
    values = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "-o" and argv[i + 1].startswith("ControlPath=")]
    values += [a.split(" ")[1] for a in argv if a.startswith("-o ControlPath=")]
    return values[0]


def test_a_control_path_in_the_users_extra_args_does_not_win(tmp_path):
    """ansible's ssh_args may carry a shared ControlPath: ours comes first, and ssh keeps the first value."""
    control = ControlDir()
    argv = runner("ssh://root@10.0.0.5:2201", control, ssh_extra_args="-o ControlPath=/tmp/shared-%C").argv("true")
    assert control_path(argv).startswith(f"ControlPath={control.path}/")
    control.close()


def test_targets_differing_only_in_proxy_or_config_get_their_own_socket(tmp_path):
    control = ControlDir()
    one = tmp_path / "one"
    two = tmp_path / "two"
    one.write_text("Host dom0\n  ProxyCommand nc site-a 22\n")
    two.write_text("Host dom0\n  ProxyCommand nc site-b 22\n")
    paths = {control_path(runner(spec, control, **opts).argv("true")) for spec, opts in (
        ("ssh://dom0", {"ssh_config": str(one)}),
        ("ssh://dom0", {"ssh_config": str(two)}),
        ("ssh://dom0", {"ssh_extra_args": "-o ProxyCommand='nc site-a 22'"}),
        ("ssh://dom0", {"ssh_extra_args": "-o ProxyCommand='nc site-b 22'"}),
        ("ssh://root@dom0:2201", {}),
        ("ssh://root@dom0:2202", {}),
    )}
    assert len(paths) == 6
    info = os.stat(control.path)
    assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.geteuid()
    control.close()
