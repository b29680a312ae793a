"""--record: one snapshot file per host name, never shared, and replay gives the name back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from xenpass.facts.raw import RawFacts, save_snapshot
from xenpass.targets import snapshot_targets
from xenpass.text import safe_file_stem


def test_names_that_used_to_share_a_file_get_two(tmp_path):
    """Before: `a:b` and `a_b` (and `node03:2201`, `node03_2201`) were both saved as `a_b.json`."""
    names = ["127.0.0.1:2201", "127.0.0.1_2201", "<script>", "..", "lab dom0"]
    paths = {save_snapshot(RawFacts(host=n), tmp_path) for n in names}
    assert len(paths) == len(names)
    assert sorted(t.name for t in snapshot_targets([str(tmp_path)], (), ())) == sorted(names)


@given(st.lists(st.text(min_size=1, max_size=20), min_size=2, max_size=5, unique=True))
def test_file_stems_are_distinct_and_safe(names):
    stems = [safe_file_stem(n) for n in names]
    assert len(set(stems)) == len(stems)
    assert all("/" not in s and s not in (".", "..") and s for s in stems)
