"""Shared-dependency negotiation and the import map, on made-up apps (no browser)."""

from __future__ import annotations

from pathlib import Path

from apprt.manifest import parse_manifest
from apprt.manifest.models import Bundle, SharedDependency
from apprt.package import FileEntry
from apprt.shell.importmap import build, sri_of
from apprt.shell.installed import InstalledApp, VerifiedPackage
from apprt.shell.negotiate import Requester, negotiate


def dep(
    range_: str, bundle: str | None = None, *, singleton: bool = False, strict: bool = False
) -> SharedDependency:
    return SharedDependency(
        version=range_,
        singleton=singleton,
        strict=strict,
        bundle=Bundle(version=bundle, path="p.js") if bundle else None,
    )


def req(app: str, d: SharedDependency, isolation: str = "shadow") -> Requester:
    urls = {"preact": f"/{app}/p.js"} if d.bundle else {}
    return Requester(app, isolation, {"preact": d}, urls)


def modes(plan: object, app: str) -> list[tuple[str, str | None]]:
    return [(r.mode, r.version) for r in plan.resolutions[app]]  # type: ignore[attr-defined]


def test_the_highest_version_satisfying_everyone_is_shared() -> None:
    plan = negotiate([req("a", dep("^10.19.0", "10.24.3")), req("b", dep("^10.22.0", "10.29.8"))])
    assert plan.page_imports == {"preact": "/b/p.js"}
    assert modes(plan, "a") == [("shared", "10.29.8")] == modes(plan, "b")
    assert plan.resolutions["a"][0].provider == "b"


def test_a_range_that_cannot_be_met_gets_its_own_copy() -> None:
    plan = negotiate(
        [
            req("a", dep("^10.19.0", "10.24.3")),
            req("b", dep("^10.22.0", "10.29.8")),
            req("c", dep("^11.0.0", "11.2.0")),
        ]
    )
    assert plan.page_imports == {"preact": "/b/p.js"}  # satisfies two of three
    assert modes(plan, "c") == [("own", "11.2.0")]
    assert plan.own_copies("c") == {"preact": "/c/p.js"}


def test_a_singleton_forces_one_copy_and_refuses_the_strict() -> None:
    apps = [
        req("a", dep("^10.19.0", "10.24.3", singleton=True)),
        req("b", dep("^10.22.0", "10.29.8")),
        req("c", dep("^11.0.0", "11.2.0", singleton=True, strict=True)),
        req("d", dep("^11.0.0", "11.2.0")),
    ]
    # 10.29.8 and 11.2.0 each satisfy two apps: the higher one wins the tie, so the
    # Preact 10 apps run on 11 (with a warning) unless strict.
    plan = negotiate(apps)
    assert plan.page_imports == {"preact": "/c/p.js"}
    assert modes(plan, "a")[0][0] == "forced" and "single copy" in plan.resolutions["a"][0].reason
    assert modes(plan, "b")[0][0] == "forced"
    assert modes(plan, "c") == [("shared", "11.2.0")]
    plan = negotiate(apps[:3])
    assert plan.page_imports == {"preact": "/b/p.js"}
    refused = plan.refused("c")
    assert refused and "strict" in refused[0].reason and "10.29.8" in refused[0].reason


def test_no_copy_in_range_is_refused_with_the_copies_on_offer() -> None:
    plan = negotiate([req("a", dep("^10.0.0", "10.24.3")), req("b", dep("^9.0.0"))])
    (refusal,) = plan.refused("b")
    assert "10.24.3" in refusal.reason and "bundles none" in refusal.reason
    # Without any bundle at all, nobody gets it.
    plan = negotiate([req("x", dep("^10.0.0"))])
    assert plan.page_imports == {} and plan.refused("x")


def test_iframe_apps_resolve_alone_and_never_feed_the_page() -> None:
    plan = negotiate(
        [
            req("a", dep("^10.19.0", "10.24.3")),
            req("f", dep("^10.0.0", "10.29.8"), isolation="iframe"),
            req("g", dep("^11.0.0", "11.2.0"), isolation="iframe"),
        ]
    )
    # The page never runs code from an iframe (untrusted) app's package...
    assert plan.page_imports == {"preact": "/a/p.js"}
    # ...but an iframe app may use the page's (cached) copy when in range.
    assert modes(plan, "f") == [("shared", "10.24.3")]
    assert modes(plan, "g") == [("own", "11.2.0")]


MANIFEST = """
id = "{id}"
name = "{name}"
version = "1.0.0"
description = "test"
publisher = "example"
license = "MIT"
platform = "^1.0"
permissions = ["events:publish:sales.updated"]

[frontend]
entry = "index.js"
isolation = "{isolation}"

[frontend.shared.preact]
version = "{range}"

[frontend.shared.preact.bundle]
version = "{bundle}"
path = "vendor/preact.js"
"""


