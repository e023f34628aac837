"""``apprt registry tuf ...``: the operator's side of the TUF repository.

These commands work on the data directory's database directly (``--data-dir``, or
``APPRT_DATA_DIR``), on the host that runs the registry: they are how the offline
root and targets keys are used, brought in for the occasion from wherever they are
kept (see ``docs/tuf.md``). Exit 0 done, 1 refused, 2 usage.

``status``              versions, expiries, number of targets, which offline keys are present
``keygen FILE``         a new Ed25519 key file (0600), e.g. for a rotation
``renew ROLE --key F``  re-sign root or targets (new version, fresh expiry) with its key
``rotate ROLE --key F --new-key F``  replace the timestamp or snapshot key (signed by
                        root's key) or the bins key (signed by targets' key)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from apprt.cli._output import JsonOption, console, fail_error, print_json
from apprt.errors import ApprtError
from apprt.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from apprt.registry.tuf.repository import TufRepository

cli = typer.Typer(
    no_args_is_help=True,
    help="The registry's TUF repository: status, offline renewal, key rotation.",
)

DataDirOption = typer.Option(
    None, envvar="APPRT_DATA_DIR", file_okay=False, help="The platform's data directory."
)
KeyOption = typer.Option(..., "--key", exists=True, dir_okay=False, help="Private key file.")


def _repository(data_dir: Path | None) -> tuple[Engine, TufRepository]:
    from apprt.db.engine import make_engine, session_factory
    from apprt.db.migrate import upgrade_to_head
    from apprt.registry.tuf.config import TufConfig
    from apprt.registry.tuf.repository import TufRepository

    settings = Settings(data_dir=data_dir) if data_dir is not None else Settings()
    engine = make_engine(settings)
    upgrade_to_head(engine)
    return engine, TufRepository(session_factory(engine), settings, TufConfig())


@cli.command("status")
def status(data_dir: Path | None = DataDirOption, as_json: bool = JsonOption) -> None:
    """Versions and expiries of every role; which offline keys are on this host."""
    engine, repo = _repository(data_dir)
    try:
        info = repo.status()
    except ApprtError as error:
        fail_error(error, as_json=as_json)
    finally:
        engine.dispose()
    if as_json:
        print_json(info)
        return
    for role, data in info["roles"].items():
        if role.startswith("bins-") and role != "bins-0":
            continue
        label = "bins-*" if role == "bins-0" else role
        console.print(f"{label:<10} v{data['version']:<5} expires {data['expires']}")
    console.print(f"targets    {info['targets']}")
    for role, present in info["offline_keys_present"].items():
        console.print(f"{role} key  {'present' if present else 'offline'}")


@cli.command("keygen")
def keygen(
    path: Annotated[Path, typer.Argument(dir_okay=False, help="Where to write the key (0600).")],
    as_json: bool = JsonOption,
) -> None:
    """Create a new Ed25519 key file (for `rotate --new-key`)."""
    from apprt.registry.tuf.keys import generate_key_file

    try:
        signer = generate_key_file(path)
    except FileExistsError:
        from apprt.cli._output import fail
        from apprt.errors import Problem

        fail(
            [Problem(reason="the file exists", file=str(path), hint="choose a new path")],
            title="not overwritten",
            as_json=as_json,
        )
    keyid = signer.public_key.keyid
    if as_json:
        print_json({"path": str(path), "keyid": keyid})
    else:
        console.print(f"wrote {path} (keyid {keyid})")


@cli.command("renew")
def renew(
    role: Annotated[str, typer.Argument(help="root or targets")],
    key: Path = KeyOption,
    data_dir: Path | None = DataDirOption,
    as_json: bool = JsonOption,
) -> None:
    """Re-sign root or targets with its (offline) key: a new version, a fresh expiry."""
    from apprt.registry.tuf.keys import load_key_file

    engine, repo = _repository(data_dir)
    try:
        version = repo.renew(role, load_key_file(key))
    except ApprtError as error:
        fail_error(error, as_json=as_json)
    finally:
        engine.dispose()
    if as_json:
        print_json({"role": role, "version": version})
    else:
        console.print(f"{role} is now version {version}")


@cli.command("rotate")
def rotate(
    role: Annotated[str, typer.Argument(help="timestamp, snapshot or bins")],
    key: Path = KeyOption,
    new_key: Path | None = typer.Option(
        None,
        "--new-key",
        exists=True,
        dir_okay=False,
        help="The replacement key file (default: a new key, written over the old one).",
    ),
    data_dir: Path | None = DataDirOption,
    as_json: bool = JsonOption,
) -> None:
    """Replace an online role's key. --key is root's key (timestamp, snapshot) or
    targets' key (bins). Running servers pick the new key file up by themselves."""
    from apprt.registry.tuf.keys import generate_key_file, load_key_file

    engine, repo = _repository(data_dir)
    target = repo.key_path(role)
    fresh = target.with_name(target.name + ".new") if new_key is None else None
    try:
        signer = load_key_file(key)
        if fresh is not None:
            fresh.unlink(missing_ok=True)
            replacement = generate_key_file(fresh)
        else:
            assert new_key is not None
            replacement = load_key_file(new_key)
        version = repo.rotate(role, signer, replacement)
        if fresh is not None:
            fresh.replace(target)  # after the commit: servers reload on mismatch
    except ApprtError as error:
        fail_error(error, as_json=as_json)
    finally:
        engine.dispose()
        if fresh is not None:
            fresh.unlink(missing_ok=True)
    signed_by = "targets" if role == "bins" else "root"
    where = target if new_key is None else new_key
    if as_json:
        print_json({"role": role, "signed_by": signed_by, "version": version, "key": str(where)})
    elif new_key is None:
        console.print(f"{role} key replaced at {target} ({signed_by} is now version {version})")
    else:
        console.print(
            f"{role} key replaced ({signed_by} is now version {version}); put {new_key} at "
            f"{target} for the server to use"
        )
