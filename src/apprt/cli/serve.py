"""``apprt serve``: run the whole platform in one process.

Options fall back to ``APPRT_*`` environment variables, the same ones
:class:`~apprt.settings.Settings` reads, so ``APPRT_DATA_DIR=/srv/apprt apprt serve``
and ``apprt serve --data-dir /srv/apprt`` are the same thing. The app is built here
and handed to uvicorn as an object (not an import string), so what was parsed on
the command line is exactly what runs; the cost is no ``--reload`` and one worker
process, which is what the embedded default is.

The server stack (FastAPI, SQLAlchemy, uvicorn) is imported inside :func:`serve`:
this module is imported by every ``apprt`` command, and the other commands should
not pay a second of imports they never use.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from apprt import __version__
from apprt.cli._output import console
from apprt.settings import Settings


class LogLevel(StrEnum):
    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    DEBUG = "debug"


def serve(
    port: Annotated[
        int, typer.Option(envvar="APPRT_PORT", min=0, max=65535, help="TCP port to listen on.")
    ] = 8080,
    host: Annotated[
        str, typer.Option(envvar="APPRT_HOST", help="Address to bind (0.0.0.0 for all).")
    ] = "127.0.0.1",
    data_dir: Annotated[
        Path | None,
        typer.Option(
            envvar="APPRT_DATA_DIR",
            file_okay=False,
            help="Where the database, blobs and admin token live (default: ~/.local/share/apprt).",
        ),
    ] = None,
    log_level: Annotated[
        LogLevel, typer.Option(envvar="APPRT_LOG_LEVEL", case_sensitive=False, help="Log level.")
    ] = LogLevel.INFO,
) -> None:
    """Start the platform (API, registry, runtime, shell)."""
    run_server(host=host, port=port, data_dir=data_dir, log_level=log_level)


def run_server(
    *,
    host: str,
    port: int,
    data_dir: Path | None,
    log_level: LogLevel,
    components: Sequence[str] | None = None,
    what: str = "apprt",
) -> None:
    """Build the app from ``components`` (default: the whole platform, see
    :data:`apprt.server.COMPONENTS`) and run it with uvicorn until a signal."""
    import uvicorn

    from apprt.logging import configure_logging
    from apprt.server import COMPONENTS, create_app

    overrides: dict[str, Any] = {"host": host, "port": port, "log_level": log_level.value}
    if data_dir is not None:
        overrides["data_dir"] = data_dir.expanduser().absolute()
    settings = Settings(**overrides)

    configure_logging(settings.log_level)
    shown_host = f"[{host}]" if ":" in host else host
    console.print(f"{what} {__version__} listening on http://{shown_host}:{port}", highlight=False)
    console.print(f"  data:        {escape(str(settings.data_dir))}", highlight=False)
    console.print(f"  admin token: {escape(str(settings.admin_token_path))}", highlight=False)

    uvicorn.run(
        create_app(settings, components=COMPONENTS if components is None else components),
        host=host,
        port=port,
        log_config=None,  # logging is ours, see apprt.logging
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
        server_header=False,
        # Only a proxy we were told about may set the client address (X-Forwarded-For);
        # by default uvicorn trusts any local process, which the gateway must not.
        proxy_headers=False,
    )
