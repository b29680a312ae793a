"""What the collector could not read stays unknown in the raw facts: files keep their stat, directories are flagged."""

from __future__ import annotations

from xenpass.facts.collector import parse_output

T = "abc123"


def test_unreadable_file_keeps_its_stat_and_stays_unreadable():
    out = (f"==XP:{T}:BEGIN cmd stat\n1760000000 18 600 0 0 /etc/modprobe.d/x.conf\n==XP:{T}:END 0\n"
           f"==XP:{T}:FACT unreadable /etc/modprobe.d/x.conf\n==XP:{T}:FACT user deploy\n")
    facts = parse_output(out, T, "h")
    fact = facts.files["/etc/modprobe.d/x.conf"]
    assert fact.unreadable and fact.content is None
    assert (fact.mtime, fact.size, fact.mode, fact.uid) == (1760000000, 18, "600", 0)
    assert facts.flag_values("user") == ["deploy"]


def test_unlistable_directory_is_a_flag_not_a_file():
    facts = parse_output(f"==XP:{T}:FACT unreadable /etc/modprobe.d/\n", T, "h")
    assert facts.flag_values("unreadable_dirs") == ["/etc/modprobe.d/"]
    assert "/etc/modprobe.d/" not in facts.files
