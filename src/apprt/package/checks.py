"""Does an app's file tree hold what its manifest points at?

The same checks run on an app directory (``apprt app validate DIR``) and on a
package (``apprt app validate FILE.apppkg``, the registry's pipeline): both are
reduced to the set of relative paths they contain, so a directory that validates
packs into a package that validates.
"""

from __future__ import annotations

from collections.abc import Collection

from packaging.requirements import Requirement
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import Version

from apprt.errors import Problem
from apprt.manifest import MANIFEST_FILENAME, Manifest


def _module_present(module: str, files: Collection[str]) -> bool:
    base = "backend/" + module.replace(".", "/")
    return f"{base}.py" in files or f"{base}/__init__.py" in files


def check_app_files(
    manifest: Manifest, files: Collection[str], *, packaged: bool = False
) -> list[Problem]:
    """Problems with the files ``manifest`` refers to, given the tree's relative paths.

    ``packaged`` adds the checks that only hold after ``apprt app pack``: one wheel
    per pinned requirement under ``wheels/`` and nothing else there.
    """
    problems: list[Problem] = []
    where = MANIFEST_FILENAME

    backend = manifest.backend
    if backend is not None:
        if not _module_present(backend.module, files):
            path = "backend/" + backend.module.replace(".", "/")
            problems.append(
                Problem(
                    f"the backend module {backend.module!r} is missing",
                    file=where,
                    location="backend.entry",
                    hint=f"create {path}.py (or {path}/__init__.py) defining "
                    f"{backend.entry.split(':')[1]}",
                )
            )
        for hook_name in ("install", "upgrade", "uninstall"):
            hook = getattr(backend.hooks, hook_name)
            if hook is not None and not _module_present(hook.split(":")[0], files):
                problems.append(
                    Problem(
                        f"the module of hook {hook!r} is missing",
                        file=where,
                        location=f"backend.hooks.{hook_name}",
                        hint="create the module under backend/ or remove the hook",
                    )
                )
    elif any(f.startswith("backend/") for f in files):
        problems.append(
            Problem(
                "backend/ holds files but the manifest has no [backend]",
                file=where,
                hint="add a [backend] section with entry = 'module:app', or remove backend/",
            )
        )

    frontend = manifest.frontend
    if frontend is not None:
        if f"frontend/{frontend.entry}" not in files:
            problems.append(
                Problem(
                    f"the frontend entry frontend/{frontend.entry} is missing",
                    file=where,
                    location="frontend.entry",
                    hint="create it, exporting mount(el, ctx) and unmount(el)",
                )
            )
        for name, shared in frontend.shared.items():
            if shared.bundle is not None and f"frontend/{shared.bundle.path}" not in files:
                problems.append(
                    Problem(
                        f"the bundled copy of {name} (frontend/{shared.bundle.path}) is missing",
                        file=where,
                        location=f"frontend.shared.{name}.bundle.path",
                        hint="vendor the module at that path or remove the bundle",
                    )
                )

    if manifest.icon is not None and manifest.icon not in files:
        problems.append(
            Problem(
                f"the icon {manifest.icon} is missing",
                file=where,
                location="icon",
                hint="add the file or remove the icon field",
            )
        )

    if packaged:
        problems.extend(_check_wheels(manifest, files))
    return problems


def _check_wheels(manifest: Manifest, files: Collection[str]) -> list[Problem]:
    pins: dict[str, str] = {}
    for text in manifest.backend.requirements if manifest.backend else []:
        req = Requirement(text)
        pins[canonicalize_name(req.name)] = next(iter(req.specifier)).version
    problems: list[Problem] = []
    found: set[str] = set()
    for path in sorted(f for f in files if f.startswith("wheels/")):
        filename = path.removeprefix("wheels/")
        try:
            name, version, _, _ = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            problems.append(
                Problem(
                    "not a wheel file",
                    file=path,
                    hint="wheels/ holds only the .whl files apprt app pack collects",
                )
            )
            continue
        pinned = pins.get(name)
        if pinned is None or Version(pinned) != version:
            problems.append(
                Problem(
                    f"wheel {name} {version} is not pinned in backend.requirements",
                    file=path,
                    hint="repack with apprt app pack so wheels/ matches the requirements",
                )
            )
        found.add(name)
    for pin_name, pin_version in sorted(pins.items()):
        if pin_name not in found:
            problems.append(
                Problem(
                    f"no wheel for the pinned requirement {pin_name}=={pin_version}",
                    file=MANIFEST_FILENAME,
                    location="backend.requirements",
                    hint="repack with apprt app pack, which vendors every pinned wheel",
                )
            )
    return problems
