"""The rule catalogue has one source, the rules' metadata: README, --list-rules and the HTML agree with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from xenpass.catalogue import README_BEGIN, README_END, markdown
from xenpass.rules import RULES

ROOT = Path(__file__).resolve().parents[2]


def test_every_rule_says_what_passes_why_and_where_that_is_defined():
    for rule in RULES.values():
        assert rule.passes and rule.why and rule.references, rule.id


def test_the_readme_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text()
    start, end = readme.index(README_BEGIN), readme.index(README_END) + len(README_END)
    assert readme[start:end] == markdown(), "README drifted: paste the output of `python -m xenpass.catalogue`"


def test_list_rules_prints_the_catalogue_and_runs_nothing(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pytest", "checks/", "--list-rules", "-p", "no:cacheprovider",
                           f"--compliance-json={tmp_path / 'c.json'}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    for rule in RULES.values():
        assert f"{rule.id}  [{rule.severity}]" in done.stdout
    assert not (tmp_path / "c.json").exists()  # no host was asked


def test_the_html_links_each_rule_to_its_entry(tmp_path):
    report = tmp_path / "r.html"
    subprocess.run([sys.executable, "-m", "pytest", "checks/", "-q", "-p", "no:cacheprovider",
                    f"--snapshot={ROOT / 'fixtures' / 'node03-broken-mpt2sas-alias.json'}", f"--html={report}",
                    f"--compliance-json={tmp_path / 'c.json'}"], cwd=ROOT, capture_output=True, timeout=120)
    page = report.read_text()
    for rule in RULES.values():
        assert f"<a href='#rule-{rule.id}'>" in page and f"id='rule-{rule.id}'" in page
