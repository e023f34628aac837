"""HTTP side of accounts: who is calling (``current_user``) and ``GET /api/v1/me``.

Every authenticated route takes ``user: CurrentUser``. Clients send
``Authorization: Bearer <token>``; a missing or unknown token is a 401 problem with
``WWW-Authenticate: Bearer`` (RFC 6750), the answer HTTP clients expect.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar

from fastapi import APIRouter, Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict

from apprt.accounts.models import Role, User
from apprt.accounts.services import authenticate
from apprt.db.dependencies import DbSession
from apprt.errors import ApprtError, Problem

router = APIRouter(prefix="/api/v1", tags=["accounts"])

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiToken",
    description="An apprt API token; the platform admin's is in `<data dir>/admin.token`.",
)


class NotAuthenticatedError(ApprtError):
    """No usable credentials (HTTP 401)."""

    status_code: ClassVar[int] = 401

    def __init__(self, reason: str, *, invalid_token: bool) -> None:
        super().__init__(
            [
                Problem(
                    reason=reason,
                    location="Authorization",
                    hint="send 'Authorization: Bearer <token>'; the platform admin's token "
                    "is in <data dir>/admin.token",
                )
            ],
            title="not authenticated",
        )
        challenge = 'Bearer error="invalid_token"' if invalid_token else "Bearer"
        self.headers = {"WWW-Authenticate": challenge}


def current_user(
    session: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    if credentials is None:
        raise NotAuthenticatedError("no bearer token", invalid_token=False)
    user = authenticate(session, credentials.credentials)
    if user is None:
        raise NotAuthenticatedError("unknown, revoked or disabled user's token", invalid_token=True)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: Role
    created_at: datetime


@router.get("/me", summary="The user the token belongs to")
def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)
