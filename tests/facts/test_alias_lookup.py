"""The collector looks up in modules.alias every name a modprobe.d line names, so a reason can say that a
blacklisted name is only an alias."""

from __future__ import annotations

from pathlib import Path

from tests.support.chroot import ChrootHost
from tests.support.fakehost import build
from tests.support.scenarios import SCENARIOS
from xenpass.facts.collector import collect


def test_a_blacklist_line_without_its_final_newline_still_names_its_alias(tmp_path: Path) -> None:
    """`blacklist mpt2sas` as the file's last bytes, no newline: modprobe reads it, so the collector must look
    the name up in modules.alias too (mpt2sas is only an alias of mpt3sas), or the reason loses that fact."""
    root = build(SCENARIOS["node03-broken-mpt2sas-alias"](), tmp_path / "root")
    conf = root / "etc/modprobe.d/blacklist.conf"
    conf.write_bytes(conf.read_bytes().rstrip(b"\n"))
    assert conf.read_bytes().endswith(b"blacklist mpt2sas")
    raw = collect(ChrootHost(root), "node03", identity=f"chroot://{root}")
    assert "alias mpt2sas mpt3sas" in (raw.output("modules.alias") or "").splitlines()
