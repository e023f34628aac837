"""Reading ``app.toml`` into a :class:`~apprt.manifest.models.Manifest`.

Parsing never stops at the first mistake: every problem pydantic finds is turned
into a :class:`~apprt.errors.Problem` naming the file, the field path
(``backend.entry``, ``permissions[2]``) and the fix, and they are raised together
in one :class:`~apprt.errors.ManifestError`::

    >>> from apprt.manifest import parse_manifest
    >>> parse_manifest('id = "Bad Id"', file="app.toml")
    Traceback (most recent call last):
    ...
    apprt.errors.ManifestError: invalid manifest:
    ...
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from apprt.errors import ManifestError, Problem
from apprt.manifest.models import Manifest

MANIFEST_FILENAME = "app.toml"
MAX_MANIFEST_BYTES = 256 * 1024

_TOML_POSITION_RE = re.compile(r"\(at line (\d+), column (\d+)\)")

# Field hints shown with schema errors, keyed by the last element of the field path.
_HINTS = {
    "id": "use a lowercase reverse-DNS id such as com.example.my-app",
    "version": "use SemVer 2.0: MAJOR.MINOR.PATCH, e.g. 1.0.0 or 2.1.0-rc.1",
    "platform": "use an npm range of the platform API, e.g. ^1.0",
    "publisher": "use your publisher account name: lowercase letters, digits and '-'",
    "entry": "point at an ASGI app as module:attribute, e.g. my_app.main:app",
    "tenancy": "choose isolated (an instance per organization) or shared",
    "isolation": "choose shadow (trusted) or iframe (untrusted)",
    "permission": "see the permissions vocabulary in docs/manifest.md",
    "health": "use an absolute path such as /healthz",
    "path": "use an absolute backend path such as /tools/lookup",
    "homepage": "use an http(s) URL",
    "tags": "use short lowercase words joined by '-'",
}


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in {"function-after[_normalize()]", "function-before[_permission_from_string()]"}:
            continue
        else:
            text += f".{part}" if text else str(part)
    return text


def _known_fields(model: type[Any], loc: tuple[int | str, ...]) -> list[str]:
    """The field names allowed at ``loc`` (for 'did you mean' hints on unknown fields)."""
    current: Any = model
    for part in loc[:-1]:
        fields = getattr(current, "model_fields", None)
        if fields is None or not isinstance(part, str) or part not in fields:
            return []
        annotation = fields[part].annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        current = next((c for c in candidates if hasattr(c, "model_fields")), None)
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def _problems_from_validation(error: ValidationError, file: str) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        location = _location(loc)
        reason = item["msg"].removeprefix("Value error, ")
        hint = ""
        if item["type"] == "extra_forbidden":
            name = str(loc[-1])
            known = _known_fields(Manifest, loc)
            close = difflib.get_close_matches(name, known, n=1)
            reason = f"unknown field {name!r}"
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else f"remove it; allowed here: {', '.join(known)}"
                if known
                else "remove it"
            )
        elif item["type"] == "missing":
            reason = "required field is missing"
            hint = f"add {loc[-1]} = ..." if loc else ""
        else:
            last = next((p for p in reversed(loc) if isinstance(p, str)), "")
            hint = _HINTS.get(last, "")
            if item["type"] == "string_pattern_mismatch":
                # The raw regex helps nobody; the hint or the schema docs say the form.
                reason = f"{item['input']!r} is not a valid {last or 'value'}"
                hint = hint or "see docs/manifest.md for the expected form"
        problems.append(Problem(reason=reason, file=file, location=location, hint=hint))
    return problems


def parse_manifest(text: str | bytes, *, file: str = MANIFEST_FILENAME) -> Manifest:
    """Parse and validate manifest text; raise ManifestError listing every problem."""
    if isinstance(text, bytes):
        if len(text) > MAX_MANIFEST_BYTES:
            raise ManifestError.single(
                f"manifest is {len(text)} bytes, more than the {MAX_MANIFEST_BYTES} allowed",
                file=file,
                hint="move long texts such as the description into README.md",
            )
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ManifestError.single(
                f"not UTF-8 text (byte {exc.start})", file=file, hint="save the file as UTF-8"
            ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        position = _TOML_POSITION_RE.search(message)
        location = f"line {position[1]}, column {position[2]}" if position else ""
        reason = _TOML_POSITION_RE.sub("", message).strip()
        raise ManifestError(
            [
                Problem(
                    f"invalid TOML: {reason}",
                    file=file,
                    location=location,
                    hint="check quoting, brackets and '=' on that line",
                )
            ],
            title="invalid manifest",
        ) from None
    return validate_manifest_data(data, file=file)


def validate_manifest_data(data: dict[str, Any], *, file: str = MANIFEST_FILENAME) -> Manifest:
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(
            _problems_from_validation(exc, file), title="invalid manifest"
        ) from None


def load_manifest(path: Path) -> Manifest:
    """Load ``app.toml`` from a file, or from an app directory containing one."""
    if path.is_dir():
        path = path / MANIFEST_FILENAME
    if not path.is_file():
        raise ManifestError.single(
            "no manifest found",
            file=str(path),
            hint="create app.toml at the app's root (apprt app init NAME scaffolds one)",
        )
    with path.open("rb") as fh:
        raw = fh.read(MAX_MANIFEST_BYTES + 1)
    return parse_manifest(raw, file=str(path))
