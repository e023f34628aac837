"""The frontend entry must export ``mount`` and ``unmount`` (issue 2; docs/frontend.md):
a static scan of the ES module's export statements (``apprt.package.checks``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from apprt.manifest import load_manifest, parse_manifest
from apprt.package.checks import (
    check_app_files,
    check_frontend_exports,
    directory_reader,
    module_exports,
)
from apprt.scaffold import create_app

ROOT = Path(__file__).parents[2]
APPS = sorted(
    [*(ROOT / "examples").glob("*/app.toml"), *(ROOT / "tests/shell/apps").glob("*/app.toml")]
)


def problems_for(files: dict[str, str], entry: str = "frontend/index.js") -> list[str]:
    data = {path: text.encode() for path, text in files.items()}
    return [str(p) for p in check_frontend_exports(entry, data.get)]


def names(source: str) -> set[str]:
    return module_exports(source).names


@pytest.mark.parametrize(
    "source",
    [
        "export function mount(el, ctx) {}\nexport function unmount(el) {}",
        "export async function mount(el, ctx) {}\nexport async function unmount(el) {}",
        "export function* mount() {}\nexport async function *unmount() {}",
        "export const mount = (el, ctx) => {};\nexport let unmount = function (el) {};",
        "export const mount = async (el) => { const x = {a: 1, b: [2, 3]}; }, unmount = () => 0;",
        "export var mount = 1, other = f(1, 2), unmount = () => {}",
        "export const { mount, deep: { unmount } } = make();",
        "export const [mount, , unmount = () => {}] = pair;",
        'export const { ["a" + b]: mount, [c]: { unmount } } = lifecycle;',  # computed keys
        "function a() {}\nfunction b() {}\nexport { a as mount, b as unmount };",
        "function mount() {}\nconst unmount = () => {};\nexport { mount, unmount, };",
        'export { mount } from "./lifecycle.js";\nexport { stop as unmount } from "./x.js";',
        'export { default as mount, unmount } from "./app.js"',
        'const f = () => {};\nexport { f as "mount", f as unmount }',
        "export class mount {}\nexport class unmount {}",
        "export const mount = () => {}\nexport const unmount = () => {}",  # no semicolons
        "#!/usr/bin/env node\nexport function mount() {}\nexport function unmount() {}",
        # Text before them that a naive scan trips on: regexes, templates, divisions.
        "const r = /export function nothing/g;\nconst t = `a ${ {x: `${1}`}.x } }`;\n"
        "const d = 4 / 2 / 1;\nexport function mount() {}\nexport function unmount() {}",
    ],
)
def test_export_styles_that_count(source: str) -> None:
    assert {"mount", "unmount"} <= names(source)


@pytest.mark.parametrize(
    ("source", "missing"),
    [
        ("// export function mount(el) {}\nexport function unmount(el) {}", {"mount"}),
        ("/* export function mount() {}\n export function unmount() {} */", {"mount", "unmount"}),
        (
            'const doc = "export function mount(el, ctx) {}";\nexport function unmount() {}',
            {"mount"},
        ),
        ("const doc = 'export { mount }';\nexport { unmount } from './x.js';", {"mount"}),
        ("const t = `\nexport function mount() {}\n`;\nexport function unmount() {}", {"mount"}),
        ("const t = `${'x'} export const mount = 1`;\nexport const unmount = 1;", {"mount"}),
        ("const r = /export function mount/;\nexport const unmount = 1;", {"mount"}),
        ("export default { mount() {}, unmount() {} };", {"mount", "unmount"}),
        ("export default function mount() {}\nexport function unmount() {}", {"mount"}),
        ("function mount() {}\nfunction unmount() {}", {"mount", "unmount"}),
        ("export function mounted() {}\nexport function unmounting() {}", {"mount", "unmount"}),
        ("export function setup() { return { mount() {}, unmount() {} }; }", {"mount", "unmount"}),
        ("export { mount as start, unmount as stop };", {"mount", "unmount"}),
        ("export * as mount from './x.js';\nexport const unmount = 1;", {"mount"}),
        ("api.export = mount;\nexport const unmount = 1;", {"mount"}),
        ("export const a = { mount: 1 }, b = [unmount];", {"mount", "unmount"}),
    ],
)
def test_mentions_that_do_not_export(source: str, missing: set[str]) -> None:
    found = names(source)
    assert missing.isdisjoint(found)
    assert {"mount", "unmount"} - missing <= found


def test_export_star_is_followed_into_the_package() -> None:
    files = {
        "frontend/index.js": 'export * from "./lib/lifecycle.js";\nexport * from "preact";',
        "frontend/lib/lifecycle.js": 'export function mount() {}\nexport * from "../more.js";',
        "frontend/more.js": "export const unmount = () => {};\nexport * from './lib/../more.js';",
    }
    assert problems_for(files) == []
    # The default export of a module is not re-exported by `export *`.
    files["frontend/more.js"] = "export default function unmount() {}"
    assert problems_for(files) == [
        "frontend/index.js:exports: the frontend entry does not export unmount "
        "(add `export async function unmount(el) { … }` (docs/frontend.md))"
    ]
    # Outside frontend/ or absent: nothing to follow.
    files["frontend/index.js"] = 'export * from "../backend/x.js";\nexport * from "./gone.js";'
    assert len(problems_for(files)) == 1


def test_the_problem_names_the_file_what_is_missing_and_the_signature() -> None:
    (problem,) = check_frontend_exports(
        "frontend/main.mjs", {"frontend/main.mjs": b"export default { mount() {} };"}.get
    )
    assert problem.file == "frontend/main.mjs"
    assert problem.reason == (
        "the frontend entry does not export mount or unmount "
        "(an `export default` is not used: the shell calls named exports)"
    )
    assert "export async function mount(el, ctx) { … }" in problem.hint
    assert "export async function unmount(el) { … }" in problem.hint
    (binary,) = check_frontend_exports("frontend/index.js", {"frontend/index.js": b"\xff"}.get)
    assert "UTF-8" in binary.reason


def test_check_app_files_scans_the_entry_when_given_contents(tmp_path: Path) -> None:
    manifest = parse_manifest(
        b'id = "com.example.x"\nname = "X"\nversion = "1.0.0"\ndescription = "x"\n'
        b'publisher = "example"\nlicense = "MIT"\nplatform = "^1.0"\n'
        b'[frontend]\nentry = "index.js"\n'
    )
    (tmp_path / "frontend").mkdir()
    (tmp_path / "frontend/index.js").write_text("export function mount() {}\n")
    files = ["app.toml", "frontend/index.js"]
    assert check_app_files(manifest, files) == []  # paths only: no scan
    (problem,) = check_app_files(manifest, files, read=directory_reader(tmp_path))
    assert problem.reason == "the frontend entry does not export unmount"


@pytest.mark.parametrize("toml", APPS, ids=lambda p: p.parent.name)
def test_every_example_and_test_app_passes(toml: Path) -> None:
    app = toml.parent
    manifest = load_manifest(app)
    files = {str(p.relative_to(app)) for p in app.rglob("*") if p.is_file()}
    problems = check_app_files(manifest, files, read=directory_reader(app))
    assert [p for p in problems if "export" in p.reason] == []


def test_the_scaffolded_app_passes(tmp_path: Path) -> None:
    app = create_app(tmp_path / "hello", publisher="example")
    manifest = load_manifest(app)
    files = {str(p.relative_to(app)) for p in app.rglob("*") if p.is_file()}
    assert check_app_files(manifest, files, read=directory_reader(app)) == []


def test_a_computed_key_is_not_a_binding() -> None:
    assert names('export const { [key]: mount, ["x" + y]: unmount } = o;') == {"mount", "unmount"}