def installed(app_id: str, isolation: str, range_: str, bundle: str, digest: str) -> InstalledApp:
    manifest = parse_manifest(
        MANIFEST.format(id=app_id, name=app_id, isolation=isolation, range=range_, bundle=bundle)
    )
    files = {
        path: FileEntry(path, 10, digest)
        for path in ("app.toml", "frontend/index.js", "frontend/vendor/preact.js", "frontend/a.css")
    }
    return InstalledApp(
        org="acme",
        app_id=app_id,
        version="1.0.0",
        digest=digest,
        tree=Path("/nonexistent") / digest,
        manifest=manifest,
        package=VerifiedPackage(manifest, files),
        grants=tuple(p.permission for p in manifest.permissions),
        state="frontend only",
    )


def test_the_import_map_is_content_addressed_with_integrity_and_scopes() -> None:
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    org = build(
        "acme",
        [
            installed("com.x.one", "shadow", "^10.19.0", "10.24.3", a),
            installed("com.x.two", "shadow", "^11.0.0", "11.2.0", b),
            installed("com.x.frame", "iframe", "^11.0.0", "11.2.0", c),
        ],
    )
    page = org.page_map()
    # Each copy satisfies one page app: the higher wins the tie; the other app is scoped
    # to its own copy.
    assert page["imports"] == {"preact": f"/assets/sha256/{b}/vendor/preact.js"}
    assert page["scopes"] == {
        f"/assets/sha256/{a}/": {"preact": f"/assets/sha256/{a}/vendor/preact.js"}
    }
    sri = sri_of(FileEntry("x", 1, a))
    assert sri == "sha256-qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqo="
    # Every module of the page's apps, never a stylesheet, never the iframe app's.
    assert sorted(page["integrity"]) == sorted(
        f"/assets/sha256/{d}/{p}" for d in (a, b) for p in ("index.js", "vendor/preact.js")
    )
    frame = org.frame_map("com.x.frame")
    assert frame is not None
    # The frame prefers the page's copy when it fits (the browser may have it cached).
    assert frame["imports"] == {"preact": f"/assets/sha256/{b}/vendor/preact.js"}
    assert set(frame["integrity"]) == {
        f"/assets/sha256/{c}/index.js",
        f"/assets/sha256/{c}/vendor/preact.js",
        f"/assets/sha256/{b}/vendor/preact.js",
    }
    one = next(d for d in org.descriptors() if d["app_id"] == "com.x.one")
    assert one["entry"] == f"/assets/sha256/{a}/index.js" and one["frame"] is None
    assert one["events"] == ["events:publish:sales.updated"]
    assert set(one["modules"]) == {
        f"/assets/sha256/{a}/index.js",
        f"/assets/sha256/{a}/vendor/preact.js",
    }
    assert [(r["mode"], r["version"]) for r in one["shared"]] == [("own", "10.24.3")]
    framed = next(d for d in org.descriptors() if d["app_id"] == "com.x.frame")
    assert framed["frame"] == "/shell/frame/acme/com.x.frame" and framed["error"] is None


def test_an_unverifiable_or_refused_app_gets_an_error_not_a_map_entry() -> None:
    a, b = "a" * 64, "b" * 64
    one = installed("com.x.one", "shadow", "^10.19.0", "10.24.3", a)
    ghost = installed("com.x.ghost", "shadow", "^10.19.0", "10.24.3", b)
    ghost = InstalledApp(**{**ghost.__dict__, "package": None})
    strict = installed("com.x.strict", "shadow", "^11.0.0", "11.2.0", "c" * 64)
    fe = strict.manifest.frontend
    assert fe is not None
    shared = {"preact": fe.shared["preact"].model_copy(update={"singleton": True, "strict": True})}
    manifest = strict.manifest.model_copy(
        update={"frontend": fe.model_copy(update={"shared": shared})}
    )
    strict = InstalledApp(**{**strict.__dict__, "manifest": manifest})
    other = installed("com.x.other", "shadow", "^10.0.0", "10.24.3", "d" * 64)
    org = build("acme", [one, ghost, strict, other])
    described = {d["app_id"]: d for d in org.descriptors()}
    assert described["com.x.ghost"]["entry"] is None
    assert "blob store" in described["com.x.ghost"]["error"]["problems"][0]["reason"]
    assert not any(b in url for url in org.page_map()["integrity"])
    refused = described["com.x.strict"]
    assert refused["entry"] is None and refused["shared"][0]["mode"] == "refused"
    assert "strict" in refused["error"]["problems"][0]["reason"]
    assert not any("c" * 64 in url for url in org.page_map()["integrity"])
