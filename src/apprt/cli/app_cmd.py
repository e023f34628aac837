"""``apprt app``: the developer's loop, init → validate → pack → sign → inspect.

The module is named ``app_cmd`` so it does not shadow the word *app* everywhere
else; the command is ``apprt app``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from apprt.cli._output import JsonOption, console, fail, fail_error, print_json
from apprt.errors import ApprtError, Problem
from apprt.manifest import Manifest, parse_manifest
from apprt.package import (
    PackageInfo,
    SignatureCheck,
    build_package,
    collect_wheels,
    extract_package,
    load_private_key,
    load_public_key,
    read_package,
    sign_package,
    verify_signatures,
)
from apprt.package.checks import Reader, check_app_files, directory_reader
from apprt.scaffold import create_app

cli = typer.Typer(no_args_is_help=True)

KeysOption = typer.Option(
    None,
    "--key",
    help="Trusted public key (PEM) to verify signatures with; repeatable.",
    show_default=False,
)


def _validate(path: Path) -> tuple[Manifest | None, PackageInfo | None, list[Problem]]:
    """Validate an app directory or a package; every problem found, not just the first.

    A directory is validated by packing it into a scratch file, so the same path,
    layout and size rules apply as to ``apprt app pack`` and to the registry.
    """
    problems: list[Problem] = []
    info: PackageInfo | None = None
    packaged = path.is_file()
    with tempfile.TemporaryDirectory(prefix="apprt-validate-") as scratch:
        try:
            if packaged:
                # Unpacked (all checks of read_package, then the files) so the
                # frontend entry's exports can be read like a directory's.
                info = extract_package(path, Path(scratch) / "unpacked")
            else:
                info = build_package(path, Path(scratch) / "check.apppkg")
        except ApprtError as exc:
            problems.extend(exc.problems)
            if packaged or not (path / "app.toml").is_file():
                return None, None, problems
        read = directory_reader(Path(scratch) / "unpacked" if packaged else path)
        return _validate_manifest(path, info, packaged, read, problems)


def _validate_manifest(
    path: Path, info: PackageInfo | None, packaged: bool, read: Reader, problems: list[Problem]
) -> tuple[Manifest | None, PackageInfo | None, list[Problem]]:

    manifest_file = f"{path}!app.toml" if packaged else str(path / "app.toml")
    try:
        text = info.manifest_text if info else (path / "app.toml").read_bytes()
        manifest = parse_manifest(text, file=manifest_file)
    except ApprtError as exc:
        return None, info, problems + exc.problems
    if info is not None:
        files = {entry.path for entry in info.files}
        for problem in check_app_files(manifest, files, packaged=packaged, read=read):
            file = manifest_file if problem.file == "app.toml" else problem.file
            problems.append(
                Problem(problem.reason, file=file, location=problem.location, hint=problem.hint)
            )
    return manifest, info, problems


def _trusted_keys(paths: list[Path] | None) -> list[Any]:
    return [load_public_key(p) for p in paths or []]


def _signature_rows(checks: list[SignatureCheck], keys_given: bool) -> list[dict[str, Any]]:
    return [
        {
            "key_id": c.key_id,
            "valid": c.valid,
            "status": c.reason if keys_given else "not verified: pass --key PUBLIC_KEY",
        }
        for c in checks
    ]


@cli.command("init")
def init(
    name: Path = typer.Argument(..., help="Directory to create; its name is the app's name."),
    app_id: str | None = typer.Option(
        None, "--id", help="App id (default com.<publisher>.<name>)."
    ),
    publisher: str = typer.Option("example", "--publisher", help="Your publisher account."),
    as_json: bool = JsonOption,
) -> None:
    """Scaffold an app that validates, packs, and passes its own tests."""
    try:
        target = create_app(name, app_id=app_id, publisher=publisher)
    except ApprtError as exc:
        fail_error(exc, as_json=as_json)
    manifest, _, problems = _validate(target)
    if problems or manifest is None:  # the template itself is broken: a bug in apprt
        fail(problems, title="the new app does not validate", as_json=as_json)
    if as_json:
        print_json({"ok": True, "path": str(target), "id": manifest.id})
        return
    console.print(f"[green]created[/] {target} ([bold]{manifest.id}[/] {manifest.version})")
    console.print(
        f"next: cd {target} && python -m pytest tests && apprt app pack . -o {target.name}.apppkg"
    )


@cli.command("validate")
def validate(
    path: Path = typer.Argument(..., help="An app directory or a .apppkg file."),
    keys: list[Path] | None = KeysOption,
    as_json: bool = JsonOption,
) -> None:
    """Check a manifest and its files; exit 1 listing every problem."""
    if not path.exists():
        fail(
            [Problem("no such file or directory", file=str(path), hint="check the path")],
            as_json=as_json,
        )
    manifest, info, problems = _validate(path)
    if info is not None and keys:
        try:
            checks = verify_signatures(info, _trusted_keys(keys))
        except ApprtError as exc:
            fail_error(exc, as_json=as_json)
        if not checks:
            problems.append(
                Problem(
                    "package is not signed", file=str(path), hint="apprt app sign FILE --key KEY"
                )
            )
        problems.extend(
            Problem(c.reason, file=f"{path}!SIGNATURE", location=c.key_id)
            for c in checks
            if c.valid is False
        )
        if checks and not any(c.valid for c in checks):
            problems.append(
                Problem(
                    "no signature by any of the given keys",
                    file=f"{path}!SIGNATURE",
                    hint="sign with the matching private key, or pass the signer's public key",
                )
            )
    if problems or manifest is None:
        fail(problems, title=f"{path} is not valid", as_json=as_json)
    if as_json:
        print_json({"ok": True, "id": manifest.id, "version": manifest.version})
    else:
        console.print(f"[green]valid[/]: {manifest.id} {manifest.version}")


@cli.command("pack")
def pack(
    directory: Path = typer.Argument(..., help="The app directory."),
    output: Path = typer.Option(..., "-o", "--output", help="The .apppkg file to write."),
    wheel_cache: Path | None = typer.Option(
        None, "--wheel-cache", help="Wheel cache (default $APPRT_WHEEL_CACHE or ~/.cache)."
    ),
    offline: bool = typer.Option(False, "--offline", help="Use only the wheel cache."),
    as_json: bool = JsonOption,
) -> None:
    """Build a deterministic package, vendoring the pinned requirements as wheels."""
    manifest, _, problems = _validate(directory)
    if problems or manifest is None:
        fail(problems, title=f"{directory} is not valid", as_json=as_json)
    requirements = manifest.backend.requirements if manifest.backend else []
    try:
        with tempfile.TemporaryDirectory(prefix="apprt-wheels-") as wheels:
            collect_wheels(requirements, Path(wheels), cache_dir=wheel_cache, offline=offline)
            info = build_package(directory, output, wheels_dir=Path(wheels))
    except ApprtError as exc:
        fail_error(exc, as_json=as_json)
    summary = {
        "ok": True,
        "path": str(output),
        "id": manifest.id,
        "version": manifest.version,
        "sha256": info.archive_sha256,
        "size": info.archive_size,
        "files": len(info.files),
        "wheels": sum(1 for f in info.files if f.path.startswith("wheels/")),
    }
    if as_json:
        print_json(summary)
    else:
        console.print(
            f"[green]packed[/] {output}: {manifest.id} {manifest.version}, "
            f"{summary['files']} files ({summary['wheels']} wheels), {info.archive_size} bytes\n"
            f"sha256 {info.archive_sha256}"
        )


@cli.command("sign")
def sign(
    package: Path = typer.Argument(..., help="The .apppkg file."),
    key: Path = typer.Option(..., "--key", help="Ed25519 private key (PEM)."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Write here, not in place."),
    as_json: bool = JsonOption,
) -> None:
    """Add a detached Ed25519 signature over the package's MANIFEST digest."""
    try:
        private = load_private_key(key)
        info = sign_package(package, private, out=output)
    except ApprtError as exc:
        fail_error(exc, as_json=as_json)
    signer = verify_signatures(info, [private.public_key()])
    key_id = next(c.key_id for c in signer if c.valid)
    if as_json:
        print_json({"ok": True, "path": str(output or package), "key_id": key_id})
    else:
        console.print(f"[green]signed[/] {output or package} with key {key_id}")


