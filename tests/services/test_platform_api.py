"""The platform API on a running platform (process driver): apps use apprt.sdk from their
requests; the socket identifies the instance; permissions, forged identities, rate limits,
quotas and the audit log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from apprt.accounts.models import OrgRole
from apprt.gateway.identity import identity_headers, load_or_create_secret
from apprt.runtime.lifecycle import State
from apprt.sdk import identity as sdk_identity
from apprt.sdk.identity import Proof, derive_key
from apprt.services.api import RateLimiter
from tests.runtime._platform import Platform, platform_settings, running_platform
from tests.services._apps import call, deploy, make_app, raw, raw_bytes, socket_of

PROBE, NOSTATE, SHARED = "com.test.probe", "com.test.nostate", "com.test.shared"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("services-api")
    with running_platform(root) as platform:
        for org in ("alpha", "beta", "gamma"):
            platform.org(org)
        apps = root / "apps"
        probe = make_app(apps, PROBE)
        deploy(platform, probe, "alpha", grants=["state"])
        deploy(platform, probe, "beta", grants=["state"])
        deploy(platform, probe, "gamma", grants=[])  # declared, not granted
        deploy(platform, make_app(apps, NOSTATE, permissions=[]), "alpha", grants=["state"])
        shared = make_app(apps, SHARED, tenancy="shared")
        deploy(platform, shared, "alpha", grants=["state"])
        deploy(platform, shared, "beta", grants=["state"])
        yield platform


def _audit(platform: Platform, org: str, **params: Any) -> list[dict[str, Any]]:
    with platform.client() as client:
        response = client.get(f"/api/v1/orgs/{org}/audit", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def _instance_key(platform: Platform, org: str, app_id: str) -> bytes:
    secret = load_or_create_secret(platform.settings)
    return derive_key(secret, platform.supervisor.get(org, app_id).id)


def _proof(key: bytes, org: str, *, now: float | None = None) -> str:
    target = "/call"
    headers = identity_headers(
        key,
        org=org,
        user="mallory",
        roles=["member"],
        grants=["state"],
        config="{}",
        method="POST",
        target=target,
        now=now,
    )
    values = tuple(sorted((k.decode(), v.decode()) for k, v in headers))
    return Proof(values, "POST", target).encode()


def test_an_app_uses_its_state_through_the_sdk(platform: Platform) -> None:
    with platform.client() as client:
        startup = client.get(f"/apps/alpha/{PROBE}/startup").json()
    # the socket existed before the app started: its lifespan startup asked whoami
    assert startup["org"] == "alpha" and startup["permissions"] == ["state"]
    assert startup["app_id"] == PROBE and startup["tenancy"] == "isolated"

    def c(op: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return call(platform, "alpha", PROBE, op, *args, **kwargs)

    v1 = c("put", "doc", {"title": "é"})["result"]
    assert c("get", "doc") == {"result": {"title": "é"}}
    assert c("get", "missing", {"default": True}) == {"result": {"default": True}}
    assert c("increment", "n", 5)["result"] == 5
    assert c("increment", "n", sync=True)["result"] == 6  # the blocking module functions
    v2 = c("compare_and_set", "doc", v1, {"title": "two"})["result"]
    stale = c("compare_and_set", "doc", v1, {"title": "three"})
    assert stale["error"] == "Conflict" and stale["current_version"] == v2
    assert "read the key again" in stale["message"]
    for i in range(5):
        c("put", f"notes/{i}", i)
    page = c("list", "notes/", limit=2)["result"]
    assert [e["key"] for e in page["items"]] == ["notes/0", "notes/1"] and page["next"] == "notes/1"
    assert [e["value"] for e in c("items", "notes/")["result"]] == [0, 1, 2, 3, 4]
    assert c("delete", "notes/0")["result"] is True
    assert c("delete", "notes/0")["result"] is False
    usage = c("usage")["result"]
    assert usage["keys"] == 6 and usage["max_bytes"] == 1024 * 1024  # storage_mb = 1
    events = _audit(platform, "alpha", app=PROBE, outcome="ok")
    assert {"state.put", "state.get", "state.increment", "state.list", "whoami"} <= {
        e["operation"] for e in events
    }
    put = next(e for e in events if e["operation"] == "state.put" and e["target"] == "doc")
    instance = platform.supervisor.get("alpha", PROBE).id
    assert (put["instance_id"], put["permission"], put["org"]) == (instance, "state", "alpha")


def test_quota_is_enforced_through_the_api(platform: Platform) -> None:
    big = "x" * 200_000
    results = [call(platform, "beta", PROBE, "put", f"big/{i}", big) for i in range(6)]
    assert [r.get("error") for r in results[:5]] == [None] * 5
    refused = results[5]
    assert refused["error"] == "QuotaExceeded" and refused["status"] == 507
    assert "storage_mb" in refused["hint"]
    rows = _audit(platform, "beta", app=PROBE, outcome="quota_exceeded")
    assert rows and rows[0]["target"] == "big/5"
    for i in range(5):
        call(platform, "beta", PROBE, "delete", f"big/{i}")


def test_organizations_never_see_each_others_state(platform: Platform) -> None:
    call(platform, "alpha", PROBE, "put", "secret", "alpha's")
    assert call(platform, "beta", PROBE, "get", "secret") == {"result": None}
    assert call(platform, "beta", PROBE, "list", "sec")["result"]["items"] == []

    # a shared-tenancy app: one instance, each call for the organization of its request
    call(platform, "alpha", SHARED, "put", "k", "alpha's", identity=True)
    call(platform, "beta", SHARED, "put", "k", "beta's", identity=True)
    assert call(platform, "alpha", SHARED, "get", "k", identity=True)["result"] == "alpha's"
    assert call(platform, "beta", SHARED, "get", "k", identity=True)["result"] == "beta's"
    assert call(platform, "beta", SHARED, "get", "secret", identity=True)["result"] is None
    anonymous = call(platform, "alpha", SHARED, "get", "k")  # no identity forwarded
    assert anonymous["error"] == "PermissionDenied"
    assert "identity.current(request)" in anonymous["hint"]


def test_forged_and_foreign_identities_are_refused_and_audited(platform: Platform) -> None:
    path = socket_of(platform, "alpha", SHARED)
    with platform.client() as client:
        genuine = client.get(f"/apps/alpha/{SHARED}/proof").json()
    assert genuine["org"] == "alpha"
    status, _, body = raw(path, "state/get", {"key": "k"}, {"x-apprt-caller": genuine["proof"]})
    assert status == 200 and body["value"] == "alpha's"  # a genuine proof acts for alpha

    # the app rewrites the organization of a genuine signed identity: beta's data? no
    proof = Proof.decode(genuine["proof"])
    forged = Proof(
        tuple((k, "beta" if k == sdk_identity.ORG else v) for k, v in proof.headers),
        proof.method,
        proof.target,
    )
    status, _, body = raw(path, "state/get", {"key": "k"}, {"x-apprt-caller": forged.encode()})
    assert status == 403 and body["type"] == "urn:apprt:problem:identity-rejected"
    assert "not genuine" in body["detail"] and "'beta'" in body["detail"]
    rows = _audit(platform, "beta", app=SHARED, outcome="identity_rejected")
    assert rows and rows[0]["operation"] == "state.get" and rows[0]["target"] == "k"

    key = _instance_key(platform, "alpha", SHARED)
    # signed with the right key, but for an organization that did not install the app
    status, _, body = raw(path, "state/get", {"key": "k"}, {"x-apprt-caller": _proof(key, "gamma")})
    assert status == 403 and "not installed for organization 'gamma'" in body["detail"]
    # signed long ago: a replay
    old = _proof(key, "alpha", now=time.time() - 3600)
    status, _, body = raw(path, "state/get", {"key": "k"}, {"x-apprt-caller": old})
    assert status == 403 and "s ago" in body["detail"]
    # signed with another instance's key
    other = _proof(_instance_key(platform, "beta", PROBE), "beta")
    status, _, body = raw(path, "state/get", {"key": "k"}, {"x-apprt-caller": other})
    assert status == 403 and "does not match" in body["detail"]
    # garbage
    status, _, body = raw(path, "state/get", {"key": "k"}, {"x-apprt-caller": "%%%"})
    assert status == 403

    # an isolated instance acts only for its own organization, even with a valid signature
    probe = socket_of(platform, "alpha", PROBE)
    beta_proof = _proof(_instance_key(platform, "alpha", PROBE), "beta")
    status, _, body = raw(probe, "state/get", {"key": "secret"}, {"x-apprt-caller": beta_proof})
    assert status == 403 and "serves 'alpha'" in body["detail"]
    status, _, body = raw(probe, "state/get", {"key": "secret"})
    assert status == 200 and body["value"] == "alpha's"  # no identity: its own organization


def test_permissions_must_be_declared_and_granted(platform: Platform) -> None:
    undeclared = call(platform, "alpha", NOSTATE, "put", "k", 1)
    assert undeclared["error"] == "PermissionDenied" and undeclared["status"] == 403
    assert "does not declare the state permission" in undeclared["message"]
    assert "app.toml" in undeclared["hint"]
    ungranted = call(platform, "gamma", PROBE, "get", "k")
    assert ungranted["error"] == "PermissionDenied"
    assert "admin of gamma has not granted state" in ungranted["message"]
    whoami = call(platform, "gamma", PROBE, "whoami")["result"]  # needs no permission
    assert whoami["permissions"] == [] and whoami["org"] == "gamma"
    denied = _audit(platform, "alpha", app=NOSTATE, outcome="denied")
    assert denied and denied[0]["permission"] == "state" and denied[0]["operation"] == "state.put"
    assert _audit(platform, "gamma", app=PROBE, outcome="denied")
    # nothing was written
    assert call(platform, "gamma", PROBE, "whoami")["result"]["org"] == "gamma"


def test_rate_limit_is_a_429_with_retry_after(platform: Platform) -> None:
    api = platform.app.state.platform_api
    saved = api.limiter
    api.limiter = RateLimiter(rate=0.5, burst=3)
    try:
        path = socket_of(platform, "beta", PROBE)
        answers = [raw(path, "state/get", {"key": "k"}) for _ in range(5)]
        assert [a[0] for a in answers] == [200, 200, 200, 429, 429]
        _, headers, body = answers[3]
        assert headers["retry-after"] == "2" and body["retry_after"] == 2
        assert body["type"] == "urn:apprt:problem:rate-limited"
        through_sdk = call(platform, "beta", PROBE, "get", "k")
        assert through_sdk["error"] == "RateLimited" and through_sdk["retry_after"] == 2
        assert call(platform, "alpha", PROBE, "get", "k").get("error") is None  # per org
    finally:
        api.limiter = saved
    rows = _audit(platform, "beta", app=PROBE, outcome="rate_limited")
    assert len(rows) == 1  # refusals in the same second share one row


def test_the_audit_log_is_for_org_admins(platform: Platform) -> None:
    admin = platform.member_token("alpha", "alpha-admin", OrgRole.ORG_ADMIN)
    member = platform.member_token("alpha", "alpha-member")
    stranger = platform.member_token("beta", "beta-admin", OrgRole.ORG_ADMIN)
    url = f"{platform.url}/api/v1/orgs/alpha/audit"
    mine = httpx.get(
        url, headers={"authorization": f"Bearer {admin}"}, params={"limit": 3}, timeout=30
    )
    assert mine.status_code == 200
    page = mine.json()
    assert len(page["events"]) == 3 and {e["org"] for e in page["events"]} == {"alpha"}
    ids = [e["id"] for e in page["events"]]
    assert ids == sorted(ids, reverse=True) and page["next"] == ids[-1]
    older = httpx.get(
        url,
        headers={"authorization": f"Bearer {admin}"},
        params={"before": page["next"]},
        timeout=30,
    ).json()
    assert all(e["id"] < ids[-1] for e in older["events"])
    assert (
        httpx.get(url, headers={"authorization": f"Bearer {member}"}, timeout=30).status_code == 403
    )
    assert (
        httpx.get(url, headers={"authorization": f"Bearer {stranger}"}, timeout=30).status_code
        == 404
    )
    assert httpx.get(url, timeout=30).status_code == 401


def test_the_socket_speaks_strict_http(platform: Platform) -> None:
    path = socket_of(platform, "alpha", PROBE)
    assert raw_bytes(path, b"NOT HTTP\r\n\r\n").startswith(b"HTTP/1.1 400")
    chunked = b"POST /v1/whoami HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"
    assert raw_bytes(path, chunked).startswith(b"HTTP/1.1 411")
    huge = b"POST /v1/state/put HTTP/1.1\r\ncontent-length: 99999999\r\n\r\n"
    assert raw_bytes(path, huge).startswith(b"HTTP/1.1 413")
    get = b"GET /v1/whoami HTTP/1.1\r\nconnection: close\r\n\r\n"
    assert raw_bytes(path, get).startswith(b"HTTP/1.1 404")
    bad_json = b"POST /v1/state/get HTTP/1.1\r\ncontent-length: 3\r\nconnection: close\r\n\r\n{{{"
    assert raw_bytes(path, bad_json).startswith(b"HTTP/1.1 400")
    one = b"POST /v1/whoami HTTP/1.1\r\ncontent-length: 0\r\n"
    two = one + b"\r\n" + one + b"connection: close\r\n\r\n"
    assert raw_bytes(path, two).count(b"HTTP/1.1 200") == 2  # keep-alive
    status, _, body = raw(path, "state/put", {"key": "k"})
    assert status == 400 and body["problems"][0]["reason"] == "value is missing"
    status, _, body = raw(path, "nope")
    assert status == 404 and "no operation" in body["detail"]


def test_the_socket_follows_the_sandbox(platform: Platform) -> None:
    api = platform.app.state.platform_api
    path = socket_of(platform, "beta", PROBE)
    assert path.is_socket() and oct(path.stat().st_mode & 0o777) == "0o666"
    platform.run(platform.supervisor.suspend("beta", PROBE))
    platform.wait_for(lambda: not path.exists(), what="the socket to go with the sandbox")
    instance = platform.supervisor.get("beta", PROBE).id
    assert instance not in api.endpoints.values()
    info = platform.run(platform.supervisor.activate("beta", PROBE))
    assert info.state is State.RUNNING
    again = socket_of(platform, "beta", PROBE)
    assert again != path and again.is_socket()
    assert raw(again, "whoami")[2]["org"] == "beta"
    # a socket lost (e.g. a start that raced the services' start) is put back
    api.detach(again.parent)
    platform.wait_for(lambda: not again.exists(), what="detach")
    platform.run(api.reconcile())
    assert socket_of(platform, "beta", PROBE) == again and raw(again, "whoami")[0] == 200


def test_uninstalled_instances_lose_their_socket(platform: Platform, tmp_path: Path) -> None:
    code = make_app(tmp_path, "com.test.gone")
    deploy(platform, code, "alpha", grants=["state"])
    path = socket_of(platform, "alpha", "com.test.gone")
    assert raw(path, "state/put", {"key": "k", "value": 1})[0] == 200
    platform.run(platform.supervisor.uninstall("alpha", "com.test.gone"))
    platform.wait_for(lambda: not path.exists(), what="the socket to go")


def test_a_failure_inside_the_platform_is_a_500_and_audited(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apprt.services import api as api_module

    def boom(*args: Any) -> dict[str, Any]:
        raise RuntimeError("a bug")

    broken = api_module.Operation("whoami", None, boom)
    monkeypatch.setitem(api_module.OPERATIONS, "/v1/whoami", broken)
    status, _, body = raw(socket_of(platform, "alpha", PROBE), "whoami")
    assert status == 500 and "a bug" not in str(body)
    assert body["type"] == "urn:apprt:problem:internal-service"
    assert _audit(platform, "alpha", app=PROBE, outcome="error")[0]["operation"] == "whoami"


def test_a_restarted_platform_serves_the_sandboxes_it_re_adopts(tmp_path: Path) -> None:
    settings = platform_settings(tmp_path, runtime_stop_on_shutdown=False)
    first = Platform(settings)
    pids: set[int] = set()
    try:
        first.org("acme")
        deploy(first, make_app(tmp_path / "apps", PROBE), "acme", grants=["state"])
        assert call(first, "acme", PROBE, "put", "k", "before")["result"]
        pid = first.pid_of("acme", PROBE)
        assert pid is not None
        pids.add(pid)
        path = socket_of(first, "acme", PROBE)
    finally:  # stop the platform only: the sandbox keeps running, to be re-adopted
        first.server.should_exit = True
        first.thread.join(30)
    assert not path.exists()  # closed with the platform (the app gets "unavailable")
    second = Platform(settings)
    try:
        assert second.pid_of("acme", PROBE) == pid  # re-adopted, not restarted
        assert socket_of(second, "acme", PROBE) == path and path.is_socket()
        assert call(second, "acme", PROBE, "get", "k")["result"] == "before"
    finally:
        second.pids |= pids
        second.close()
