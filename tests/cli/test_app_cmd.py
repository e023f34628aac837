from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

from apprt.package import build_package
from tests.conftest import CliResult

Apprt = Callable[..., CliResult]


def test_developer_loop(apprt: Apprt, tmp_path: Path) -> None:
    app = tmp_path / "demo"
    assert apprt("app", "init", app).exit_code == 0
    assert apprt("app", "validate", app).exit_code == 0
    assert apprt("keys", "generate", "-o", tmp_path / "keys").exit_code == 0
    one, two = tmp_path / "one.apppkg", tmp_path / "two.apppkg"
    packed = apprt("app", "pack", app, "-o", one, "--json")
    assert packed.exit_code == 0, packed.stderr
    assert packed.json()["id"] == "com.example.demo"
    assert apprt("app", "pack", app, "-o", two).exit_code == 0
    assert one.read_bytes() == two.read_bytes(), "packing twice must give identical bytes"

    signed = apprt("app", "sign", one, "--key", tmp_path / "keys" / "apprt-signing.key", "--json")
    assert signed.exit_code == 0, signed.stderr
    pub = tmp_path / "keys" / "apprt-signing.pub"
    shown = apprt("app", "inspect", one, "--key", pub, "--json").json()
    assert shown["manifest"]["id"] == "com.example.demo"
    assert shown["signatures"] == [
        {
            "key_id": signed.json()["key_id"],
            "valid": True,
            "status": "valid signature by a trusted key",
        }
    ]
    assert {f["path"] for f in shown["files"]} >= {"app.toml", "backend/demo/main.py"}
    assert apprt("app", "validate", one, "--key", pub).exit_code == 0
    human = apprt("app", "inspect", one)
    assert human.exit_code == 0 and "not verified" in human.stdout


def test_scaffolded_app_passes_its_own_tests(apprt: Apprt, tmp_path: Path) -> None:
    assert apprt("app", "init", tmp_path / "hello-world").exit_code == 0
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path / "hello-world",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout


