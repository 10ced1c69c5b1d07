"""Search by ID number (身份证号): who may, how often, and the record of each.

An exact match confirms a guess, and the masked form (first and last four characters)
leaves few candidates once the check digit is applied. So:
- only roles that need it may search by a full number: clerks, who have the applicant's
  card in hand at the counter, and auditors, who investigate a person's cases; approvers
  reach their cases from the queue, by case number or by name;
- each user may run ``id_searches_per_hour`` of them within an hour (counted in the
  database, so every node sees the same count);
- each is logged with the result count and a prefix of the keyed digest (enough to tell
  which cases' applicant was looked up, useless without the node's key), never the number.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder.auditlog import AuditLog
from recorder.clock import Clock
from signaling.storage.models import Role, User
from signaling.storage.tables import id_searches
from signaling.web.errors import Forbidden, Throttled

ID_SEARCH_ROLES: frozenset[Role] = frozenset({"clerk", "auditor"})
DIGEST_PREFIX = 12
WINDOW = dt.timedelta(hours=1)


class IdSearches:
    def __init__(self, engine: AsyncEngine, clock: Clock, audit: AuditLog, per_hour: int) -> None:
        self._engine = engine
        self._clock = clock
        self._audit = audit
        self._per_hour = per_hour

    async def admit(self, user: User) -> None:
        """Count one search by the user, or refuse it (wrong role; over the limit)."""
        if user.role not in ID_SEARCH_ROLES:
            raise Forbidden("id_search_not_allowed")
        now = self._clock.now()
        try:
            async with self._engine.begin() as conn:
                # Insert first: its write lock makes concurrent searches count in turn; a
                # refusal rolls it back (refused searches do not prolong the wait).
                await conn.execute(id_searches.insert().values(user_id=user.id, at=now))
                await conn.execute(delete(id_searches).where(id_searches.c.at <= now - WINDOW))
                count = await conn.scalar(
                    select(func.count()).where(id_searches.c.user_id == user.id)
                )
                if (count or 0) > self._per_hour:
                    raise Throttled("too_many_searches")
        except Throttled:
            await self._audit.append("id_search_throttled", actor=user.username)
            raise

    async def record(self, user: User, digest: str, results: int) -> None:
        await self._audit.append(
            "id_number_searched",
            actor=user.username,
            digest=digest[:DIGEST_PREFIX],
            results=results,
        )
