"""Organizations, their members, users and passwords.

Every organization-scoped lookup goes through :func:`org_for`, which answers "not
found" both when the organization does not exist and when the caller is not a
member: a stranger cannot even learn which organizations exist. Platform admins
see every organization.

    >>> from apprt.accounts.orgs import ORG_SLUG_PATTERN
    >>> import re; bool(re.match(ORG_SLUG_PATTERN, "acme-corp"))
    True
"""

from __future__ import annotations

import re
from typing import ClassVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from apprt.accounts.models import Membership, Organization, OrgRole, Role, User
from apprt.errors import ApprtError, ConflictError, ForbiddenError, NotFoundError, Problem

ORG_SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
USER_NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$"
MIN_PASSWORD_LENGTH = 12

# argon2id with the library's defaults (RFC 9106's second recommended option).
_hasher = PasswordHasher()
# A fixed hash verified when the user does not exist, so login time does not tell
# whether a user name is taken.
_DUMMY_HASH = _hasher.hash("not a real password, only for timing")


class LoginError(ApprtError):
    status_code: ClassVar[int] = 401


def _check_name(value: str, pattern: str, what: str, example: str) -> None:
    if not re.match(pattern, value):
        raise ApprtError.single(
            f"{value!r} is not a valid {what} name",
            location="name",
            hint=f"use lowercase letters, digits and '-', e.g. {example}",
        )


# -- passwords ----------------------------------------------------------------------


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ApprtError.single(
            f"the password has {len(password)} characters, fewer than {MIN_PASSWORD_LENGTH}",
            location="password",
            hint="choose a longer passphrase",
        )
    return _hasher.hash(password)


def check_password(session: Session, name: str, password: str) -> User:
    """The enabled user ``name`` if ``password`` is right; one vague error otherwise."""
    user = session.scalars(select(User).where(User.name == name)).one_or_none()
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    ok: bool
    try:
        ok = _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None or user.password_hash is None or user.disabled:
        raise LoginError.single(
            "wrong user name or password", location="login", hint="check both and try again"
        )
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


# -- users --------------------------------------------------------------------------


def create_user(
    session: Session, name: str, *, password: str | None = None, role: Role = Role.MEMBER
) -> User:
    _check_name(name, USER_NAME_PATTERN, "user", "ada or ada.lovelace")
    if session.scalars(select(User).where(User.name == name)).first() is not None:
        raise ConflictError.single(
            f"user {name!r} already exists", location="name", hint="choose another name"
        )
    user = User(
        name=name,
        role=role,
        password_hash=hash_password(password) if password is not None else None,
    )
    session.add(user)
    session.flush()
    return user


def user_by_name(session: Session, name: str) -> User:
    user = session.scalars(select(User).where(User.name == name)).one_or_none()
    if user is None:
        raise NotFoundError.single(
            f"no user {name!r}", location="user", hint="create it with apprt user create"
        )
    return user


# -- organizations and memberships --------------------------------------------------


def create_org(
    session: Session, slug: str, *, name: str | None = None, **quotas: int
) -> Organization:
    """A new organization; ``quotas``: ``max_apps``, ``max_memory_mb``, ``max_storage_mb``."""
    _check_name(slug, ORG_SLUG_PATTERN, "organization", "acme")
    org = Organization(slug=slug, name=name or slug, **quotas)
    session.add(org)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise ConflictError.single(
            f"organization {slug!r} already exists", location="slug", hint="choose another name"
        ) from None
    return org


def _org_not_found(slug: str) -> NotFoundError:
    return NotFoundError(
        [
            Problem(
                f"no organization {slug!r} that you belong to",
                location="org",
                hint="check the name with apprt org list",
            )
        ],
        title="not found",
    )


def membership_of(session: Session, user: User, org: Organization) -> Membership | None:
    return session.scalars(
        select(Membership).where(Membership.org_id == org.id, Membership.user_id == user.id)
    ).one_or_none()


def org_for(
    session: Session, user: User, slug: str, *, need: OrgRole = OrgRole.MEMBER
) -> Organization:
    """The organization ``slug`` if ``user`` may act in it with at least ``need``.

    404 for strangers (existence is not revealed), 403 for members lacking the role.
    """
    org = session.scalars(select(Organization).where(Organization.slug == slug)).one_or_none()
    if org is None:
        raise _org_not_found(slug)
    if user.role is Role.PLATFORM_ADMIN:
        return org
    membership = membership_of(session, user, org)
    if membership is None:
        raise _org_not_found(slug)
    if need is OrgRole.ORG_ADMIN and membership.role is not OrgRole.ORG_ADMIN:
        raise ForbiddenError.single(
            f"you are a member of {slug!r}, this needs an organization admin",
            location="org",
            hint="ask an admin of the organization",
        )
    return org


def orgs_of(session: Session, user: User) -> list[Organization]:
    query = select(Organization).order_by(Organization.slug)
    if user.role is not Role.PLATFORM_ADMIN:
        query = query.join(Membership).where(Membership.user_id == user.id)
    return list(session.scalars(query))


def grant(session: Session, org: Organization, user: User, role: OrgRole) -> Membership:
    """Make ``user`` a member of ``org`` with ``role`` (changing an existing role)."""
    membership = membership_of(session, user, org)
    if membership is None:
        membership = Membership(organization=org, user=user, role=role)
        session.add(membership)
    else:
        membership.role = role
    session.flush()
    return membership


def revoke(session: Session, org: Organization, user: User) -> None:
    membership = membership_of(session, user, org)
    if membership is None:
        raise NotFoundError.single(
            f"{user.name!r} is not a member of {org.slug!r}", location="user"
        )
    admins = [m for m in org.memberships if m.role is OrgRole.ORG_ADMIN]
    if membership.role is OrgRole.ORG_ADMIN and len(admins) == 1:
        raise ConflictError.single(
            f"{user.name!r} is the last admin of {org.slug!r}",
            location="user",
            hint="make another member an org admin first",
        )
    session.delete(membership)
    session.flush()
