"""HTTP side of accounts: who is calling (``current_user``) and ``GET /api/v1/me``.

Every authenticated route takes ``user: CurrentUser``. Clients send
``Authorization: Bearer <token>``; a missing or unknown token is a 401 problem with
``WWW-Authenticate: Bearer`` (RFC 6750), the answer HTTP clients expect.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, ClassVar

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from apprt.accounts import orgs
from apprt.accounts.models import ApiToken, Organization, OrgRole, Role, User
from apprt.accounts.services import authenticate, create_token, hash_token
from apprt.db.base import utcnow
from apprt.db.dependencies import DbSession
from apprt.errors import ApprtError, ForbiddenError, Problem

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


#: The cookie a password login sets for browsers (HttpOnly, SameSite=Strict).
SESSION_COOKIE = "apprt_session"


def presented_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str | None:
    """The token the caller sent: ``Authorization: Bearer`` first, else the session cookie."""
    if credentials is not None:
        return credentials.credentials
    return request.cookies.get(SESSION_COOKIE)


def current_user(
    session: DbSession, token: Annotated[str | None, Depends(presented_token)]
) -> User:
    if token is None:
        raise NotAuthenticatedError("no bearer token", invalid_token=False)
    user = authenticate(session, token)
    if user is None:
        raise NotAuthenticatedError(
            "unknown, expired, revoked or disabled user's token", invalid_token=True
        )
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def platform_admin(user: CurrentUser) -> User:
    if user.role is not Role.PLATFORM_ADMIN:
        raise ForbiddenError.single(
            "this needs the platform admin", location="Authorization", hint="use an admin token"
        )
    return user


PlatformAdmin = Annotated[User, Depends(platform_admin)]


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: Role
    created_at: datetime


@router.get("/me", summary="The user the token belongs to")
def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)


# -- sessions and tokens ------------------------------------------------------------


class LoginIn(BaseModel):
    name: str
    password: str


class TokenOut(BaseModel):
    token: str
    expires_at: datetime | None
    user: UserOut


@router.post("/login", summary="Exchange a user name and password for a session token")
def login(body: LoginIn, session: DbSession, request: Request, response: Response) -> TokenOut:
    user = orgs.check_password(session, body.name, body.password)
    ttl = timedelta(hours=request.app.state.settings.session_ttl_hours)
    token = create_token(session, user, "session", expires_in=ttl)
    expires_at = utcnow() + ttl
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(ttl.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return TokenOut(token=token, expires_at=expires_at, user=UserOut.model_validate(user))


@router.post("/logout", status_code=204, summary="Revoke the token used for this request")
def logout(
    user: CurrentUser,
    session: DbSession,
    token: Annotated[str | None, Depends(presented_token)],
    response: Response,
) -> None:
    row = session.scalars(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token or ""))
    ).one()
    row.revoked_at = utcnow()
    response.delete_cookie(SESSION_COOKIE, path="/")


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)


@router.post("/tokens", status_code=201, summary="Create an API token for yourself")
def new_token(body: TokenIn, user: CurrentUser, session: DbSession) -> TokenOut:
    token = create_token(session, user, body.name)
    return TokenOut(token=token, expires_at=None, user=UserOut.model_validate(user))


# -- users --------------------------------------------------------------------------


class UserIn(BaseModel):
    name: str
    password: str | None = None
    platform_admin: bool = False


@router.post("/users", status_code=201, summary="Create a user (platform admin)")
def create_user(body: UserIn, _: PlatformAdmin, session: DbSession) -> UserOut:
    role = Role.PLATFORM_ADMIN if body.platform_admin else Role.MEMBER
    user = orgs.create_user(session, body.name, password=body.password, role=role)
    return UserOut.model_validate(user)


@router.get("/users", summary="Every user (platform admin)")
def list_users(_: PlatformAdmin, session: DbSession) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in session.scalars(select(User).order_by(User.name))]


# -- organizations ------------------------------------------------------------------


class Quotas(BaseModel):
    """What the install engine lets an organization use (checked at resource allocation)."""

    max_apps: int | None = Field(None, ge=0, description="Installed apps, dependencies included")
    max_memory_mb: int | None = Field(None, ge=0, description="Sum of the apps' memory limits")
    max_storage_mb: int | None = Field(None, ge=0, description="Sum of the apps' storage limits")

    def given(self) -> dict[str, int]:
        """The quotas this request sets (those left out stay as they are)."""
        return {k: v for k in Quotas.model_fields if (v := getattr(self, k)) is not None}


class OrgIn(Quotas):
    slug: str
    name: str | None = None
    admin: str | None = Field(None, description="A user to make the organization's admin")


class OrgPatch(Quotas):
    name: str | None = Field(None, min_length=1, max_length=200)


class OrgOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    slug: str
    name: str
    created_at: datetime
    max_apps: int
    max_memory_mb: int
    max_storage_mb: int


class MemberOut(BaseModel):
    user: str
    role: OrgRole


class MemberIn(BaseModel):
    role: OrgRole = OrgRole.MEMBER


@router.post("/orgs", status_code=201, summary="Create an organization (platform admin)")
def create_org(body: OrgIn, _: PlatformAdmin, session: DbSession) -> OrgOut:
    org = orgs.create_org(session, body.slug, name=body.name, **body.given())
    if body.admin:
        orgs.grant(session, org, orgs.user_by_name(session, body.admin), OrgRole.ORG_ADMIN)
    return OrgOut.model_validate(org)


@router.get("/orgs", summary="The organizations you belong to (all, for the platform admin)")
def list_orgs(user: CurrentUser, session: DbSession) -> list[OrgOut]:
    return [OrgOut.model_validate(o) for o in orgs.orgs_of(session, user)]


@router.get("/orgs/{org}", summary="One organization")
def get_org(org: str, user: CurrentUser, session: DbSession) -> OrgOut:
    return OrgOut.model_validate(orgs.org_for(session, user, org))


@router.patch(
    "/orgs/{org}", summary="Rename an organization (org admin) or set its quotas (platform admin)"
)
def patch_org(org: str, body: OrgPatch, user: CurrentUser, session: DbSession) -> OrgOut:
    target = orgs.org_for(session, user, org, need=OrgRole.ORG_ADMIN)
    quotas = body.given()
    if quotas and user.role is not Role.PLATFORM_ADMIN:
        raise ForbiddenError.single(
            f"quotas ({', '.join(sorted(quotas))}) are set by the platform admin",
            location="body",
            hint="ask a platform admin, or send only the name",
        )
    if body.name is not None:
        target.name = body.name
    for field, value in quotas.items():
        # Lowering a quota below what is in use is allowed, like Kubernetes'
        # ResourceQuota: installed apps stay, new installs are refused.
        setattr(target, field, value)
    session.flush()
    return OrgOut.model_validate(target)


def _members(org: Organization) -> list[MemberOut]:
    return sorted(
        (MemberOut(user=m.user.name, role=m.role) for m in org.memberships),
        key=lambda m: m.user,
    )


@router.get("/orgs/{org}/members", summary="Members of an organization")
def list_members(org: str, user: CurrentUser, session: DbSession) -> list[MemberOut]:
    return _members(orgs.org_for(session, user, org))


@router.put("/orgs/{org}/members/{name}", summary="Add a member or change their role")
def put_member(
    org: str, name: str, body: MemberIn, user: CurrentUser, session: DbSession
) -> MemberOut:
    target = orgs.org_for(session, user, org, need=OrgRole.ORG_ADMIN)
    membership = orgs.grant(session, target, orgs.user_by_name(session, name), body.role)
    return MemberOut(user=name, role=membership.role)


@router.delete("/orgs/{org}/members/{name}", status_code=204, summary="Remove a member")
def delete_member(org: str, name: str, user: CurrentUser, session: DbSession) -> None:
    target = orgs.org_for(session, user, org, need=OrgRole.ORG_ADMIN)
    orgs.revoke(session, target, orgs.user_by_name(session, name))
