"""What every client command shares: ``--url``, ``--token`` and talking to the API.

Errors from the platform arrive as ``application/problem+json``; they are turned
back into :class:`~apprt.errors.Problem` so the CLI prints them like local ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import typer

from apprt.errors import ApprtError, Problem

DEFAULT_URL = "http://127.0.0.1:8080"

UrlOption = typer.Option(
    DEFAULT_URL, "--url", envvar="APPRT_URL", help="The platform's URL ($APPRT_URL)."
)
TokenOption = typer.Option(
    None, "--token", envvar="APPRT_TOKEN", help="API token ($APPRT_TOKEN).", show_default=False
)


class ApiError(ApprtError):
    """The platform refused a request or could not be reached."""


def _problems_from_response(response: httpx.Response) -> list[Problem]:
    try:
        body: Any = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    problems = [
        Problem(
            reason=str(p.get("reason", "")),
            file=str(p.get("file", "")),
            location=str(p.get("location", "")),
            hint=str(p.get("hint", "")),
        )
        for p in body.get("problems", [])
        if isinstance(p, dict)
    ]
    if not problems:
        detail = body.get("detail") or body.get("title") or response.reason_phrase
        hint = "check --token or $APPRT_TOKEN" if response.status_code == 401 else ""
        problems = [Problem(f"HTTP {response.status_code}: {detail}", hint=hint)]
    return problems


class Client:
    """A thin httpx client for the platform API with apprt's error handling."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 30.0) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(
                [
                    Problem(
                        f"cannot reach the platform at {self.url}: {exc}",
                        hint="start it with `apprt serve` (or `make up`), or pass --url",
                    )
                ],
                title="platform unreachable",
            ) from None
        if response.status_code >= 400:
            raise ApiError(_problems_from_response(response), title="refused by the platform")
        return response

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """Like :meth:`request`, with the body left to read (``response.iter_text()``)."""
        try:
            with self._http.stream(method, path, **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ApiError(
                        _problems_from_response(response), title="refused by the platform"
                    )
                yield response
        except httpx.TransportError as exc:
            raise ApiError(
                [
                    Problem(
                        f"cannot reach the platform at {self.url}: {exc}",
                        hint="start it with `apprt serve` (or `make up`), or pass --url",
                    )
                ],
                title="platform unreachable",
            ) from None

    def get_json(self, path: str) -> Any:
        return self.request("GET", path).json()


def call(
    url: str,
    token: str | None,
    method: str,
    path: str,
    *,
    as_json: bool,
    timeout: float = 30.0,
    **kwargs: Any,
) -> Any:
    """One request as a client command makes it: the JSON answer (None when empty),
    or the platform's problems printed and exit 1."""
    from apprt.cli._output import fail_error

    try:
        with Client(url, token, timeout=timeout) as client:
            response = client.request(method, path, **kwargs)
    except ApprtError as exc:
        fail_error(exc, as_json=as_json)
    return response.json() if response.content else None
