"""Rules for member paths and package layout, shared by the builder and the reader.

The reader accepts exactly the paths the builder can produce, so one set of rules
lives here and both sides call it. Every function returns ``None`` when the path is
fine and a :class:`~apprt.errors.Problem` saying what is wrong otherwise.
"""

from __future__ import annotations

import unicodedata

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from apprt.errors import Problem
from apprt.package.limits import PackageLimits

MANIFEST_NAME = "MANIFEST"
SIGNATURE_NAME = "SIGNATURE"
APP_TOML = "app.toml"

#: Files allowed at the top of a package (plus ``LICENSE*``).
TOP_FILES = frozenset({"app.toml", "README.md", "README", "CHANGELOG.md", "icon.png", "icon.svg"})
#: Directories allowed at the top of a package.
TOP_DIRS = frozenset({"backend", "frontend", "wheels"})
#: Directory names never packaged, anywhere under backend/ and frontend/.
EXCLUDED_DIRS = frozenset({"__pycache__", "node_modules"})
#: File suffixes never packaged (compiled bytecode would hide code from review).
EXCLUDED_SUFFIXES = (".pyc", ".pyo")

# Unicode categories refused in names: controls, format characters (bidi overrides,
# zero-width characters), surrogates, private use, line and paragraph separators.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})

REBUILD_HINT = "rebuild the package with `apprt app pack`"


def display(name: str) -> str:
    """``name`` made safe to print: controls, separators and undecodable bytes escaped."""
    out = []
    for ch in name:
        if "\udc80" <= ch <= "\udcff":  # a byte that was not UTF-8 (surrogateescape)
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif unicodedata.category(ch) in _BAD_CATEGORIES or ch == "\\":
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


def check_path(path: str, limits: PackageLimits) -> Problem | None:
    """Check that ``path`` is a safe, relative, normalised POSIX path."""

    def bad(reason: str, hint: str = REBUILD_HINT) -> Problem:
        return Problem(reason=reason, file=display(path), hint=hint)

    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        return bad("the name is not valid UTF-8", "rename the file using UTF-8 characters only")
    if not path:
        return bad("the name is empty")
    for ch in path:
        if unicodedata.category(ch) in _BAD_CATEGORIES:
            return bad(
                f"the name contains the control or invisible character U+{ord(ch):04X}",
                "rename the file using printable characters only",
            )
    if "\\" in path:
        return bad("the name contains a backslash", "use `/` as the only path separator")
    if path.startswith("/"):
        return bad("the path is absolute", "member paths must be relative to the package root")
    if len(encoded) > limits.max_path_length:
        return bad(
            f"the path is {len(encoded)} bytes long, more than the limit of "
            f"{limits.max_path_length}",
            "use a shorter path",
        )
    parts = path.split("/")
    if len(parts) > limits.max_path_depth:
        return bad(
            f"the path is {len(parts)} levels deep, more than the limit of {limits.max_path_depth}",
            "use a flatter directory layout",
        )
    for part in parts:
        if part in ("", ".", ".."):
            what = "an empty" if part == "" else f"a `{part}`"
            return bad(f"the path has {what} component", "paths must be normalised, without `..`")
    return None


def check_layout(path: str) -> Problem | None:
    """Check that a *content* path (already :func:`check_path`-clean) may be packaged.

    Allowed: ``app.toml``, ``README.md``, ``README``, ``CHANGELOG.md``, ``LICENSE*``,
    ``icon.png``, ``icon.svg`` at the top; anything under ``backend/`` and
    ``frontend/`` except dot-files, ``__pycache__``, ``node_modules`` and ``*.pyc``;
    and ``wheels/<valid wheel filename>``.
    """
    parts = path.split("/")
    top = parts[0]
    hint = "only app.toml, README*, LICENSE*, CHANGELOG.md, icon.*, backend/, frontend/ and wheels/"
    if len(parts) == 1:
        if top in TOP_FILES or top.startswith("LICENSE"):
            return None
        return Problem(
            reason="this file is not allowed at the top of a package", file=display(path), hint=hint
        )
    if top not in TOP_DIRS:
        return Problem(
            reason=f"`{display(top)}/` is not allowed at the top of a package",
            file=display(path),
            hint=hint,
        )
    if top == "wheels":
        if len(parts) != 2 or not parts[1].endswith(".whl"):
            return Problem(
                reason="wheels/ may only hold .whl files, with no subdirectories",
                file=display(path),
                hint="put Python wheels directly in wheels/",
            )
        try:
            parse_wheel_filename(parts[1])
        except InvalidWheelFilename as exc:
            return Problem(
                reason=f"not a valid wheel file name: {exc}",
                file=display(path),
                hint="keep the file name pip gave the wheel",
            )
        return None
    for part in parts[1:]:
        if part.startswith("."):
            return Problem(
                reason="hidden files and directories are not packaged",
                file=display(path),
                hint="rename it, or leave it out of the package",
            )
    for part in parts[1:-1]:
        if part in EXCLUDED_DIRS:
            return Problem(
                reason=f"`{part}/` directories are not packaged",
                file=display(path),
                hint="leave it out; dependencies go in [backend] requirements "
                "or the frontend bundle",
            )
    if parts[-1].endswith(EXCLUDED_SUFFIXES):
        return Problem(
            reason="compiled Python bytecode is not packaged",
            file=display(path),
            hint="ship the .py source only",
        )
    return None


def collision_key(path: str) -> str:
    """Key under which two paths would be the same file on a case-insensitive or
    normalising file system (macOS, Windows)."""
    return unicodedata.normalize("NFC", path).casefold()


class PathSet:
    """Paths seen so far; refuses duplicates, case/normalisation collisions, and a
    path that is both a file and a directory (``a`` and ``a/b``)."""

    def __init__(self) -> None:
        self._files: dict[str, str] = {}
        self._dirs: dict[str, str] = {}

    def add(self, path: str) -> Problem | None:
        key = collision_key(path)
        if key in self._files:
            other = self._files[key]
            if other == path:
                return Problem(
                    reason="the file appears twice", file=display(path), hint=REBUILD_HINT
                )
            return Problem(
                reason=f"the name collides with `{display(other)}` "
                "on case-insensitive file systems",
                file=display(path),
                hint="rename one of the two files",
            )
        if key in self._dirs:
            return Problem(
                reason=f"the name is also used as a directory (`{display(self._dirs[key])}/`)",
                file=display(path),
                hint="rename the file or the directory",
            )
        parts = path.split("/")
        keys = key.split("/")
        for i in range(1, len(parts)):
            dir_key = "/".join(keys[:i])
            if dir_key in self._files:
                return Problem(
                    reason=f"its directory `{'/'.join(parts[:i])}` is also a file",
                    file=display(path),
                    hint="rename the file or the directory",
                )
        for i in range(1, len(parts)):
            self._dirs.setdefault("/".join(keys[:i]), "/".join(parts[:i]))
        self._files[key] = path
        return None
