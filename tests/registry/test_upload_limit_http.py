"""An oversize upload to a real ``apprt serve``, over loopback HTTP, is cut at the
limit: a 413 problem+json comes back while the client is still sending, the server
holds none of it in memory, and nothing is left in the blob store."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests._serve import ServeProcess, environment, serving

MIB = 1 << 20
LIMIT = 1 * MIB
BODY = 200 * MIB
CHUNK = 256 * 1024


def _rss(pid: int) -> int:
    """Resident set size of process ``pid``, in bytes (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


class _Sampler(threading.Thread):
    """Samples a process' RSS every few milliseconds; keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = _rss(pid)
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.005):
            self.peak = max(self.peak, _rss(self.pid))

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def _publisher_token(http: httpx.Client, admin: str) -> str:
    headers = {"Authorization": f"Bearer {admin}"}
    r = http.post("/api/v1/registry/publishers", json={"name": "big"}, headers=headers)
    assert r.status_code == 201, r.text
    r = http.post(
        "/api/v1/registry/publishers/big/tokens",
        json={"scopes": ["com.big.*"], "name": "ci"},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    return token


def _leftovers(blob_root: Path) -> list[str]:
    return sorted(str(p.relative_to(blob_root)) for p in blob_root.rglob("*") if p.is_file())


def test_a_200_mb_streamed_upload_is_cut_at_the_limit_over_http(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = environment(
        {
            "APPRT_REGISTRY_MAX_UPLOAD_BYTES": str(LIMIT),
            "APPRT_RUNTIME_DRIVER": "process",
            "APPRT_LOG_LEVEL": "warning",
        }
    )
    server: ServeProcess
    with (
        serving(data, env=env, log=tmp_path / "serve.log") as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        token = _publisher_token(http, (data / "admin.token").read_text().strip())
        blob_root = data / "blobs"
        before = _leftovers(blob_root)
        sent = 0

        def body() -> Iterator[bytes]:  # chunked: no Content-Length to refuse early
            nonlocal sent
            chunk = b"\x1f\x8b" + bytes(CHUNK - 2)  # gzip magic first, then zeros
            while sent < BODY:
                sent += len(chunk)
                yield chunk

        sampler = _Sampler(server.proc.pid)
        baseline = sampler.peak
        sampler.start()
        started = time.monotonic()
        try:
            r = http.post(
                "/api/v1/registry/uploads",
                content=body(),
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/octet-stream",
                },
                timeout=20,
            )
        finally:
            elapsed = time.monotonic() - started
            peak = sampler.stop()

        assert r.status_code == 413, r.text
        assert r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert problem["type"] == "urn:apprt:problem:upload-too-large"
        assert str(LIMIT) in problem["problems"][0]["reason"]
        # The server stopped reading at the limit: the client could not send the body.
        assert sent < BODY // 2, f"the client sent {sent} of {BODY} bytes"
        print(f"sent {sent} bytes, server RSS +{peak - baseline}, {elapsed:.2f} s")
        # ... and held none of it: RSS grew by far less than the body (or the limit x 16).
        assert peak - baseline < 16 * LIMIT, f"server RSS grew by {peak - baseline} bytes"
        # Nothing kept: no blob, no temporary file.
        assert _leftovers(blob_root) == before
        # The server is fine afterwards.
        assert http.get("/healthz").status_code == 200