@cli.command("inspect")
def inspect(
    package: Path = typer.Argument(..., help="The .apppkg file."),
    keys: list[Path] | None = KeysOption,
    as_json: bool = JsonOption,
) -> None:
    """Show a package's manifest, files, digests and signature status."""
    try:
        info = read_package(package)
        manifest = parse_manifest(info.manifest_text, file=f"{package}!app.toml")
        checks = verify_signatures(info, _trusted_keys(keys))
    except ApprtError as exc:
        fail_error(exc, as_json=as_json)
    signatures = _signature_rows(checks, keys_given=bool(keys))
    if as_json:
        print_json(
            {
                "path": str(package),
                "sha256": info.archive_sha256,
                "size": info.archive_size,
                "manifest_digest": info.manifest_digest,
                "manifest": manifest.model_dump(mode="json"),
                "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in info.files],
                "signatures": signatures,
            }
        )
        return
    about = Table(title=f"{manifest.name} ({manifest.id} {manifest.version})", show_header=False)
    about.add_row("publisher", manifest.publisher)
    about.add_row("license", manifest.license)
    about.add_row("platform", manifest.platform)
    about.add_row("tenancy", manifest.tenancy.value)
    about.add_row("permissions", ", ".join(r.permission for r in manifest.permissions) or "none")
    about.add_row(
        "dependencies",
        ", ".join(f"{k} {v}" for k, v in manifest.dependencies.items()) or "none",
    )
    about.add_row("package sha256", info.archive_sha256)
    about.add_row("size", f"{info.archive_size} bytes")
    about.add_row("MANIFEST sha256", info.manifest_digest)
    console.print(about)
    files = Table(title="files")
    files.add_column("path")
    files.add_column("size", justify="right")
    files.add_column("sha256")
    for f in info.files:
        files.add_row(f.path, str(f.size), f.sha256)
    console.print(files)
    if not signatures:
        console.print("[yellow]unsigned[/]: sign with apprt app sign FILE --key KEY")
    for row in signatures:
        color = {True: "green", False: "red", None: "yellow"}[row["valid"]]
        console.print(f"signature by [bold]{row['key_id']}[/]: [{color}]{row['status']}[/]")
