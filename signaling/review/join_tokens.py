"""Short-lived join tokens (JWT, HS256) for the signalling socket."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

import jwt

from recorder.clock import Clock
from signaling.storage.bus import Bus
from signaling.web.errors import NotAuthenticated

TOKEN_SECONDS = 120
AUDIENCE = "coreview-join"


@dataclass(frozen=True)
class Grant:
    """What a join token lets its holder do in one review session."""

    session_id: str
    user_id: int
    username: str
    role: str
    publish: tuple[str, ...]
    """Sources the holder may publish (face, document, audio)."""
    hidden: bool
    """Auditors watch hidden: receive only, not listed to the others."""


class JoinTokens:
    def __init__(self, key: bytes, clock: Clock, bus: Bus, seconds: int = TOKEN_SECONDS) -> None:
        self._key = key
        self._clock = clock
        self._bus = bus  # spent token ids: with Redis, seen by every node
        self._seconds = seconds

    def issue(self, grant: Grant) -> str:
        now = self._clock.now()
        claims = {
            "aud": AUDIENCE,
            "sid": grant.session_id,
            "sub": str(grant.user_id),
            "usr": grant.username,
            "role": grant.role,
            "pub": list(grant.publish),
            "hid": grant.hidden,
            "iat": now,
            "exp": now + dt.timedelta(seconds=self._seconds),
            "jti": secrets.token_urlsafe(12),
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    async def _spend(self, token_id: str, expires: float) -> None:
        """A token opens one socket, on any node: a copy of it is refused. The spent id is
        kept for the token's remaining lifetime (after it, the token is expired anyway)."""
        remaining = expires - self._clock.now().timestamp()
        if not token_id or not await self._bus.claim(f"join-token:{token_id}", remaining):
            raise NotAuthenticated("token_used")

    async def verify(self, token: str, session_id: str, user_id: int) -> Grant:
        """The grant of a valid, unexpired token for this session; else NotAuthenticated."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                audience=AUDIENCE,
                # times are checked below against the injected clock, as they were issued
                options={
                    "require": ["exp", "iat", "sid", "sub"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidTokenError as exc:
            raise NotAuthenticated("token_invalid") from exc
        if float(claims["exp"]) <= self._clock.now().timestamp():
            raise NotAuthenticated("token_expired")
        if claims["sid"] != session_id or claims["sub"] != str(user_id):
            raise NotAuthenticated("token_invalid")  # checked first: a stranger cannot spend it
        await self._spend(str(claims.get("jti", "")), float(claims["exp"]))
        return Grant(
            session_id=claims["sid"],
            user_id=int(claims["sub"]),
            username=str(claims.get("usr", "")),
            role=str(claims.get("role", "")),
            publish=tuple(claims.get("pub", ())),
            hidden=bool(claims.get("hid", False)),
        )
