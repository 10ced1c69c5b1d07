"""Accounts: users, password hashing (argon2), login with throttling, login sessions."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import ColumnElement, Row, bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder.auditlog import AuditLog
from recorder.clock import Clock, as_utc
from signaling.accounts.login_cache import Login, LoginCache
from signaling.accounts.login_throttle import LoginThrottle
from signaling.settings import Settings
from signaling.storage.models import ROLES, Role, User
from signaling.storage.reads import Reads
from signaling.storage.tables import departments, jurisdictions, login_sessions, outlets, users
from signaling.web import validation
from signaling.web.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    Throttled,
)

logger = logging.getLogger(__name__)

LoginsEnded = Callable[[list[str], str], Awaitable[None]]
"""Told the keys (``login_key``) of login sessions that ended, and why: ``logout``,
``password_changed``, ``password_reset`` or ``account_disabled``."""

USERNAME_PATTERN = r"[a-z][a-z0-9_.-]{2,31}"
MIN_PASSWORD_LENGTH = 10
_hasher = PasswordHasher()
# Verified when the username is unknown, so both paths cost the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


def _user(row: Row[Any]) -> User:
    return User(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        role=row.role,
        outlet_id=row.outlet_id,
        department_id=row.department_id,
        jurisdiction_code=row.jurisdiction_code,
        must_change_password=row.must_change_password,
        disabled=row.disabled,
    )


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH or len(password) > 128:
        raise InvalidInput("password_too_weak", min=MIN_PASSWORD_LENGTH)
    if not (any(c.isalpha() for c in password) and any(c.isdigit() for c in password)):
        raise InvalidInput("password_too_weak", min=MIN_PASSWORD_LENGTH)


def temporary_password() -> str:
    """12 characters, easy to read aloud (no 0/O, 1/l), meeting the password policy."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(12))
        if any(c.isdigit() for c in password) and any(c.isalpha() for c in password):
            return password


def login_key(token: str) -> str:
    """A login session's key: only a hash of the cookie's token is stored (a leaked table
    opens no session), and it names the session to the parts that must follow it."""
    return hashlib.sha256(token.encode()).hexdigest()


SESSION_USER = (
    select(users, login_sessions.c.csrf_token, login_sessions.c.expires_at)
    .join(login_sessions, login_sessions.c.user_id == users.c.id)
    .where(login_sessions.c.id == bindparam("key"))
)
"""Every request's login lookup, built once (SQLAlchemy then keeps its cache key too)."""


