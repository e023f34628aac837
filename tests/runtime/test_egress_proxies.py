"""Apps reach the network only through their egress proxy, and only where granted."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from apprt.manifest import Resources
from apprt.runtime.supervisor import DeploySpec
from tests.runtime._platform import available_drivers, running_platform

PROBE = Path(__file__).parent / "apps" / "egress_probe"
APP = "com.test.egress-probe"


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A TCP echo server on 127.0.0.1 (bounded: it stops with the test)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                data = conn.recv(16)
                conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    server.close()


@pytest.mark.parametrize("driver", available_drivers())
def test_egress_only_through_the_proxy_and_only_where_granted(
    tmp_path: Path, driver: str, echo_port: int
) -> None:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    other_port = free.getsockname()[1]
    free.close()
    with running_platform(tmp_path, driver) as platform:
        platform.org("acme")
        platform.org("other")
        for org, grants in (("acme", (f"network:127.0.0.1:{echo_port}",)), ("other", ())):
            spec = DeploySpec(
                app_id=APP,
                version="1.0.0",
                code_dir=PROBE,
                entry="egress_probe.main:app",
                org=org,
                resources=Resources(request_timeout_s=10),
                trusted=True,
                grants=grants,
            )
            platform.run(platform.supervisor.deploy(spec))
            platform.run(platform.supervisor.activate(org, APP))
        with platform.client() as client:
            granted = client.get(f"/apps/acme/{APP}/fetch", params={"port": echo_port})
            assert granted.json() == {"status": 200, "reply": "ping"}
            refused = client.get(f"/apps/acme/{APP}/fetch", params={"port": other_port})
            assert refused.json() == {"status": 403}
            # No grant, no socket: there is no way out at all.
            none = client.get(f"/apps/other/{APP}/fetch", params={"port": echo_port})
            assert none.json()["status"] == 0
            assert none.json()["error"] in {"FileNotFoundError", "ConnectionRefusedError"}
