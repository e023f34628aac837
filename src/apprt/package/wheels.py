"""Collect the wheels an app's backend needs, and prove the set is complete.

Workflow
--------
An app lists its Python dependencies as exact pins (``[backend] requirements =
["httpx==0.27.2", "anyio==4.6.2", ...]`` in app.toml); the platform installs them
offline from the package's ``wheels/`` with no resolver, so the pins must be the
whole closure. :func:`collect_wheels`:

1. parses each pin (PEP 508; only ``name==version``, extras and markers allowed, no
   URLs);
2. looks for a matching wheel compatible with the target interpreter in the wheel
   cache (``$APPRT_WHEEL_CACHE``, else ``~/.cache/apprt/wheels``);
3. downloads only what is missing with ``pip download --no-deps --only-binary=:all:``
   (honouring the user's pip configuration), unless ``offline=True``;
4. reads each wheel's ``Requires-Dist`` and checks every dependency that applies to
   the target environment (markers evaluated, extras followed) is pinned at a
   matching version, naming the wheel, the requirement and the pin to add;
5. copies the wheels into ``dest``, ready for ``build_package(..., wheels_dir=dest)``.

Example (offline, with a wheel already in the cache)::

    >>> import tempfile, zipfile
    >>> from pathlib import Path
    >>> from apprt.package import collect_wheels
    >>> workdir = tempfile.TemporaryDirectory()
    >>> tmp = Path(workdir.name)
    >>> (tmp / "cache").mkdir()
    >>> with zipfile.ZipFile(tmp / "cache" / "tiny-1.0-py3-none-any.whl", "w") as zf:
    ...     zf.writestr("tiny-1.0.dist-info/METADATA", "Metadata-Version: 2.1\\nName: tiny\\n"
    ...                 "Version: 1.0\\n")
    >>> [p.name for p in collect_wheels(["tiny==1.0"], tmp / "out",
    ...                                  cache_dir=tmp / "cache", offline=True)]
    ['tiny-1.0-py3-none-any.whl']
    >>> workdir.cleanup()
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from pathlib import Path

from packaging.markers import Marker, default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags, sys_tags
from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from apprt.errors import PackageError, Problem

__all__ = ["collect_wheels", "default_cache_dir"]

_MAX_METADATA = 16 * 1024 * 1024
#: Compatible wheels in the cache: name -> [(version, tag rank, path)].
_Index = dict[NormalizedName, list[tuple[Version, int, Path]]]
_PIN_HINT = "write exact pins like `anyio==4.6.2` in [backend] requirements"


def default_cache_dir() -> Path:
    """``$APPRT_WHEEL_CACHE``, else ``$XDG_CACHE_HOME/apprt/wheels`` (``~/.cache/...``)."""
    env = os.environ.get("APPRT_WHEEL_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "apprt" / "wheels"


@dataclass
class _Pin:
    text: str
    name: NormalizedName
    version: Version
    extras: set[str] = field(default_factory=set)
    wheel: Path | None = None
    metadata: Message | None = None

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"


def _error(problems: list[Problem], title: str = "cannot collect the wheels") -> PackageError:
    return PackageError(problems, title=title)


def _current_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _environment(python_version: str) -> dict[str, str]:
    env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    if python_version != _current_python():
        env["python_version"] = python_version
        env["python_full_version"] = f"{python_version}.0"
    return env


def _tags(python_version: str) -> list[Tag]:
    if python_version == _current_python():
        return list(sys_tags())
    major, minor = (int(p) for p in python_version.split("."))
    return [*cpython_tags(python_version=(major, minor)), *compatible_tags((major, minor))]


def _marker_applies(marker: Marker | None, env: dict[str, str], extras: Iterable[str]) -> bool:
    if marker is None:
        return True
    return any(marker.evaluate({**env, "extra": extra}) for extra in ("", *sorted(extras)))


def _parse_pins(requirements: list[str], env: dict[str, str]) -> list[_Pin]:
    pins: dict[str, _Pin] = {}
    problems: list[Problem] = []
    for text in requirements:

        def bad(reason: str, hint: str = _PIN_HINT, text: str = text) -> None:
            problems.append(Problem(reason=reason, file="app.toml", location=text, hint=hint))

        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            bad(f"not a valid requirement: {exc}")
            continue
        if req.url:
            bad("URL requirements are not allowed", "pin a released version from the index")
            continue
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or specs[0].version.endswith(".*"):
            bad("requirements must be exact pins (`name==version`)")
            continue
        try:
            version = Version(specs[0].version)
        except InvalidVersion:
            bad(f"invalid version {specs[0].version!r}")
            continue
        if not _marker_applies(req.marker, env, ()):
            continue  # not for this Python / platform
        name = canonicalize_name(req.name)
        if name in pins:
            bad(f"{name} is pinned twice", "keep one pin per project")
            continue
        pins[name] = _Pin(text=text, name=name, version=version, extras=set(req.extras))
    if problems:
        raise _error(problems, "invalid [backend] requirements")
    return list(pins.values())


def _index_cache(cache: Path, tags: list[Tag]) -> _Index:
    """Compatible wheels in the cache: name -> [(version, tag rank, path)]."""
    rank = {tag: i for i, tag in enumerate(tags)}
    index: _Index = {}
    if not cache.is_dir():
        return index
    for path in sorted(cache.glob("*.whl")):
        try:
            name, version, _build, wheel_tags = parse_wheel_filename(path.name)
        except InvalidWheelFilename:
            continue
        best = min((rank[t] for t in wheel_tags if t in rank), default=None)
        if best is not None and path.is_file():
            index.setdefault(name, []).append((version, best, path))
    return index


def _pick(index: _Index, pin: _Pin) -> Path | None:
    candidates = [c for c in index.get(pin.name, []) if c[0] == pin.version]
    if not candidates:
        return None
    return min(candidates, key=lambda c: (c[1], c[2].name))[2]


def _download(pins: list[_Pin], cache: Path, python_version: str) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "--dest",
        str(cache),
    ]
    if python_version != _current_python():
        cmd += ["--python-version", python_version]
    cmd += [pin.spec for pin in pins]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _error(
            [Problem(reason=f"could not run pip: {exc}", hint="check that pip works")]
        ) from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise _error(
            [
                Problem(
                    reason=f"pip could not download {', '.join(p.spec for p in pins)}:\n{tail}",
                    hint=f"check that each pin exists as a wheel for Python {python_version} "
                    "(source distributions are not used), and the network / pip configuration",
                )
            ]
        )


def _read_metadata(wheel: Path) -> Message:
    def bad(reason: str) -> PackageError:
        return _error(
            [
                Problem(
                    reason=reason,
                    file=str(wheel),
                    hint="delete it from the wheel cache so it is downloaded again",
                )
            ]
        )

    try:
        with zipfile.ZipFile(wheel) as zf:
            names = [
                n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
            ]
            if len(names) != 1:
                raise bad("not a valid wheel: expected exactly one *.dist-info/METADATA")
            info = zf.getinfo(names[0])
            if info.file_size > _MAX_METADATA:
                raise bad("the wheel's METADATA is unreasonably large")
            with zf.open(info) as f:
                data = f.read(_MAX_METADATA + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise bad(f"not a valid wheel: {exc}") from None
    return BytesParser(policy=compat32).parsebytes(data, headersonly=True)


def _suggest(index: _Index, name: str, req: Requirement) -> str:
    versions = [v for v, _, _ in index.get(canonicalize_name(name), []) if v in req.specifier]
    return f"{name}=={max(versions)}" if versions else f"{name}==<version>"


def _check_closure(
    pins: list[_Pin],
    env: dict[str, str],
    python_version: str,
    index: _Index,
) -> None:
    by_name = {pin.name: pin for pin in pins}
    problems: dict[tuple[str, str], Problem] = {}
    changed = True
    while changed:  # extras requested by one wheel switch on more requirements of another
        changed = False
        for pin in pins:
            assert pin.metadata is not None and pin.wheel is not None
            wheel = pin.wheel.name
            requires_python = pin.metadata.get("Requires-Python")
            if requires_python:
                try:
                    ok = Version(env["python_full_version"]) in SpecifierSet(str(requires_python))
                except InvalidSpecifier:
                    ok = True  # pip ignores unparsable Requires-Python too
                if not ok:
                    problems[(wheel, "python")] = Problem(
                        reason=f"{pin.spec} requires Python {requires_python}, "
                        f"the app targets Python {python_version}",
                        file=wheel,
                        hint="pin a version that supports this Python",
                    )
            for text in pin.metadata.get_all("Requires-Dist") or []:
                try:
                    req = Requirement(str(text))
                except InvalidRequirement as exc:
                    problems[(wheel, str(text))] = Problem(
                        reason=f"unparsable Requires-Dist {text!r}: {exc}",
                        file=wheel,
                        hint="report it to the project; pin another version",
                    )
                    continue
                if not _marker_applies(req.marker, env, pin.extras):
                    continue
                dep = by_name.get(canonicalize_name(req.name))
                if dep is None:
                    problems[(wheel, str(req))] = Problem(
                        reason=f"{pin.spec} requires `{req}`, which is not pinned",
                        file=wheel,
                        hint="pin it in [backend] requirements, e.g. "
                        f"`{_suggest(index, req.name, req)}`",
                    )
                elif req.specifier and not req.specifier.contains(dep.version, prereleases=True):
                    problems[(wheel, str(req))] = Problem(
                        reason=f"{pin.spec} requires `{req}`, but {dep.spec} is pinned",
                        file=wheel,
                        hint=f"change the pin to a version matching `{req.specifier}`, e.g. "
                        f"`{_suggest(index, req.name, req)}`",
                    )
                elif not req.extras <= dep.extras:
                    dep.extras |= req.extras
                    changed = True
    if problems:
        raise _error(list(problems.values()), "the pinned requirements are incomplete")


def collect_wheels(
    requirements: list[str],
    dest: Path,
    *,
    cache_dir: Path | None = None,
    python_version: str = "3.11",
    offline: bool = False,
) -> list[Path]:
    """Put a wheel for every pin in ``dest`` after checking the pins are complete.

    ``python_version`` ("3.11") selects the markers and wheel tags of the target
    interpreter; for the running interpreter's version, its exact tags are used.
    Pins whose marker does not apply to the target are skipped. Returns the paths
    of the copied wheels, in pin order. Raises :class:`PackageError` for an
    invalid pin, a missing wheel (offline, or pip failed), or a dependency of a
    wheel that the pins do not satisfy.
    """
    if not re.fullmatch(r"3\.\d{1,2}", python_version):
        raise ValueError(f"python_version must look like '3.11', not {python_version!r}")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    env = _environment(python_version)
    tags = _tags(python_version)
    pins = _parse_pins(requirements, env)

    index = _index_cache(cache, tags)
    missing = [pin for pin in pins if _pick(index, pin) is None]
    if missing and offline:
        raise _error(
            [
                Problem(
                    reason=f"{pin.spec} is not in the wheel cache and downloads are off (offline)",
                    file=str(cache),
                    location=pin.text,
                    hint=f"run once without offline mode, or put the wheel in {cache}",
                )
                for pin in missing
            ]
        )
    if missing:
        _download(missing, cache, python_version)
        index = _index_cache(cache, tags)
    problems: list[Problem] = []
    for pin in pins:
        pin.wheel = _pick(index, pin)
        if pin.wheel is None:
            problems.append(
                Problem(
                    reason=f"no wheel of {pin.spec} for Python {python_version} on this platform",
                    file=str(cache),
                    location=pin.text,
                    hint="pin a version that publishes a compatible wheel",
                )
            )
    if problems:
        raise _error(problems)
    for pin in pins:
        assert pin.wheel is not None
        pin.metadata = _read_metadata(pin.wheel)
    _check_closure(pins, env, python_version, index)

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    copied: list[Path] = []
    for pin in pins:
        assert pin.wheel is not None
        target = dest / pin.wheel.name
        shutil.copyfile(pin.wheel, target)
        copied.append(target)
    return copied
