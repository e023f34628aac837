"""The example apps validate, pack (with their wheels) and pass their own checks."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from apprt.manifest import load_manifest
from apprt.package import extract_package, read_package
from tests.conftest import CliResult

EXAMPLES = Path(__file__).parents[2] / "examples"
NAMES = ["crm-connector", "sales-dashboard", "team-notes"]


@pytest.mark.network  # the first run fetches sales-dashboard's wheels into the cache
@pytest.mark.parametrize("name", NAMES)
def test_example_validates_and_packs(
    apprt: Callable[..., CliResult], tmp_path: Path, name: str
) -> None:
    assert apprt("app", "validate", EXAMPLES / name).exit_code == 0
    pkg = tmp_path / f"{name}.apppkg"
    packed = apprt("app", "pack", EXAMPLES / name, "-o", pkg, "--json")
    assert packed.exit_code == 0, packed.stderr
    checked = apprt("app", "validate", pkg)
    assert checked.exit_code == 0, checked.stderr
    manifest = load_manifest(EXAMPLES / name)
    wheels = {f.path for f in read_package(pkg).files if f.path.startswith("wheels/")}
    requirements = manifest.backend.requirements if manifest.backend else []
    assert len(wheels) == len(requirements)


def test_examples_cover_the_features() -> None:
    sales, crm, notes = (
        load_manifest(EXAMPLES / n) for n in ["sales-dashboard", "crm-connector", "team-notes"]
    )
    assert sales.dependencies == {crm.id: "^1.2"} and sales.frontend is not None
    assert sales.config["required"] == ["currency"]
    assert crm.backend is not None and [t.name for t in crm.tools]
    assert notes.tenancy == "shared" and "state" in [p.permission for p in notes.permissions]


def _call(
    app: object, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, object]:
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    raw = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {"type": "http", "method": method, "path": path, "headers": raw}
    asyncio.run(app(scope, receive, send))  # type: ignore[operator]
    return int(sent[0]["status"]), json.loads(b"".join(m.get("body", b"") for m in sent[1:]))  # type: ignore[misc]


def test_backends_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ["crm-connector", "team-notes"]:
        monkeypatch.syspath_prepend(str(EXAMPLES / name / "backend"))
    monkeypatch.setenv("APPRT_APP_DATA", str(tmp_path))
    from crm_connector.main import app as crm

    assert _call(crm, "GET", "/healthz") == (200, {"status": "ok"})
    status, body = _call(crm, "POST", "/tools/lookup-contact", b'{"query": "grace"}')
    assert status == 200 and [c["name"] for c in body["result"]] == ["Grace Hopper"]  # type: ignore[index]
    status, body = _call(crm, "POST", "/tools/list-deals", b'{"limit": 1}')
    assert [d["amount"] for d in body["result"]] == [120000]  # type: ignore[index]

    sys.modules.pop("team_notes.main", None)
    from team_notes.main import app as notes

    assert _call(notes, "POST", "/api/notes", b'{"text": "hi"}')[0] == 401
    post = _call(
        notes,
        "POST",
        "/api/notes",
        b'{"text": "hi"}',
        {"x-apprt-org": "acme", "x-apprt-user": "ada"},
    )
    assert post[0] == 201
    assert _call(notes, "GET", "/api/notes", headers={"x-apprt-org": "acme"})[1] == {
        "notes": [{"id": "1", "author": "ada", "text": "hi"}]
    }
    assert _call(notes, "GET", "/api/notes", headers={"x-apprt-org": "other"})[1] == {"notes": []}


PROBE = """
import asyncio, json, sys
sys.path.insert(0, "backend")
from sales_dashboard.main import app

sent = []

async def receive():
    return {"type": "http.request", "body": b"", "more_body": False}

async def send(message):
    sent.append(message)

scope = {
    "type": "http", "method": "GET", "path": "/api/summary", "query_string": b"",
    "headers": [(b"x-apprt-config", b'{"currency": "EUR"}')],
    "scheme": "http", "server": ("test", 80), "root_path": "",
}
asyncio.run(app(scope, receive, send))
print(json.loads(sent[1]["body"])["currency"])
"""


@pytest.mark.network
def test_sales_dashboard_runs_on_its_vendored_wheels(
    apprt: Callable[..., CliResult], tmp_path: Path
) -> None:
    """The packed backend runs on exactly the wheels in its package, in a bare venv."""
    pkg = tmp_path / "sd.apppkg"
    assert apprt("app", "pack", EXAMPLES / "sales-dashboard", "-o", pkg).exit_code == 0
    tree = tmp_path / "tree"
    extract_package(pkg, tree)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    python = venv / "bin" / "python"
    wheels = sorted(str(p) for p in (tree / "wheels").glob("*.whl"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            *wheels,
        ],
        check=True,
        timeout=180,
    )
    run = subprocess.run(
        [python, "-I", "-c", PROBE], cwd=tree, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "EUR"
