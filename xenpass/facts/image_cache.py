"""What each host's initramfs holds, remembered between runs, so an unchanged image never crosses twice.

Keyed by host identity (the whole connection spec, xenpass.transport) and the image's sha256 as the
host computed it: nothing is shared between two targets, and a rebuilt image (new hash) is read again.
Entries carry the reader's version, so a newer xenpass never trusts what an older reader concluded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

READER_VERSION = 3  # bump when what is kept of an image changes (parse/initramfs.py, collect.sh)
KEEP_PER_HOST = 8  # the hashes offered to a host: its current image and a few it may roll back to
_SHA256 = re.compile(r"[0-9a-f]{64}")


def default_directory() -> Path:
    if os.environ.get("XENPASS_CACHE_DIR"):
        return Path(os.environ["XENPASS_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "xenpass"


class ImageCache:
    """A directory of small JSON files: images/<sha256 of identity>/<image sha256>.v<N>.json."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _host_dir(self, identity: str) -> Path:
        digest = hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        return self.directory / "images" / digest

    def _entry(self, identity: str, sha256: str) -> Path:
        return self._host_dir(identity) / f"{sha256}.v{READER_VERSION}.json"

    def known(self, identity: str) -> list[str]:
        """The image hashes this host may skip sending, newest first."""
        try:
            entries = sorted(self._host_dir(identity).glob(f"*.v{READER_VERSION}.json"),
                             key=lambda p: p.stat().st_mtime, reverse=True)
        except OSError:
            return []
        hashes = [p.name.split(".", 1)[0] for p in entries]
        return [h for h in hashes if _SHA256.fullmatch(h)][:KEEP_PER_HOST]

    def get(self, identity: str, sha256: str) -> dict[str, Any] | None:
        if not _SHA256.fullmatch(sha256):
            return None
        try:
            content = json.loads(self._entry(identity, sha256).read_text())
        except (OSError, ValueError):
            return None
        return content if isinstance(content, dict) and content.get("sha256") == sha256 else None

    def put(self, identity: str, sha256: str, content: dict[str, Any]) -> None:
        """Remember an image read without error; a cache that cannot be written is only slower."""
        if not _SHA256.fullmatch(sha256) or content.get("error"):
            return
        target = self._entry(identity, sha256)
        with contextlib.suppress(OSError):
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with tempfile.NamedTemporaryFile("w", dir=target.parent, delete=False, suffix=".tmp") as tmp:
                json.dump({**content, "sha256": sha256}, tmp)
            Path(tmp.name).replace(target)
