"""The ``apprt`` command line, one module per noun.

Conventions every command follows (see ``docs/cli.md``):

* client commands take ``--url`` (default ``$APPRT_URL``, else http://127.0.0.1:8080)
  and ``--token`` (default ``$APPRT_TOKEN``);
* ``--json`` prints machine-readable output on stdout;
* exit codes: 0 ok, 1 refused or invalid input, 2 usage error.
"""

from __future__ import annotations

import typer

from apprt import PLATFORM_API_VERSION, __version__
from apprt.cli import app_cmd, keys, logs, org, runtime, schema, serve, status, user
from apprt.cli import apps as apps_cmd
from apprt.cli import backup as backup_cmd
from apprt.cli import demo as demo_cmd
from apprt.cli import install as install_cmd
from apprt.cli import registry as registry_cmd

cli = typer.Typer(
    name="apprt",
    help="apprt: package, publish, install and run apps on the AI-companions platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
cli.add_typer(app_cmd.cli, name="app", help="Develop apps: init, validate, pack, sign, inspect.")
cli.add_typer(keys.cli, name="keys", help="Ed25519 signing keys for packages.")
cli.add_typer(schema.cli, name="schema", help="Export JSON Schemas of apprt's formats.")
cli.add_typer(org.cli, name="org", help="Organizations (tenants) and their members.")
cli.add_typer(user.cli, name="user", help="Users and their roles in organizations.")
cli.command("login")(user.login)
cli.add_typer(registry_cmd.cli, name="registry", help="The app registry: publishers, review...")
cli.command("publish")(registry_cmd.publish)
cli.add_typer(runtime.cli, name="runtime", help="App instances: state, suspend, activate, restart.")
cli.command("logs")(logs.logs)
cli.command("serve", help="Start the platform (API, registry, runtime, shell).")(serve.serve)
cli.command("status")(status.status)
cli.command("whoami")(status.whoami)
cli.command("backup")(backup_cmd.backup)
cli.command("restore")(backup_cmd.restore)
cli.command("install")(install_cmd.install)
cli.command("update")(install_cmd.update)
cli.command("uninstall")(install_cmd.uninstall)
cli.add_typer(apps_cmd.cli, name="apps", help="The apps installed in an organization.")
cli.command("demo")(demo_cmd.demo)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"apprt {__version__} (platform API {PLATFORM_API_VERSION})")
        raise typer.Exit()


@cli.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """apprt: package, publish, install and run apps on the AI-companions platform."""


def main() -> None:
    cli()
