"""The signed log under faults and attack: the periodic signer survives database errors,
the witness copy stays whole and in order, concurrent signers never store checkpoints
out of order, and the witness file catches a database owner's rewrite."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.exc import OperationalError

from recorder.auditlog import AuditLog
from recorder.checkpoints import Checkpoints
from recorder.keyring import Keyring, write_key_file
from signaling.db import create_engine, migrate


async def test_the_periodic_signer_survives_a_database_error():
    """An OperationalError in one round is logged and the next round still signs."""
    calls: list[int] = []
    signed = asyncio.Event()

    async def sign() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        signed.set()

    task = asyncio.create_task(Checkpoints.run(sign, 0.01))
    try:
        await asyncio.wait_for(signed.wait(), 30)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(calls) >= 2
