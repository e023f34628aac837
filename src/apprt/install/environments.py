"""Per-version Python environments, built offline from the package's own wheels.

Each app version's backend runs on exactly the wheels vendored in its package.
An environment is keyed by the Python version and the digests of those wheels, so
every app version (in every organization) with the same wheel set shares one, and
building it needs no network: ``uv pip install --offline --no-index`` from the
wheels, hard-linked out of a shared uv cache, which makes a second environment
with overlapping wheels nearly free.

The sandbox only needs the environment's ``site-packages``, mounted read-only.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from uv import find_uv_bin

from apprt.errors import ApprtError, Problem


@dataclass(frozen=True)
class Environment:
    root: Path

    @property
    def site_packages(self) -> Path:
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        return self.root / "lib" / version / "site-packages"


class EnvironmentBuildError(ApprtError):
    """The wheels would not install into a fresh environment."""


def environment_key(wheels: list[Path]) -> str:
    """sha256 over the interpreter version and the wheels' names and contents."""
    digest = hashlib.sha256(f"python {sys.version.split()[0]}\n".encode())
    for wheel in sorted(wheels, key=lambda p: p.name):
        digest.update(wheel.name.encode() + b"\0")
        with wheel.open("rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    return digest.hexdigest()


class EnvironmentStore:
    def __init__(self, root: Path, uv_cache: Path) -> None:
        self.root = root
        self.uv_cache = uv_cache

    def ensure(self, wheels: list[Path]) -> Environment | None:
        """The environment for ``wheels`` (None when there are none), built if missing."""
        if not wheels:
            return None
        target = self.root / environment_key(wheels)
        if (target / ".complete").exists():
            return Environment(target)
        self.root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".build-", dir=self.root))
        try:
            self._build(scratch, wheels)
            (scratch / ".complete").touch()
            try:
                scratch.rename(target)
            except OSError:  # another build finished first, or a stale partial exists
                if not (target / ".complete").exists():
                    shutil.rmtree(target, ignore_errors=True)
                    scratch.rename(target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return Environment(target)

    def _build(self, venv: Path, wheels: list[Path]) -> None:
        uv = find_uv_bin()
        steps = [
            [uv, "venv", "--quiet", "--python", sys.executable, "--no-project", str(venv)],
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--offline",
                "--no-index",
                "--no-deps",
                "--link-mode",
                "hardlink",
                "--cache-dir",
                str(self.uv_cache),
                "--python",
                str(venv / "bin" / "python"),
                *(str(w) for w in wheels),
            ],
        ]
        for argv in steps:
            result = subprocess.run(
                argv, cwd=venv, capture_output=True, text=True, timeout=300, check=False
            )
            if result.returncode != 0:
                raise EnvironmentBuildError(
                    [
                        Problem(
                            f"building the app's Python environment failed: "
                            f"{result.stderr.strip()[-500:]}",
                            location="backend.requirements",
                            hint="check that every wheel in the package installs on "
                            f"Python {sys.version_info.major}.{sys.version_info.minor}",
                        )
                    ],
                    title="environment build failed",
                )

    def remove(self, key: str) -> None:
        shutil.rmtree(self.root / key, ignore_errors=True)
