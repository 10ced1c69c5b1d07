"""Filing evidence files: one ``evidence_files`` row per case, session, role and hash."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder.schema import evidence_files


async def file_evidence(engine: AsyncEngine, **values: Any) -> bool:
    """Insert an ``evidence_files`` row; False when that session of the case already
    holds the same bytes in that role (the row is unique: migration 0013)."""
    try:
        async with engine.begin() as conn:
            await conn.execute(evidence_files.insert().values(**values))
    except IntegrityError:
        return False
    return True
