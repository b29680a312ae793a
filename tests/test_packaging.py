"""The installable tool: a wheel built from this tree, installed in a fresh venv, gives a `xenpass` command and
the pytest plugin (pytest11), and runs the shipped checks from any directory, reports landing there."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "node03-broken-mpt2sas-alias.json"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("pkg")
    source = base / "src"  # a copy: setuptools writes build/ and *.egg-info into the tree it builds
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("xenpass", "checks"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(base / "dist"), str(source)], check=True, capture_output=True, timeout=300)
    wheel = next((base / "dist").glob("xenpass-*.whl"))
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=True)
    done = subprocess.run([str(env_dir / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return env_dir


def test_the_wheel_ships_the_checks_and_the_schema(installed, tmp_path):
    listing = subprocess.run([str(installed / "bin" / "python"), "-c",
                              "import xenpass.checks, importlib.resources as r; print(xenpass.checks.__file__); "
                              "print(r.files('xenpass.schema').joinpath('compliance.schema.json').is_file())"],
                             capture_output=True, text=True, check=True, cwd=tmp_path).stdout.split()
    assert "site-packages/xenpass/checks/__init__.py" in listing[0] and listing[1] == "True"
    shipped = Path(listing[0]).with_name("test_passthrough.py").read_text()
    assert shipped == (ROOT / "checks" / "test_passthrough.py").read_text()  # one source


def test_xenpass_runs_the_shipped_checks_from_any_directory(installed, tmp_path):
    done = subprocess.run([str(installed / "bin" / "xenpass"), "-q", f"--snapshot={FIXTURE}"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]  # the broken node03 fails
    data = json.loads((tmp_path / "reports" / "compliance.json").read_text())
    assert data["hosts"][0]["verdict"] == "non-compliant" and (tmp_path / "reports" / "report.html").exists()
    listed = subprocess.run([str(installed / "bin" / "xenpass"), "--list-rules"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and "native-driver-blacklisted  [critical]" in listed.stdout


def test_pytest_pyargs_finds_the_plugin_by_its_entry_point(installed, tmp_path):
    done = subprocess.run([str(installed / "bin" / "pytest"), "--pyargs", "xenpass.checks", "-q",
                           f"--snapshot={FIXTURE}", "--gate-exit-codes",
                           f"--compliance-json={tmp_path / 'c.json'}", f"--junitxml={tmp_path / 'j.xml'}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 100, done.stdout[-2000:] + done.stderr[-2000:]
    junit = (tmp_path / "j.xml").read_text()
    assert 'name="xenpass_rule" value="native-driver-blacklisted"' in junit
    assert 'name="xenpass_host" value="node03-broken-mpt2sas-alias"' in junit
