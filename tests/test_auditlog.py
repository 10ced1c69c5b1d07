"""The audit log: hash chain per case, system chain, tamper detection."""

from __future__ import annotations

import dataclasses

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recorder.auditlog import GENESIS, AuditLog, verify_chain
from recorder.clock import SystemClock
from recorder.keyring import Keyring, write_key_file
from signaling.storage.db import create_engine, migrate


async def _log(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.sqlite3'}")
    await migrate(engine)
    key, key_path = Ed25519PrivateKey.generate(), tmp_path / "node.key"
    write_key_file(key_path, key)
    keyring = Keyring(engine, SystemClock(), key_path, key)
    log = AuditLog(engine, SystemClock(), keyring)
    await log.register_key()
    return engine, log


async def test_entries_chain_per_case(tmp_path):
    """Each case has its own sequence starting at 1, linked by hashes; it verifies."""
    engine, log = await _log(tmp_path)
    try:
        first = await log.append("case_created", actor="a", case_no="GX-2026-000001", x=1)
        await log.append("login", actor="a")
        second = await log.append("note", actor="b", case_no="GX-2026-000001", text="审核")
        assert (first.case_seq, first.prev_hash, first.log_index) == (1, GENESIS, 0)
        assert (second.case_seq, second.prev_hash, second.log_index) == (2, first.hash, 2)
        events = await log.events("case:GX-2026-000001")
        assert [e.hash for e in events] == [first.hash, second.hash]
        assert verify_chain(events) is None
        assert verify_chain(await log.events("system")) is None
    finally:
        await engine.dispose()


async def test_alteration_removal_and_reordering_are_detected(tmp_path):
    """Changing, dropping or swapping an entry breaks the chain at that entry."""
    engine, log = await _log(tmp_path)
    try:
        for n in range(4):
            await log.append("mark", actor="a", case_no="GX-2026-000002", n=n)
        events = await log.events("case:GX-2026-000002")
        altered = [*events]
        altered[1] = dataclasses.replace(events[1], detail={"n": 99})
        assert verify_chain(altered) == 1
        assert verify_chain(events[:1] + events[2:]) == 1
        assert verify_chain([events[0], events[2], events[1], events[3]]) == 1
    finally:
        await engine.dispose()
