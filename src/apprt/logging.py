"""Logging: structlog for our code, the same output for everyone else's.

:func:`configure_logging` is called once by the process entry point (``apprt
serve``), not by :func:`apprt.server.create_app`: a library must not reconfigure
its host's logging, and tests keep pytest's capture.

All records, whether from structlog (``structlog.get_logger(__name__)``) or from the
standard library (uvicorn, Alembic, SQLAlchemy), go through one root handler with
structlog's :class:`~structlog.stdlib.ProcessorFormatter`:

* JSON lines on stderr when it is not a terminal (journald, containers, log
  shippers parse one format), colored console lines on a terminal;
* uvicorn's access log is routed through it too, rather than left to uvicorn's own
  formatter: that keeps a single format per stream, and its positional fields
  become real keys (``method``, ``path``, ``status``, ``client``) instead of being
  buried in a sentence. ``apprt serve`` passes ``log_config=None`` to uvicorn so it
  installs no handlers of its own.
"""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

LEVELS = ("critical", "error", "warning", "info", "debug")

_HANDLER_NAME = "apprt"


def _uvicorn_access_fields(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """Turn uvicorn.access's positional arguments into keys."""
    args = event_dict.pop("positional_args", None)
    record = event_dict.get("_record")
    if record is not None and record.name == "uvicorn.access" and args and len(args) == 5:
        client, http_method, path, http_version, status = args
        event_dict.update(
            client=client,
            method=http_method,
            path=path,
            http_version=http_version,
            status=status,
        )
    return event_dict


def configure_logging(level: str = "info", *, json: bool | None = None) -> None:
    """Configure structlog and the standard library's root logger.

    ``json=None`` picks JSON when stderr is not a TTY. Calling it again replaces the
    previous configuration (no duplicated handlers).
    """
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LEVELS)}")
    if json is None:
        json = not sys.stderr.isatty()

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor
    final: list[Processor]
    if json:
        renderer = structlog.processors.JSONRenderer()
        final = [structlog.processors.dict_tracebacks, renderer]
    else:
        renderer = structlog.dev.ConsoleRenderer()
        final = [renderer]

    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, _uvicorn_access_fields],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
        pass_foreign_args=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(numeric)
    # uvicorn's loggers must reach the root handler, not handlers of their own.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True
        uv.setLevel(logging.NOTSET)
