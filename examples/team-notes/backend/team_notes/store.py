"""Notes per organization, kept in the app's writable data directory.

The directory comes from ``APPRT_APP_DATA`` (set by the runtime), else the
working directory. Every organization's notes live in their own file, so one
organization's requests never read another's.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

_ORG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class NoteStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or Path(os.environ.get("APPRT_APP_DATA", "."))

    def _file(self, org: str) -> Path:
        if not _ORG_RE.match(org):
            raise ValueError(f"invalid organization {org!r}")
        return self.root / f"notes-{org}.json"

    def list(self, org: str) -> list[dict[str, str]]:
        path = self._file(org)
        return json.loads(path.read_text()) if path.exists() else []

    def add(self, org: str, author: str, text: str) -> dict[str, str]:
        notes = self.list(org)
        note = {"id": str(len(notes) + 1), "author": author, "text": text}
        notes.append(note)
        # Write-then-rename: a crash never leaves a torn file.
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".notes-")
        with os.fdopen(fd, "w") as fh:
            json.dump(notes, fh)
        Path(tmp).replace(self._file(org))
        return note
