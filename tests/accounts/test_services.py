from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from apprt.accounts import services
from apprt.accounts.models import ApiToken, Role, User
from apprt.db.base import utcnow
from apprt.db.engine import make_engine, session_factory, session_scope
from apprt.db.migrate import upgrade_to_head
from apprt.errors import ApprtError
from apprt.settings import Settings


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings)
    upgrade_to_head(engine)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def ann(sessions: sessionmaker[Session]) -> User:
    with session_scope(sessions) as session:
        user = User(name="ann", role=Role.MEMBER)
        session.add(user)
    return user


def test_token_format_and_storage(sessions: sessionmaker[Session], ann: User) -> None:
    with session_scope(sessions) as session:
        token = services.create_token(session, session.merge(ann), "laptop")
    assert re.fullmatch(r"apprt_[A-Za-z0-9_-]{43}", token)
    with session_scope(sessions) as session:
        row = session.scalars(sa.select(ApiToken)).one()
        assert row.name == "laptop"
        assert row.prefix == token[:14]
        assert row.token_hash == services.hash_token(token)
        assert token not in {str(v) for v in vars(row).values()}
        assert row.last_used_at is None and row.revoked_at is None


def test_tokens_are_unique(sessions: sessionmaker[Session], ann: User) -> None:
    with session_scope(sessions) as session:
        user = session.merge(ann)
        tokens = {services.create_token(session, user, f"t{i}") for i in range(20)}
    assert len(tokens) == 20


def test_authenticate(sessions: sessionmaker[Session], ann: User) -> None:
    with session_scope(sessions) as session:
        token = services.create_token(session, session.merge(ann), "laptop")
    with session_scope(sessions) as session:
        user = services.authenticate(session, token)
        assert user is not None and user.name == "ann"
        assert services.authenticate(session, token + "x") is None
        assert services.authenticate(session, "apprt_" + "A" * 43) is None
        assert services.authenticate(session, "") is None
        assert services.authenticate(session, "x" * 10_000) is None
    with session_scope(sessions) as session:
        row = session.scalars(sa.select(ApiToken)).one()
        assert row.last_used_at is not None


def test_last_used_is_refreshed_at_most_once_a_minute(
    sessions: sessionmaker[Session], ann: User
) -> None:
    with session_scope(sessions) as session:
        token = services.create_token(session, session.merge(ann), "laptop")
    with session_scope(sessions) as session:
        services.authenticate(session, token)
    with session_scope(sessions) as session:
        first = session.scalars(sa.select(ApiToken.last_used_at)).one()
        assert first is not None
        services.authenticate(session, token)
        assert session.scalars(sa.select(ApiToken.last_used_at)).one() == first
        row = session.scalars(sa.select(ApiToken)).one()
        row.last_used_at = utcnow() - timedelta(minutes=5)
    with session_scope(sessions) as session:
        services.authenticate(session, token)
        refreshed = session.scalars(sa.select(ApiToken.last_used_at)).one()
        assert refreshed is not None and refreshed > first


def test_revoked_tokens_and_disabled_users_do_not_authenticate(
    sessions: sessionmaker[Session], ann: User
) -> None:
    with session_scope(sessions) as session:
        user = session.merge(ann)
        revoked = services.create_token(session, user, "old")
        live = services.create_token(session, user, "new")
    with session_scope(sessions) as session:
        row = session.scalars(
            sa.select(ApiToken).where(ApiToken.token_hash == services.hash_token(revoked))
        ).one()
        row.revoked_at = utcnow()
    with session_scope(sessions) as session:
        assert services.authenticate(session, revoked) is None
        assert services.authenticate(session, live) is not None
        session.merge(ann).disabled = True
    with session_scope(sessions) as session:
        assert services.authenticate(session, live) is None


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_start_creates_the_admin_and_a_private_token_file(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    with session_scope(sessions) as session:
        token = services.bootstrap_platform_admin(session, settings)
    assert token is not None and token.startswith("apprt_")
    path = settings.admin_token_path
    assert path.read_text() == token + "\n"
    assert _mode(path) == 0o600
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".admin")] == []
    with session_scope(sessions) as session:
        admin = services.authenticate(session, token)
        assert admin is not None
        assert (admin.name, admin.role) == ("admin", Role.PLATFORM_ADMIN)


