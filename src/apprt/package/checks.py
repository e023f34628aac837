"""Does an app's file tree hold what its manifest points at?

The same checks run on an app directory (``apprt app validate DIR``) and on a
package (``apprt app validate FILE.apppkg``, the registry's pipeline): both are
reduced to the set of relative paths they contain, so a directory that validates
packs into a package that validates.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

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


#: Reads a file of the tree by its relative path (``frontend/index.js``); None if absent.
Reader = Callable[[str], bytes | None]


def directory_reader(root: Path) -> Reader:
    """A :data:`Reader` over an app directory."""

    def read(path: str) -> bytes | None:
        file = root / path
        return file.read_bytes() if file.is_file() else None

    return read


def check_app_files(
    manifest: Manifest,
    files: Collection[str],
    *,
    packaged: bool = False,
    read: Reader | None = None,
) -> list[Problem]:
    """Problems with the files ``manifest`` refers to, given the tree's relative paths.

    ``packaged`` adds the checks that only hold after ``apprt app pack``: one wheel
    per pinned requirement under ``wheels/`` and nothing else there. With ``read``
    (file contents by relative path), the frontend entry is also scanned for its
    ``mount``/``unmount`` exports (:func:`check_frontend_exports`).
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
        elif read is not None:
            problems.extend(check_frontend_exports(f"frontend/{frontend.entry}", read))
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


# -- the frontend entry's exports ------------------------------------------------------
#
# The shell imports the entry and calls its ``mount(el, ctx)`` and ``unmount(el)``
# exports (docs/frontend.md). A static scan of the module's export statements: the
# source is tokenized (comments dropped; strings, template literals and regular
# expressions kept as single tokens, so text that merely mentions ``export function
# mount`` is not mistaken for code), then each top-level ``export`` is read. Named
# re-exports (``export { mount } from "./x.js"``) count; ``export * from "./x.js"`` is
# followed into the package's own files; ``export default`` does not count (the shell
# reads named exports).

REQUIRED_EXPORTS = ("mount", "unmount")
EXPORT_SIGNATURES = {"mount": "mount(el, ctx)", "unmount": "unmount(el)"}

_IDENT = re.compile(r"[A-Za-z_$\u0080-\uffff][\w$\u0080-\uffff]*")
_NUMBER = re.compile(r"\.?[0-9][\w.]*")
_PUNCT = re.compile(
    r">>>=|\.\.\.|===|!==|\*\*=|<<=|>>=|>>>|\?\?=|&&=|\|\|=|=>|==|!=|<=|>=|&&|\|\||\?\?|\?\.|"
    r"\+\+|--|\+=|-=|\*=|/=|%=|&=|\|=|\^=|\*\*|<<|>>|[{}()\[\];,<>+\-*/%&|^!~?:=.@#]"
)
#: After these a ``/`` starts a regular expression, not a division.
_REGEX_AFTER_WORDS = frozenset(
    {"return", "typeof", "instanceof", "in", "of", "new", "delete", "void", "throw"}
    | {"case", "do", "else", "yield", "await"}
)
_DECLARATION_STARTS = frozenset(
    {"export", "import", "function", "class", "const", "let", "var", "async"}
    | {"if", "for", "while", "return"}
)


@dataclass(frozen=True)
class _Token:
    kind: str  # name | string | template | regex | number | punct
    value: str
    newline: bool  # a line break precedes it


