"""``apprt app init``: a new app that validates, packs and passes its own tests.

The template lives beside this module (``template/``); every file ends in
``.tmpl`` so no tool mistakes it for project code, ``__module__`` in a path is
replaced by the backend's Python package name, and ``{{key}}`` placeholders in
contents by the values below::

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "hello-world"
    >>> sorted(p.name for p in create_app(target).iterdir())[:3]
    ['.gitignore', 'README.md', 'app.toml']
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from apprt import PLATFORM_API_VERSION
from apprt.errors import ApprtError

TEMPLATE_DIR = Path(__file__).parent / "template"
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def _module_name(name: str) -> str:
    return name.replace("-", "_")


def create_app(
    target: Path,
    *,
    app_id: str | None = None,
    publisher: str = "example",
) -> Path:
    """Write a new app into ``target`` (which must not exist) and return it.

    The app's short name is the directory name; it must be lowercase letters,
    digits and '-' so it can double as the last part of the id and, with '_', as
    the backend's Python package.
    """
    name = target.name
    if not _NAME_RE.match(name):
        raise ApprtError.single(
            f"{name!r} cannot name an app",
            location="NAME",
            hint="use lowercase letters, digits and '-', starting with a letter, e.g. my-app",
        )
    if target.exists():
        raise ApprtError.single(
            f"{target} already exists",
            location="NAME",
            hint="choose a new directory; init never overwrites files",
        )
    values = {
        "name": name,
        "title": name.replace("-", " ").title(),
        "initial": name[0].upper(),
        "module": _module_name(name),
        "app_id": app_id or f"com.{publisher}.{name}",
        "publisher": publisher,
        "platform_major": PLATFORM_API_VERSION.split(".")[0],
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename, so a failure leaves no half-made app.
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        for source in sorted(TEMPLATE_DIR.rglob("*.tmpl")):
            relative = source.relative_to(TEMPLATE_DIR).as_posix().removesuffix(".tmpl")
            relative = relative.replace("__module__", values["module"])
            if relative == "_gitignore":
                relative = ".gitignore"
            text = source.read_text(encoding="utf-8")
            for key, value in values.items():
                text = text.replace("{{" + key + "}}", value)
            destination = staging / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_text(text, encoding="utf-8")
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