def test_token_file_is_private_even_with_a_permissive_umask(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    seen: list[int] = []
    real_fchmod = os.fchmod

    def spy(fd: int, mode: int) -> None:
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))  # mode before our chmod
        real_fchmod(fd, mode)

    old = os.umask(0)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(os, "fchmod", spy)
            with session_scope(sessions) as session:
                services.bootstrap_platform_admin(session, settings)
    finally:
        os.umask(old)
    assert seen == [0o600]  # created private, not narrowed afterwards
    assert _mode(settings.admin_token_path) == 0o600


def test_later_starts_do_nothing(sessions: sessionmaker[Session], settings: Settings) -> None:
    with session_scope(sessions) as session:
        token = services.bootstrap_platform_admin(session, settings)
    with session_scope(sessions) as session:
        assert services.bootstrap_platform_admin(session, settings) is None
    assert settings.admin_token_path.read_text().strip() == token
    with session_scope(sessions) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(User)) == 1
        assert session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 1


def test_preset_admin_token(sessions: sessionmaker[Session], settings: Settings) -> None:
    preset = "apprt_preset-token-for-automation-0001"
    settings = settings.model_copy(update={"admin_token": preset})
    with session_scope(sessions) as session:
        assert services.bootstrap_platform_admin(session, settings) == preset
    assert settings.admin_token_path.read_text().strip() == preset
    with session_scope(sessions) as session:
        assert services.authenticate(session, preset) is not None
        assert services.bootstrap_platform_admin(session, settings) is None  # unchanged


def test_changed_preset_becomes_valid_too(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    with session_scope(sessions) as session:
        generated = services.bootstrap_platform_admin(session, settings)
    assert generated is not None
    preset = "apprt_a-new-preset-token-0002"
    with session_scope(sessions) as session:
        changed = settings.model_copy(update={"admin_token": preset})
        assert services.bootstrap_platform_admin(session, changed) == preset
    assert settings.admin_token_path.read_text().strip() == preset
    with session_scope(sessions) as session:
        for token in (generated, preset):
            user = services.authenticate(session, token)
            assert user is not None and user.name == "admin"


def test_revoked_preset_is_refused(sessions: sessionmaker[Session], settings: Settings) -> None:
    preset = "apprt_preset-token-for-automation-0003"
    settings = settings.model_copy(update={"admin_token": preset})
    with session_scope(sessions) as session:
        services.bootstrap_platform_admin(session, settings)
    with session_scope(sessions) as session:
        session.scalars(sa.select(ApiToken)).one().revoked_at = utcnow()
    with pytest.raises(ApprtError, match="revoked"), session_scope(sessions) as session:
        services.bootstrap_platform_admin(session, settings)


@pytest.mark.parametrize(
    "preset", ["short", "has spaces in it, long enough", "ünïcödé-tokens-here"]
)
def test_weak_or_malformed_preset_is_refused(
    sessions: sessionmaker[Session], settings: Settings, preset: str
) -> None:
    settings = settings.model_copy(update={"admin_token": preset})
    with pytest.raises(ApprtError) as info, session_scope(sessions) as session:
        services.bootstrap_platform_admin(session, settings)
    assert info.value.problems[0].location == "APPRT_ADMIN_TOKEN"
    assert not settings.admin_token_path.exists()


def test_missing_token_file_is_rewritten_from_the_preset(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    preset = "apprt_preset-token-for-automation-0004"
    settings = settings.model_copy(update={"admin_token": preset})
    with session_scope(sessions) as session:
        services.bootstrap_platform_admin(session, settings)
    settings.admin_token_path.unlink()
    with session_scope(sessions) as session:
        assert services.bootstrap_platform_admin(session, settings) is None
    assert settings.admin_token_path.read_text().strip() == preset
