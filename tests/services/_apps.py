"""Deploying the probe test app (and variants of its manifest) on a test platform, and
talking to it: through the gateway (as app code would, via apprt.sdk) or straight to an
instance's platform.sock (as a misbehaving app would)."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
from pathlib import Path
from typing import Any

from apprt.manifest import load_manifest
from apprt.runtime.supervisor import DeploySpec, InstanceInfo
from tests.runtime._platform import Platform

PROBE = Path(__file__).parent / "apps" / "probe"


def make_app(
    root: Path,
    app_id: str,
    *,
    tenancy: str = "isolated",
    permissions: list[str] | None = None,
    storage_mb: int = 1,
) -> Path:
    """A copy of the probe app with its manifest changed; the code directory."""
    code = root / app_id
    if not code.exists():
        shutil.copytree(PROBE, code)
        text = (code / "app.toml").read_text()
        text = text.replace('id = "com.test.probe"', f'id = "{app_id}"')
        text = text.replace('tenancy = "isolated"', f'tenancy = "{tenancy}"')
        perms = ", ".join(f'"{p}"' for p in (["state"] if permissions is None else permissions))
        text = text.replace('permissions = ["state"]', f"permissions = [{perms}]")
        text = re.sub(r"storage_mb = \d+", f"storage_mb = {storage_mb}", text)
        (code / "app.toml").write_text(text)
    return code


def deploy(
    platform: Platform, code: Path, org: str, *, grants: list[str], activate: bool = True
) -> InstanceInfo:
    manifest = load_manifest(code)
    spec = DeploySpec.from_manifest(manifest, code, org=org, grants=grants, trusted=True)
    info = platform.run(platform.supervisor.deploy(spec))
    if activate:
        info = platform.run(platform.supervisor.activate(org, manifest.id))
    return info


def call(
    platform: Platform,
    org: str,
    app_id: str,
    op: str,
    *args: Any,
    identity: bool = False,
    sync: bool = False,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """``state.<op>(*args, **kwargs)`` run by the app while handling a request."""
    body = {"op": op, "args": list(args), "kwargs": kwargs, "identity": identity, "sync": sync}
    with platform.client() as client:
        response = client.post(f"/apps/{org}/{app_id}/call", json=body, headers=headers or {})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def socket_of(platform: Platform, org: str, app_id: str) -> Path:
    instance = platform.supervisor.get(org, app_id).id
    endpoints = platform.app.state.platform_api.endpoints
    run_dir = next(d for d, i in endpoints.items() if i == instance)
    return Path(run_dir) / "platform.sock"


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("platform", timeout=10)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(self._path))


def raw(
    path: Path, op: str, payload: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """One platform API call straight on the socket: status, headers, JSON body."""
    conn = _Unix(path)
    try:
        conn.request(
            "POST",
            f"/v1/{op}",
            body=json.dumps(payload if payload is not None else {}),
            headers={"content-type": "application/json", **(headers or {})},
        )
        response = conn.getresponse()
        data = response.read()
        return (
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            json.loads(data) if data else {},
        )
    finally:
        conn.close()


def raw_bytes(path: Path, data: bytes) -> bytes:
    """Send ``data`` as is; what comes back until the platform closes (or 2 s pass)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.connect(str(path))
        sock.sendall(data)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except TimeoutError:
            pass
        return out
