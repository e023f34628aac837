"""Sales Dashboard's ASGI app, on Starlette.

Organization settings reach the app in the ``x-apprt-config`` header (JSON), the
organization in ``x-apprt-org``; both are set by the platform's gateway.
"""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

# Until the platform's tools registry is wired in, the summary is computed over a
# fixed sample in the same shape the CRM Connector's crm.list_deals returns.
SAMPLE_DEALS = [
    {"id": 10, "title": "Analytical engine upgrade", "amount": 120000},
    {"id": 12, "title": "Codebreaking consultancy", "amount": 98000},
    {"id": 11, "title": "Compiler licences", "amount": 45000},
]


def settings_of(request: Request) -> dict[str, object]:
    raw = request.headers.get("x-apprt-config", "{}")
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def summary(request: Request) -> JSONResponse:
    settings = settings_of(request)
    total = sum(d["amount"] for d in SAMPLE_DEALS)
    return JSONResponse(
        {
            "organization": request.headers.get("x-apprt-org", ""),
            "currency": settings.get("currency", "USD"),
            "pipeline_days": settings.get("pipeline_days", 90),
            "pipeline_total": total,
            "top_deals": SAMPLE_DEALS[:3],
        }
    )


app = Starlette(routes=[Route("/healthz", health), Route("/api/summary", summary)])