class _Tokens:
    """A tolerant ECMAScript tokenizer: enough to find the top-level export statements."""

    def __init__(self, source: str) -> None:
        self.src = source
        self.i = 0
        self.out: list[_Token] = []
        self.newline = False
        # Brace depth inside each open template literal's ${...}.
        self.templates: list[int] = []

    def _add(self, kind: str, value: str) -> None:
        self.out.append(_Token(kind, value, self.newline))
        self.newline = False

    def _regex_allowed(self) -> bool:
        if not self.out:
            return True
        last = self.out[-1]
        if last.kind == "punct":
            return last.value not in (")", "]", "}")
        if last.kind == "name":
            return last.value in _REGEX_AFTER_WORDS
        return False

    def _skip_quoted(self, quote: str) -> str:
        src, i = self.src, self.i + 1
        chars: list[str] = []
        while i < len(src) and src[i] != quote:
            if src[i] == "\\" and i + 1 < len(src):
                chars.append(src[i + 1])
                i += 2
                continue
            if src[i] == "\n":  # an unterminated string ends at the line
                break
            chars.append(src[i])
            i += 1
        self.i = i + 1
        return "".join(chars)

    def _template_chunk(self) -> None:
        """From inside a template literal to its end or to the next ``${``."""
        src, i = self.src, self.i
        while i < len(src):
            if src[i] == "\\":
                i += 2
            elif src[i] == "`":
                self.i = i + 1
                return
            elif src.startswith("${", i):
                self.templates.append(0)
                self.i = i + 2
                return
            else:
                i += 1
        self.i = i

    def _regex(self) -> None:
        src, i, in_class = self.src, self.i + 1, False
        while i < len(src) and src[i] != "\n":
            c = src[i]
            if c == "\\":
                i += 2
                continue
            if c == "[":
                in_class = True
            elif c == "]":
                in_class = False
            elif c == "/" and not in_class:
                i += 1
                break
            i += 1
        while i < len(src) and (src[i].isalnum() or src[i] in "_$"):
            i += 1  # flags
        self._add("regex", src[self.i : i])
        self.i = i

    def run(self) -> list[_Token]:
        src = self.src
        while self.i < len(src):
            c = src[self.i]
            if c == "\n":
                self.newline = True
                self.i += 1
            elif c.isspace():
                self.i += 1
            elif src.startswith("//", self.i) or (self.i == 0 and src.startswith("#!")):
                end = src.find("\n", self.i)
                self.i = len(src) if end < 0 else end
            elif src.startswith("/*", self.i):
                end = src.find("*/", self.i + 2)
                if "\n" in src[self.i : len(src) if end < 0 else end]:
                    self.newline = True
                self.i = len(src) if end < 0 else end + 2
            elif c in "\"'":
                self._add("string", self._skip_quoted(c))
            elif c == "`":
                self._add("template", "`")
                self.i += 1
                self._template_chunk()
            elif c == "}" and self.templates and self.templates[-1] == 0:
                self.templates.pop()
                self.i += 1
                self._template_chunk()
            elif c == "/" and self._regex_allowed():
                self._regex()
            elif match := _IDENT.match(src, self.i):
                self._add("name", match.group())
                self.i = match.end()
            elif match := _NUMBER.match(src, self.i):
                self._add("number", match.group())
                self.i = match.end()
            elif match := _PUNCT.match(src, self.i):
                value = match.group()
                if self.templates and value == "{":
                    self.templates[-1] += 1
                elif self.templates and value == "}":
                    self.templates[-1] -= 1
                self._add("punct", value)
                self.i = match.end()
            else:
                self.i += 1
        return self.out


@dataclass
class ModuleExports:
    """What a module's export statements declare."""

    names: set[str] = field(default_factory=set)
    #: ``export * from "<specifier>"``: every name of that module but ``default``.
    star_from: list[str] = field(default_factory=list)
    has_default: bool = False


_OPEN, _CLOSE = "([{", ")]}"


def _skip_balanced(tokens: list[_Token], i: int) -> int:
    """From an opening bracket to just past its closing one."""
    depth = 0
    while i < len(tokens):
        t = tokens[i]
        if t.kind == "punct" and t.value in _OPEN:
            depth += 1
        elif t.kind == "punct" and t.value in _CLOSE:
            depth -= 1
            if depth <= 0:
                return i + 1
        i += 1
    return i


def _is(tokens: list[_Token], i: int, value: str, kind: str = "punct") -> bool:
    return 0 <= i < len(tokens) and tokens[i].kind == kind and tokens[i].value == value


def _is_kind(tokens: list[_Token], i: int, kind: str) -> bool:
    return 0 <= i < len(tokens) and tokens[i].kind == kind


def _pattern_names(tokens: list[_Token], i: int, names: set[str]) -> int:
    """The names a destructuring pattern binds (``{ a, b: c, ...d }``, ``[e, , f = 1]``);
    returns the index past it."""
    close = "}" if tokens[i].value == "{" else "]"
    i += 1
    while i < len(tokens) and not _is(tokens, i, close):
        t = tokens[i]
        if t.kind == "punct" and t.value == "[" and close == "}":  # computed key: `[k]: x`
            i = _skip_balanced(tokens, i)
            if _is(tokens, i, ":"):
                i += 1  # the binding follows
        elif t.kind == "punct" and t.value in "{[":
            i = _pattern_names(tokens, i, names)
        elif t.kind == "punct" and t.value == "=":  # a default value: skip the expression
            i += 1
            while i < len(tokens) and not (_is(tokens, i, ",") or _is(tokens, i, close)):
                i = _skip_balanced(tokens, i) if tokens[i].value in _OPEN else i + 1
        elif t.kind in ("name", "string", "number") and _is(tokens, i + 1, ":"):
            i += 2  # a property key: the binding follows
        elif t.kind == "name":
            names.add(t.value)
            i += 1
        else:
            i += 1
    return i + 1


