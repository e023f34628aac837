"""``publisher``: the uploader may publish this app.

* the manifest's ``publisher`` is the publisher the token belongs to;
* one of the token's scopes matches the app id;
* the app id is new, or already owned by this publisher (the first publisher to
  upload an app id owns it).

A failure is a 403 and stops the pipeline: nothing else is looked at for someone
who may not publish the app.
"""

from __future__ import annotations

from sqlalchemy import select

from apprt.errors import Problem
from apprt.registry.checks import CheckContext, CheckOutcome, failed, passed
from apprt.registry.models import RegistryApp
from apprt.registry.services.publishers import scope_allows

NAME = "publisher"


def run(ctx: CheckContext) -> CheckOutcome:
    manifest = ctx.manifest
    assert manifest is not None
    problems: list[Problem] = []
    if manifest.publisher != ctx.publisher.name:
        problems.append(
            Problem(
                f"the manifest names publisher {manifest.publisher!r}, but the upload "
                f"comes from publisher {ctx.publisher.name!r}",
                file="app.toml",
                location="publisher",
                hint=f"set publisher = {ctx.publisher.name!r}, or upload with a token of "
                f"publisher {manifest.publisher!r}",
            )
        )
    if not scope_allows(ctx.scopes, manifest.id):
        problems.append(
            Problem(
                f"the token's scopes ({', '.join(ctx.scopes)}) do not cover {manifest.id}",
                location="Authorization",
                hint="ask the platform admin for a token whose --scope matches the app id",
            )
        )
    app = ctx.session.scalars(select(RegistryApp).where(RegistryApp.app_id == manifest.id)).first()
    if app is not None and app.publisher_id != ctx.publisher.id:
        problems.append(
            Problem(
                f"{manifest.id} belongs to another publisher",
                file="app.toml",
                location="id",
                hint="choose an app id under your own reverse-DNS name",
            )
        )
    if problems:
        outcome = failed("the uploader may not publish this app", problems, http_status=403)
        outcome.stop = True
        return outcome
    ctx.app = app
    return passed(
        f"publisher {ctx.publisher.name} may publish {manifest.id}",
        new_app=app is None,
    )
