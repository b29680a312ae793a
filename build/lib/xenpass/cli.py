"""`xenpass ARGS...`: the shipped checks, from any directory: `pytest <the installed checks> ARGS...`.

Reports land in ./reports unless --html / --compliance-json say otherwise; every pytest and xenpass option
works (`xenpass --hosts=ssh://root@node03 --device 01:00.0`, `xenpass --list-rules`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


def checks_dir() -> Path:
    import xenpass.checks

    return Path(xenpass.checks.__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return int(pytest.main([str(checks_dir()), "-p", "no:cacheprovider", f"--rootdir={Path.cwd()}", *args]))


if __name__ == "__main__":
    sys.exit(main())