def _declarators(tokens: list[_Token], i: int, names: set[str]) -> None:
    """``export const a = 1, { b } = o, c;`` adds a, b and c."""
    while i < len(tokens):
        t = tokens[i]
        if t.kind == "name":
            names.add(t.value)
            i += 1
        elif t.kind == "punct" and t.value in "{[":
            i = _pattern_names(tokens, i, names)
        else:
            return
        if _is(tokens, i, "="):  # the initializer, up to "," or the statement's end
            i += 1
            while i < len(tokens):
                t = tokens[i]
                if t.kind == "punct" and t.value in (",", ";"):
                    break
                if t.newline and t.kind == "name" and t.value in _DECLARATION_STARTS:
                    return
                i = _skip_balanced(tokens, i) if t.kind == "punct" and t.value in _OPEN else i + 1
        if not _is(tokens, i, ","):
            return
        i += 1


def _export_name(token: _Token) -> str | None:
    return token.value if token.kind in ("name", "string") else None


def _export_statement(tokens: list[_Token], i: int, found: ModuleExports) -> None:
    """Read the export statement whose ``export`` keyword is at ``i - 1``."""
    if i >= len(tokens):
        return
    t = tokens[i]
    if t.kind == "name" and t.value == "default":
        found.has_default = True
    elif t.kind == "name" and t.value in ("function", "async", "class"):
        if t.value == "async":
            if not _is(tokens, i + 1, "function", "name"):
                return
            i += 1
        i += 1
        if _is(tokens, i, "*"):
            i += 1
        if i < len(tokens) and tokens[i].kind == "name":
            found.names.add(tokens[i].value)
    elif t.kind == "name" and t.value in ("const", "let", "var"):
        _declarators(tokens, i + 1, found.names)
    elif t.kind == "punct" and t.value == "{":
        i += 1
        while i < len(tokens) and not _is(tokens, i, "}"):
            local = _export_name(tokens[i])
            if local is None:
                i += 1
                continue
            exported = local
            if _is(tokens, i + 1, "as", "name") and i + 2 < len(tokens):
                exported = _export_name(tokens[i + 2]) or local
                i += 2
            found.names.add(exported)
            i += 1
            if _is(tokens, i, ","):
                i += 1
    elif t.kind == "punct" and t.value == "*":
        if _is(tokens, i + 1, "as", "name"):
            return  # a namespace object: never a function
        if _is(tokens, i + 1, "from", "name") and _is_kind(tokens, i + 2, "string"):
            found.star_from.append(tokens[i + 2].value)


def module_exports(source: str) -> ModuleExports:
    """The names an ES module's top-level export statements declare."""
    tokens = _Tokens(source).run()
    found = ModuleExports()
    depth = 0
    for index, t in enumerate(tokens):
        if t.kind == "punct":
            if t.value in _OPEN:
                depth += 1
            elif t.value in _CLOSE:
                depth = max(0, depth - 1)
            continue
        if t.kind == "name" and t.value == "export" and depth == 0:
            if _is(tokens, index - 1, ".") or _is(tokens, index - 1, "?."):
                continue  # obj.export
            _export_statement(tokens, index + 1, found)
    return found


def _exported_names(path: str, read: Reader, seen: set[str]) -> tuple[set[str], bool] | None:
    """Names exported by the package file ``path``, following ``export *`` into the
    package's own files; None when it cannot be read as UTF-8."""
    seen.add(path)
    data = read(path)
    if data is None:
        return None
    try:
        found = module_exports(data.decode("utf-8"))
    except UnicodeDecodeError:
        return None
    names = set(found.names)
    for specifier in found.star_from:
        if not specifier.startswith(("./", "../")):
            continue  # a bare name: resolved by the import map, not in this package
        target = posixpath.normpath(posixpath.join(posixpath.dirname(path), specifier))
        if not target.startswith("frontend/") or target in seen:
            continue
        inner = _exported_names(target, read, seen)
        if inner is not None:
            names |= inner[0] - {"default"}
    return names, found.has_default


def check_frontend_exports(entry: str, read: Reader) -> list[Problem]:
    """Problems when the frontend entry (a path like ``frontend/index.js``) does not
    export ``mount`` and ``unmount``."""
    scanned = _exported_names(entry, read, set())
    if scanned is None:
        return [
            Problem(
                "the frontend entry is not UTF-8 text",
                file=entry,
                hint="save the ES module as UTF-8",
            )
        ]
    names, has_default = scanned
    missing = [name for name in REQUIRED_EXPORTS if name not in names]
    if not missing:
        return []
    reason = "the frontend entry does not export " + " or ".join(missing)
    if has_default:
        reason += " (an `export default` is not used: the shell calls named exports)"
    hint = "; ".join(
        f"add `export async function {EXPORT_SIGNATURES[name]} {{ … }}`" for name in missing
    )
    return [Problem(reason, file=entry, location="exports", hint=hint + " (docs/frontend.md)")]
