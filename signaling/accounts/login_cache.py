"""Login lookups kept for a moment: every request looks its login session up, and a
browser page or an API client sends many requests a second.

A kept lookup is used for at most ``SECONDS``. Logins that end (logout, password change
or reset, account disabled) leave it at once on the node that ended them and, through
the ``logins`` bus topic, on every other (signaling/review/login_sockets.py). Expiry is checked
against the clock on every request. What another node changes without ending logins (a
temporary password replaced, which lifts "must change password" from the login it keeps)
reaches this node within ``SECONDS``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from signaling.storage.models import User

SECONDS = 1.0
LIMIT = 10_000
"""Kept lookups past which stale ones are dropped."""


@dataclass(frozen=True)
class Login:
    user: User
    csrf_token: str
    expires_at: dt.datetime


class LoginCache:
    def __init__(self, seconds: float = SECONDS, now: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._now = now
        self._kept: dict[str, tuple[float, Login]] = {}
        self.epoch = 0
        """Moves on whenever logins are forgotten: a lookup read before then is not kept."""

    def get(self, key: str) -> Login | None:
        kept = self._kept.get(key)
        return kept[1] if kept is not None and kept[0] > self._now() else None

    def keep(self, key: str, login: Login, epoch: int) -> None:
        """Keep ``login``, read when ``epoch`` was current, unless logins were forgotten
        since (the read may predate a logout)."""
        if epoch != self.epoch:
            return
        now = self._now()
        if len(self._kept) >= LIMIT:
            self._kept = {k: v for k, v in self._kept.items() if v[0] > now}
        self._kept[key] = (now + self._seconds, login)

    def forget(self, keys: Iterable[str] | None = None) -> None:
        """Forget these logins (None: all)."""
        self.epoch += 1
        if keys is None:
            self._kept.clear()
        for key in keys or ():
            self._kept.pop(key, None)
