"""A request over an app's ``max_concurrency`` is a 429 problem with ``Retry-After``."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import httpx

from tests.runtime._platform import ECHO_ID, running_platform

PROBLEM_JSON = "application/problem+json"


def test_concurrency_429_says_when_to_retry(tmp_path: Path) -> None:
    with running_platform(tmp_path, "process") as platform:
        org = platform.org("busy")
        info = platform.deploy(org, max_concurrency=1, request_timeout_s=30)
        slot = platform.supervisor.get_instance(info.id)
        release = slot.data_dir / "release-hold"

        def held() -> int:
            with httpx.Client(base_url=platform.url, headers=platform.headers, timeout=60) as c:
                params = {"name": release.name, "max": 30}
                return c.get(f"/apps/{org}/{ECHO_ID}/hold", params=params).status_code

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            try:
                holding = pool.submit(held)
                platform.wait_for(lambda: slot.in_flight == 1, timeout=30, what="1 request held")
                with platform.client() as client:
                    refused = client.get(f"/apps/{org}/{ECHO_ID}/healthz")
            finally:
                release.touch()
            assert holding.result() == 200
        assert refused.status_code == 429
        assert refused.headers["content-type"] == PROBLEM_JSON
        assert "max_concurrency" in refused.json()["detail"]
        assert refused.headers["retry-after"] == "1"
