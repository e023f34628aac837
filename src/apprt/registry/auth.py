"""Who is calling the registry, and what they may do.

Two kinds of bearer tokens reach the registry:

* an **account token** (:mod:`apprt.accounts`): the platform admin
  (``platform_admin`` role) creates publishers, mints their tokens, reviews
  versions and may manage any app; other users may only read;
* a **publisher token** (:class:`~apprt.registry.models.PublisherToken`): uploads
  and manages (deprecate, yank, unpublish, keys) the apps of its publisher whose
  ids match one of its scopes.

Both are looked up by SHA-256; an unknown, revoked or malformed token is a 401.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from apprt.accounts.models import Role, User
from apprt.accounts.services import authenticate
from apprt.accounts.views import SESSION_COOKIE, NotAuthenticatedError
from apprt.db.dependencies import get_session_factory
from apprt.db.engine import session_scope
from apprt.registry.errors import ForbiddenError
from apprt.registry.models import Publisher
from apprt.registry.services.publishers import authenticate_publisher, scope_allows

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiToken",
    description="An account token (platform admin) or a publisher token.",
)


@dataclass(frozen=True)
class Principal:
    """The caller: an account (``user``) or a publisher token (``publisher`` + ``scopes``)."""

    user: User | None = None
    publisher: Publisher | None = None
    scopes: tuple[str, ...] = field(default=())

    @property
    def is_admin(self) -> bool:
        return self.user is not None and self.user.role == Role.PLATFORM_ADMIN

    @property
    def actor(self) -> str:
        if self.publisher is not None:
            return f"publisher:{self.publisher.name}"
        if self.user is not None:
            return f"user:{self.user.name}"
        return "anonymous"

    def require_admin(self, action: str) -> None:
        if not self.is_admin:
            raise ForbiddenError.one(
                f"only the platform admin may {action}",
                location="Authorization",
                hint="use the platform admin's token (<data dir>/admin.token)",
            )

    def require_publisher(self, action: str) -> Publisher:
        if self.publisher is None:
            raise ForbiddenError.one(
                f"only a publisher token may {action}",
                location="Authorization",
                hint="ask the platform admin for a token: "
                "`apprt registry token create PUBLISHER --scope 'com.example.*'`",
            )
        return self.publisher

    def can_manage_publisher(self, publisher: Publisher) -> bool:
        return self.is_admin or (self.publisher is not None and self.publisher.id == publisher.id)

    def require_manage_publisher(self, publisher: Publisher, action: str) -> None:
        if not self.can_manage_publisher(publisher):
            raise ForbiddenError.one(
                f"you may not {action} for publisher {publisher.name!r}",
                location="Authorization",
                hint="use a token of that publisher, or the platform admin's token",
            )

    def can_manage_app(self, app_id: str, owner_id: int) -> bool:
        if self.is_admin:
            return True
        return (
            self.publisher is not None
            and self.publisher.id == owner_id
            and scope_allows(self.scopes, app_id)
        )

    def require_manage_app(self, app_id: str, owner_id: int, action: str) -> None:
        if not self.can_manage_app(app_id, owner_id):
            raise ForbiddenError.one(
                f"you may not {action} {app_id}",
                location="Authorization",
                hint="use a token of the app's publisher whose scopes match the app id "
                "(or the platform admin's token)",
            )


def resolve_principal(session: Session, token: str) -> Principal | None:
    row = authenticate_publisher(session, token)
    if row is not None:
        return Principal(publisher=row.publisher, scopes=tuple(row.scopes))
    user = authenticate(session, token)
    if user is not None:
        return Principal(user=user)
    return None


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, looked up in a short transaction of its own.

    The lookup may write (``last_used_at``); committing it at once means no request
    holds the database's write lock for its whole duration because of it (SQLite
    has a single writer, and uploads run long).
    """
    # A browser signed in to the web shell sends its session cookie instead.
    token = credentials.credentials if credentials else request.cookies.get(SESSION_COOKIE)
    if token is None:
        raise NotAuthenticatedError("no bearer token", invalid_token=False)
    with session_scope(get_session_factory(request)) as session:
        principal = resolve_principal(session, token)
    if principal is None:
        raise NotAuthenticatedError(
            "unknown or revoked token (neither an account nor a publisher token)",
            invalid_token=True,
        )
    return principal


def optional_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal | None:
    """The caller when a token was sent (it must then be valid), else ``None``."""
    if credentials is None:
        return None
    return current_principal(request, credentials)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]
