"""End to end: the three examples packed, signed and published by the CLI through the
HTTP API of a real ``apprt serve`` on a loopback port."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from apprt.manifest import load_manifest
from tests._serve import environment, serving
from tests.conftest import CliResult

EXAMPLES = Path(__file__).parents[2] / "examples"
#: Publication order: sales-dashboard depends on crm-connector.
ORDER = ["crm-connector", "team-notes", "sales-dashboard"]


def test_examples_are_published_through_the_api_by_the_cli(
    tmp_path: Path, apprt: Callable[..., CliResult]
) -> None:
    packages = {}
    for name in ORDER:
        out = tmp_path / f"{name}.apppkg"
        packed = apprt("app", "pack", EXAMPLES / name, "-o", out, "--json")
        assert packed.exit_code == 0, packed.stdout + packed.stderr
        packages[name] = out
    keys = apprt("keys", "generate", "-o", tmp_path / "keys", "--name", "example")
    assert keys.exit_code == 0, keys.stderr
    for pkg in packages.values():
        signed = apprt("app", "sign", pkg, "--key", tmp_path / "keys" / "example.key")
        assert signed.exit_code == 0, signed.stderr

    data = tmp_path / "platform"
    env = environment({"APPRT_RUNTIME_DRIVER": "process"})
    with serving(data, env=env, log=tmp_path / "serve.log") as server:
        base = server.url
        admin = ["--url", base, "--token", (data / "admin.token").read_text().strip()]
        created = apprt("registry", "publisher", "create", "example", *admin)
        assert created.exit_code == 0, created.stderr
        added = apprt(
            "registry", "key", "add", "example", tmp_path / "keys" / "example.pub", *admin
        )
        assert added.exit_code == 0, added.stderr
        minted = apprt(
            "registry", "token", "create", "example", "--scope", "com.example.*", *admin, "--json"
        )
        assert minted.exit_code == 0, minted.stderr
        publisher = ["--url", base, "--token", minted.json()["token"]]

        for name in ORDER:
            manifest = load_manifest(EXAMPLES / name)
            published = apprt("publish", packages[name], *publisher)
            assert published.exit_code == 0, published.stdout + published.stderr
            # Every check is listed; the examples declare permissions: first versions
            # are reviewed.
            for check in ("archive", "signature", "security", "secrets", "permissions"):
                assert check in published.stdout
            assert "state: pending_review" in published.stdout
            queue = apprt("registry", "review", "list", *admin, "--json").json()
            assert [(q["app_id"], q["version"]) for q in queue] == [(manifest.id, manifest.version)]
            approved = apprt("registry", "review", "approve", manifest.id, manifest.version, *admin)
            assert approved.exit_code == 0 and "published" in approved.stdout

        again = apprt("publish", packages["team-notes"], *publisher, "--json")
        assert again.exit_code == 0 and again.json()["upload"]["idempotent"] is True
        status = apprt("registry", "status", str(again.json()["upload"]["id"]), *publisher)
        assert status.exit_code == 0 and "state: published" in status.stdout

        found = apprt("registry", "search", "sales", "--url", base, "--json").json()
        assert found["results"][0]["app_id"] == "com.example.sales-dashboard"
        versions = apprt(
            "registry", "versions", "com.example.crm-connector", "--url", base, "--json"
        )
        assert [v["state"] for v in versions.json()] == ["published"]
        graph = httpx.get(
            f"{base}/api/v1/registry/apps/com.example.sales-dashboard/versions/1.3.0/dependencies",
            timeout=30,
        ).json()
        assert graph["install_order"] == [
            "com.example.crm-connector@1.2.0",
            "com.example.sales-dashboard@1.3.0",
        ]
        # Lifecycle through the CLI, with the publisher's token.
        deprecated = apprt(
            "registry", "deprecate", "com.example.team-notes", "2.0.1",
            "--message", "use 3.x", "--replacement", "com.example.team-notes@3", *publisher,
        )  # fmt: skip
        assert deprecated.exit_code == 0 and "deprecated" in deprecated.stdout
        assert "use 3.x" in deprecated.stdout
        yanked = apprt(
            "registry", "yank", "com.example.crm-connector", "1.2.0", "--reason", "bug", *publisher
        )
        assert yanked.exit_code == 0 and "yanked" in yanked.stdout
        blocked = apprt("registry", "unpublish", "com.example.crm-connector", "1.2.0", *publisher)
        assert blocked.exit_code == 1 and "sales-dashboard" in blocked.stderr
        removed = apprt(
            "registry", "unpublish", "com.example.sales-dashboard", "1.3.0", *publisher, "--json"
        )
        assert removed.exit_code == 0 and removed.json()["state"] == "unpublished"
        listed = apprt("registry", "publisher", "list", *admin, "--json").json()
        assert listed[0]["apps"] == [
            "com.example.crm-connector", "com.example.sales-dashboard", "com.example.team-notes",
        ]  # fmt: skip
        assert apprt("registry", "serve", "--help").exit_code == 0

        # A refusal through the CLI: unsigned bytes are rejected with the checks shown.
        bogus = tmp_path / "bogus.apppkg"
        bogus.write_bytes(b"not a package")
        refused = apprt("publish", bogus, *publisher)
        assert refused.exit_code == 1
        assert "archive" in refused.stdout and "upload: not a gzip" in refused.stderr
        assert str(data) not in refused.stdout + refused.stderr  # no server paths
