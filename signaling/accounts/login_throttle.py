"""Failed-login accounting (in the database, so every node sees the same counts).

Three limits, checked before a password is verified:
- one account from one address: ``login_max_failures`` within the window, then that pair
  waits until its failures age out of the window (a lock an attacker elsewhere cannot
  cause for the real user);
- one account from anywhere: past ``account_slow_after`` failures within the window,
  attempts on it must be spaced, twice as long after each further failure (the account
  is slowed, never locked for everyone);
- one address, any accounts: ``address_max_failures`` within the window.
Failures are counted by the name typed, whether or not such an account exists, so known
and unknown names answer alike.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder.clock import Clock, as_utc
from signaling.settings import Settings
from signaling.storage.tables import login_failures

MAX_NAME = 64
MAX_SPACING_SECONDS = 300


class LoginThrottle:
    def __init__(self, engine: AsyncEngine, clock: Clock, settings: Settings) -> None:
        self._engine = engine
        self._clock = clock
        self._settings = settings
        self._window = dt.timedelta(minutes=settings.login_window_minutes)
        self.failures = 0
        """Failed logins counted by this process since start (for metrics)."""

    async def refusal(self, username: str, address: str) -> str | None:
        """Why an attempt must wait ("pair", "account" or "address"), or None."""
        now = self._clock.now()
        since = now - self._window
        recent = login_failures.c.at > since
        name = username[:MAX_NAME]
        async with self._engine.connect() as conn:
            pair = await conn.scalar(
                select(func.count()).where(
                    recent, login_failures.c.username == name, login_failures.c.address == address
                )
            )
            account, last = (
                await conn.execute(
                    select(func.count(), func.max(login_failures.c.at)).where(
                        recent, login_failures.c.username == name
                    )
                )
            ).one()
            by_address = await conn.scalar(
                select(func.count()).where(recent, login_failures.c.address == address)
            )
        if (pair or 0) >= self._settings.login_max_failures:
            return "pair"
        excess = account - self._settings.account_slow_after
        if last is not None and excess >= 0:
            spacing = min(MAX_SPACING_SECONDS, 2**excess)
            if now < as_utc(last) + dt.timedelta(seconds=spacing):
                return "account"
        if (by_address or 0) >= self._settings.address_max_failures:
            return "address"
        return None

    async def record_failure(self, username: str, address: str) -> int:
        """Count a failure; returns the pair's failures within the window."""
        now = self._clock.now()
        name = username[:MAX_NAME]
        self.failures += 1
        async with self._engine.begin() as conn:
            await conn.execute(
                login_failures.insert().values(username=name, address=address, at=now)
            )
            await conn.execute(
                delete(login_failures).where(login_failures.c.at <= now - self._window)
            )
            count = await conn.scalar(
                select(func.count()).where(
                    login_failures.c.username == name, login_failures.c.address == address
                )
            )
        return int(count or 0)

    async def clear(self, username: str, address: str | None = None) -> int:
        """Forget failures of the name (from one address, or all: an admin's unlock)."""
        query = delete(login_failures).where(login_failures.c.username == username[:MAX_NAME])
        if address is not None:
            query = query.where(login_failures.c.address == address)
        async with self._engine.begin() as conn:
            return int((await conn.execute(query)).rowcount or 0)