def test_init_refuses_existing_dir_and_bad_names(apprt: Apprt, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    taken = apprt("app", "init", tmp_path / "taken")
    assert taken.exit_code == 1 and "already exists" in taken.stderr
    bad = apprt("app", "init", tmp_path / "Bad_Name", "--json")
    assert bad.exit_code == 1
    assert bad.json()["problems"][0]["location"] == "NAME"
    assert not (tmp_path / "Bad_Name").exists()


def test_validate_lists_every_problem_with_file_field_and_reason(
    apprt: Apprt, tmp_path: Path
) -> None:
    app = tmp_path / "broken"
    assert apprt("app", "init", app).exit_code == 0
    toml = (app / "app.toml").read_text()
    toml = toml.replace('version = "0.1.0"', 'version = "1.0"').replace(
        'entry = "broken.main:app"', 'entry = "broken.missing:app"'
    )
    (app / "app.toml").write_text(toml.replace('tenancy = "isolated"', 'tenancy = "solo"'))
    (app / "frontend" / "index.js").unlink()
    result = apprt("app", "validate", app, "--json")
    assert result.exit_code == 1
    problems = {(p["location"], p["file"]) for p in result.json()["problems"]}
    manifest = str(app / "app.toml")
    assert {("version", manifest), ("tenancy", manifest)} <= problems
    human = apprt("app", "validate", app)
    assert "version" in human.stderr and "fix:" in human.stderr


def test_validate_reports_file_problems_when_the_manifest_is_valid(
    apprt: Apprt, tmp_path: Path
) -> None:
    app = tmp_path / "holes"
    assert apprt("app", "init", app).exit_code == 0
    shutil.rmtree(app / "backend")
    (app / "frontend" / "index.js").unlink()
    result = apprt("app", "validate", app, "--json")
    assert result.exit_code == 1
    locations = sorted(p["location"] for p in result.json()["problems"])
    assert locations == ["backend.entry", "frontend.entry"]


def test_validate_reads_the_frontend_entrys_exports_in_dirs_and_packages(
    apprt: Apprt, tmp_path: Path
) -> None:
    app = tmp_path / "noexports"
    assert apprt("app", "init", app).exit_code == 0
    entry = app / "frontend" / "index.js"
    entry.write_text(entry.read_text().replace("export function unmount", "function unmount"))
    assert apprt("app", "pack", app, "-o", tmp_path / "x.apppkg").exit_code == 1  # refused
    package = tmp_path / "noexports.apppkg"
    build_package(app, package)  # the library packs it anyway: as a third-party tool might
    for target in (app, package):
        result = apprt("app", "validate", target, "--json")
        assert result.exit_code == 1, result.stdout
        problems = result.json()["problems"]
        assert [(p["file"], p["location"]) for p in problems] == [("frontend/index.js", "exports")]
        assert "unmount" in problems[0]["reason"]


def test_validate_and_usage_exit_codes(apprt: Apprt, tmp_path: Path) -> None:
    assert apprt("app", "validate", tmp_path / "nope").exit_code == 1
    assert apprt("app", "validate").exit_code == 2  # usage: missing argument
    assert apprt("app", "frobnicate").exit_code == 2


def test_tampered_package_is_rejected(apprt: Apprt, tmp_path: Path) -> None:
    app = tmp_path / "demo"
    apprt("app", "init", app)
    pkg = tmp_path / "demo.apppkg"
    assert apprt("app", "pack", app, "-o", pkg).exit_code == 0
    # Rebuild the archive with one file changed but the original MANIFEST kept.
    evil = tmp_path / "evil.apppkg"
    with tarfile.open(pkg, "r:gz") as src, tarfile.open(evil, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "backend/demo/main.py":
                data = data.replace(b"Hello", b"Owned")
            member.size = len(data)
            import io

            dst.addfile(member, io.BytesIO(data))
    result = apprt("app", "validate", evil, "--json")
    assert result.exit_code == 1
    (problem,) = result.json()["problems"]
    assert problem["file"] == "backend/demo/main.py"
    assert "digest" in problem["reason"] or "sha256" in problem["reason"]


def test_signature_by_another_key_is_refused(apprt: Apprt, tmp_path: Path) -> None:
    app = tmp_path / "demo"
    apprt("app", "init", app)
    pkg = tmp_path / "demo.apppkg"
    apprt("app", "pack", app, "-o", pkg)
    apprt("keys", "generate", "-o", tmp_path / "mine")
    apprt("keys", "generate", "-o", tmp_path / "theirs")
    unsigned = apprt("app", "validate", pkg, "--key", tmp_path / "mine" / "apprt-signing.pub")
    assert unsigned.exit_code == 1 and "not signed" in unsigned.stderr
    apprt("app", "sign", pkg, "--key", tmp_path / "theirs" / "apprt-signing.key")
    other = apprt("app", "validate", pkg, "--key", tmp_path / "mine" / "apprt-signing.pub")
    assert other.exit_code == 1 and "no signature by any of the given keys" in other.stderr


def test_keys_are_never_overwritten(apprt: Apprt, tmp_path: Path) -> None:
    first = apprt("keys", "generate", "-o", tmp_path, "--json")
    assert first.exit_code == 0
    key = Path(first.json()["private"])
    assert key.stat().st_mode & 0o777 == 0o600
    before = key.read_bytes()
    again = apprt("keys", "generate", "-o", tmp_path)
    assert again.exit_code == 1
    assert key.read_bytes() == before


def test_schema_manifest_validates_the_examples(apprt: Apprt) -> None:
    import tomllib

    from jsonschema import Draft202012Validator

    result = apprt("schema", "manifest")
    assert result.exit_code == 0
    schema = result.json()
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    examples = Path(__file__).parents[2] / "examples"
    for toml in sorted(examples.glob("*/app.toml")):
        errors = list(validator.iter_errors(tomllib.loads(toml.read_text())))
        assert errors == [], toml
    assert list(validator.iter_errors({"id": "x"}))  # and it does reject


def test_real_entry_point(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "apprt"
    run = subprocess.run(
        [str(exe), "app", "init", str(tmp_path / "cli-app"), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert '"id": "com.example.cli-app"' in run.stdout