class Accounts:
    def __init__(
        self, engine: AsyncEngine, reads: Reads, clock: Clock, settings: Settings, audit: AuditLog
    ) -> None:
        self._engine = engine
        self._reads = reads
        self._clock = clock
        self._settings = settings
        self._audit = audit
        self.throttle = LoginThrottle(engine, clock, settings)
        self._listeners: list[LoginsEnded] = []
        self._logins = LoginCache()

    def on_logins_ended(self, listener: LoginsEnded) -> None:
        """Call ``listener`` whenever login sessions end (their open sockets must close)."""
        self._listeners.append(listener)

    async def _end_logins(self, reason: str, *where: ColumnElement[bool]) -> None:
        """Delete the login sessions matching ``where`` and tell the listeners."""
        async with self._engine.begin() as conn:
            keys = list((await conn.execute(select(login_sessions.c.id).where(*where))).scalars())
            await conn.execute(delete(login_sessions).where(*where))
        if not keys:
            return
        self._logins.forget(keys)
        for listener in self._listeners:
            try:
                await listener(keys, reason)
            except Exception:  # the logins ended anyway; their sockets stay until they drop
                logger.exception("could not announce %d ended login sessions", len(keys))

    async def _hash(self, password: str) -> str:
        return await asyncio.to_thread(_hasher.hash, password)

    async def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return await asyncio.to_thread(_hasher.verify, password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def create_user(self, data: Mapping[str, Any], *, actor: str | None) -> User:
        """Create from form/API data: username, display_name, role, password, unit code."""
        username = validation.pattern(data, "username", USERNAME_PATTERN, 32)
        display_name = validation.text(data, "display_name", 64)
        role: Role = validation.choice(data, "role", ROLES)  # type: ignore[assignment]
        password = data.get("password")
        if not isinstance(password, str):
            raise InvalidInput("field_required", field="password")
        check_password_policy(password)
        values: dict[str, Any] = {
            "outlet_id": None,
            "department_id": None,
            "jurisdiction_code": None,
        }
        async with self._engine.connect() as conn:
            if role == "clerk":
                code = validation.text(data, "outlet", 32)
                values["outlet_id"] = await conn.scalar(
                    select(outlets.c.id).where(outlets.c.code == code)
                )
                if values["outlet_id"] is None:
                    raise InvalidInput("unknown_outlet", field="outlet")
            elif role == "approver":
                code = validation.text(data, "department", 32)
                values["department_id"] = await conn.scalar(
                    select(departments.c.id).where(departments.c.code == code)
                )
                if values["department_id"] is None:
                    raise InvalidInput("unknown_department", field="department")
            elif role == "auditor":
                code = validation.text(data, "jurisdiction", 12, required=False)
                if code:
                    found = await conn.scalar(
                        select(jurisdictions.c.code).where(jurisdictions.c.code == code)
                    )
                    if found is None:
                        raise InvalidInput("unknown_jurisdiction", field="jurisdiction")
                    values["jurisdiction_code"] = code
        must_change = bool(data.get("temporary", True))
        password_hash = await self._hash(password)
        try:
            async with self._engine.begin() as conn:
                user_id = await conn.scalar(
                    users.insert()
                    .values(
                        username=username,
                        display_name=display_name,
                        password_hash=password_hash,
                        role=role,
                        must_change_password=must_change,
                        disabled=False,
                        created_at=self._clock.now(),
                        **values,
                    )
                    .returning(users.c.id)
                )
        except IntegrityError as exc:
            raise Conflict("username_taken", field="username") from exc
        await self._audit.append("user_created", actor=actor, username=username, role=role)
        return await self.get(int(user_id))

    async def get(self, user_id: int) -> User:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
        if row is None:
            raise NotFound("user_not_found")
        return _user(row)

    async def find(self, username: str) -> User | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.username == username))).first()
        return _user(row) if row else None

    async def list(self) -> list[User]:
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(select(users).order_by(users.c.role, users.c.username))
            ).all()
        return [_user(row) for row in rows]

    async def authenticate(self, username: str, password: str, address: str) -> User:
        """Check a login. Known and unknown names take the same path (a password hash is
        verified either way) and get the same answers; see LoginThrottle for the limits."""
        refusal = await self.throttle.refusal(username, address)
        if refusal is not None:
            await self._audit.append(
                "login_throttled", actor=None, username=username[:32], address=address, by=refusal
            )
            raise Throttled("too_many_attempts")
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.username == username))).first()
        if not await self._verify(row.password_hash if row else _DUMMY_HASH, password) or not row:
            await self._fail(username, address, known=row is not None)
            raise NotAuthenticated("bad_credentials")
        if row.disabled:
            await self._audit.append("login_refused_disabled", actor=username, address=address)
            raise Forbidden("account_disabled")
        await self.throttle.clear(username, address)
        await self._audit.append("login", actor=username, address=address)
        return _user(row)

    async def _fail(
        self, username: str, address: str, *, known: bool, kind: str = "login_failed"
    ) -> None:
        failures = await self.throttle.record_failure(username, address)
        actor = username if known else None
        await self._audit.append(kind, actor=actor, address=address)
        if failures == self._settings.login_max_failures:
            await self._audit.append("login_locked", actor=actor, address=address)

    async def unlock(self, user_id: int, *, actor: str) -> int:
        """An admin lifts the login limits of an account (every address)."""
        target = await self.get(user_id)
        cleared = await self.throttle.clear(target.username)
        await self._audit.append(
            "account_unlocked", actor=actor, username=target.username, failures=cleared
        )
        return cleared

    async def open_session(self, user: User, address: str) -> tuple[str, str]:
        """A new login session: returns (cookie token, CSRF token)."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self._clock.now()
        async with self._engine.begin() as conn:
            await conn.execute(
                login_sessions.insert().values(
                    id=login_key(token),
                    user_id=user.id,
                    csrf_token=csrf,
                    created_at=now,
                    expires_at=now + dt.timedelta(hours=self._settings.session_hours),
                    address=address,
                )
            )
        return token, csrf

    async def session_user(self, token: str) -> tuple[User, str] | None:
        """The user and CSRF token of a live session, or None."""
        key = login_key(token)
        login = self._logins.get(key)
        if login is None:
            epoch = self._logins.epoch
            row = await self._reads.run(
                lambda conn: conn.execute(SESSION_USER, {"key": key}).first()
            )
            if row is None or row.disabled:
                return None
            login = Login(_user(row), row.csrf_token, as_utc(row.expires_at))
            self._logins.keep(key, login, epoch)
        if login.expires_at <= self._clock.now():
            return None
        return login.user, login.csrf_token

    def forget_logins(self, keys: Iterable[str]) -> None:
        """Logins ended (on any node): their next request reads them again (and finds none)."""
        self._logins.forget(keys)

    async def close_session(self, token: str) -> None:
        await self._end_logins("logout", login_sessions.c.id == login_key(token))

    async def login_expiry(self, token: str) -> dt.datetime | None:
        """When the login session of ``token`` expires (None: it does not exist)."""
        async with self._engine.connect() as conn:
            expires = await conn.scalar(
                select(login_sessions.c.expires_at).where(login_sessions.c.id == login_key(token))
            )
        return as_utc(expires) if expires is not None else None

    async def _set_password(self, user_id: int, password: str, must_change: bool) -> None:
        password_hash = await self._hash(password)
        async with self._engine.begin() as conn:
            await conn.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(password_hash=password_hash, must_change_password=must_change)
            )

    async def change_password(
        self, user: User, old: str, new: str, keep_session: str, address: str
    ) -> None:
        """Set a new password; every other login session of the user ends. A wrong current
        password counts as a failed login (a stolen session cannot guess it freely)."""
        if await self.throttle.refusal(user.username, address) is not None:
            await self._audit.append(
                "password_change_throttled", actor=user.username, address=address
            )
            raise Throttled("too_many_attempts")
        async with self._engine.connect() as conn:
            current = await conn.scalar(select(users.c.password_hash).where(users.c.id == user.id))
        if current is None or not await self._verify(current, old):
            await self._fail(user.username, address, known=True, kind="password_change_failed")
            raise InvalidInput("wrong_password", field="old_password")
        if new == old:
            raise InvalidInput("password_unchanged", field="new_password")
        check_password_policy(new)
        await self._set_password(user.id, new, must_change=False)
        self._logins.forget()  # the login kept has "must change password" no more
        await self._end_logins(
            "password_changed",
            login_sessions.c.user_id == user.id,
            login_sessions.c.id != login_key(keep_session),
        )
        await self._audit.append("password_changed", actor=user.username)

    async def reset_password(self, user_id: int, *, actor: str) -> str:
        """Give the user a temporary password that must be changed at next login."""
        target = await self.get(user_id)
        password = temporary_password()
        await self._set_password(user_id, password, must_change=True)
        await self._end_logins("password_reset", login_sessions.c.user_id == user_id)
        await self.throttle.clear(target.username)
        await self._audit.append("password_reset", actor=actor, username=target.username)
        return password

    async def set_disabled(self, user_id: int, disabled: bool, *, actor: str) -> None:
        target = await self.get(user_id)
        if target.username == actor:
            raise InvalidInput("cannot_disable_self")
        async with self._engine.begin() as conn:
            await conn.execute(update(users).where(users.c.id == user_id).values(disabled=disabled))
        if disabled:  # session_user refuses a disabled account's logins meanwhile
            await self._end_logins("account_disabled", login_sessions.c.user_id == user_id)
        await self._audit.append(
            "user_disabled" if disabled else "user_enabled", actor=actor, username=target.username
        )
