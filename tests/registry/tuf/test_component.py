"""The component's lifespan: it bootstraps, registers the listener, and keeps the
timestamp fresh on its own while the server runs."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from apprt.registry.tuf.config import TufConfig
from apprt.registry.tuf.repository import TufRepository
from apprt.server import create_app
from apprt.settings import Settings


def test_lifespan_bootstraps_listens_and_refreshes(settings: Settings) -> None:
    app = create_app(settings)
    # A two-second timestamp, checked every 0.1 s: re-signed about every second.
    app.state.tuf_config = TufConfig(timestamp_expiry_days=2 / 86400, refresh_interval_s=0.1)
    with TestClient(app) as client:
        repo = app.state.tuf
        assert isinstance(repo, TufRepository)
        assert repo in app.state.registry_listeners
        first = client.get("/tuf/timestamp.json").json()["signed"]["version"]
        deadline = time.monotonic() + 60  # a guard against hanging
        while client.get("/tuf/timestamp.json").json()["signed"]["version"] == first:
            assert time.monotonic() < deadline, "the timestamp was never re-signed"
            time.sleep(0.1)
    assert repo not in app.state.registry_listeners
    assert (settings.data_dir / "tuf-keys" / "timestamp.key").exists()
