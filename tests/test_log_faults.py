"""The signed log under faults and attack: the periodic signer survives database errors,
the witness copy stays whole and in order, concurrent signers never store checkpoints
out of order, and the witness file catches a database owner's rewrite."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder.auditlog import AuditLog, seal
from recorder.checkpoints import Checkpoint, Checkpoints
from recorder.clock import SystemClock
from recorder.errors import LogError
from recorder.keyring import Keyring, read_key_file, write_key_file
from recorder.logverify import verify_stored
from recorder.schema import APPEND_ONLY_TABLES
from signaling.storage.db import create_engine, migrate

CASE = "GX-2026-000001"


async def _open(db: Path, key_path: Path, witness: Path | None = None) -> AuditLog:
    """A process on the database and key file (its own engine)."""
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    keyring = Keyring(engine, SystemClock(), key_path, read_key_file(key_path))
    log = AuditLog(engine, SystemClock(), keyring, witness)
    await log.register_key()
    return log


@pytest.fixture
async def paths(tmp_path):
    db, key_path = tmp_path / "log.sqlite3", tmp_path / "node.key"
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    await migrate(engine)
    await engine.dispose()
    write_key_file(key_path, Ed25519PrivateKey.generate())
    logs: list[AuditLog] = []

    async def opened(witness: Path | None = None) -> AuditLog:
        logs.append(await _open(db, key_path, witness))
        return logs[-1]

    yield opened, tmp_path
    for log in logs:
        await log._engine.dispose()


async def _sql(log: AuditLog, sql: str, **params: object) -> None:
    engine: AsyncEngine = log._engine
    async with engine.begin() as conn:
        await conn.execute(text(sql), params)


def _witnessed(path: Path) -> list[Checkpoint]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [Checkpoint.from_dict({k: v for k, v in d.items() if k != "public_key"}) for d in lines]


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


async def test_concurrent_signers_store_checkpoints_in_order(paths):
    """Two processes appending and signing at once on one database (and one witness
    file): the stored checkpoints grow in size and time, and the witness holds each
    exactly once, in the stored order."""
    opened, tmp = paths
    witness = tmp / "witness" / "log.jsonl"
    server, cli = await opened(witness), await opened(witness)

    async def work(log: AuditLog, name: str) -> None:
        for n in range(12):
            await log.append("mark", actor=name, case_no=CASE, n=n)
            await log.checkpoint()

    await asyncio.gather(work(server, "server"), work(cli, "cli"))
    report = await verify_stored(server, witness=witness)
    assert report.ok, report.problems
    stored = await server.checkpoints()
    assert len(stored) == 24
    assert _witnessed(witness) == stored


async def test_an_unwritable_witness_is_caught_up_later(paths):
    """A witness append that fails does not undo or hide the signed checkpoint: it is
    remembered, and the next signing writes the missing line before its own, in order."""
    opened, tmp = paths
    witness = tmp / "witness" / "log.jsonl"
    witness.parent.write_text("not a directory")  # the witness cannot be written
    log = await opened(witness)
    await log.append("login", actor="a")
    first = await log.checkpoint()
    assert log.witness_behind
    witness.parent.unlink()
    assert await log.checkpoint_if_grown() is None  # nothing new, but the witness catches up
    assert not log.witness_behind
    await log.append("login", actor="b")
    second = await log.checkpoint()
    assert _witnessed(witness) == [first, second] == await log.checkpoints()


async def _rewrite_and_resign(log: AuditLog, tmp: Path) -> None:
    """A database owner: drop the triggers, re-seal the first case event and every later
    one of its chain, delete the stored checkpoints, and sign anew with the key file."""
    for table in APPEND_ONLY_TABLES:
        for trigger in ("no_update", "no_delete"):
            await _sql(log, f"DROP TRIGGER {table}_{trigger}")
    prev = None
    for original in await log.events(f"case:{CASE}"):
        forged = seal(
            original.log_index,
            original.chain,
            original.case_seq,
            prev or original.prev_hash,
            dt.datetime.fromisoformat(original.at),
            original.kind,
            "mallory",
            original.detail,
        )
        await _sql(
            log,
            "UPDATE audit_events SET actor = 'mallory', prev_hash = :p, hash = :h "
            "WHERE log_index = :i",
            p=forged.prev_hash,
            h=forged.hash,
            i=forged.log_index,
        )
        prev = forged.hash
    await _sql(log, "DELETE FROM log_checkpoints")
    forger = await _open(tmp / "log.sqlite3", tmp / "node.key")  # no witness
    await forger.checkpoint()
    await forger._engine.dispose()


async def test_the_witness_catches_a_database_owner(paths):
    """After a rewrite, deleted checkpoints and a fresh signature with the key file, the
    database alone verifies; against the witness the verifier names each witnessed
    checkpoint the log contradicts and that is gone, and a node started with the
    witness refuses to sign."""
    opened, tmp = paths
    witness = tmp / "witness" / "log.jsonl"
    log = await opened(witness)
    for n in range(3):
        await log.append("mark", actor="a", case_no=CASE, n=n)
        await log.checkpoint()
    await _rewrite_and_resign(log, tmp)
    assert (await verify_stored(log)).ok  # what the database alone can tell
    report = await verify_stored(log, witness=witness)
    codes = [(p.code, p.where.split(" (")[0]) for p in report.problems]
    assert codes == [
        ("witness_mismatch", "witness line 1"),
        ("checkpoint_missing", "witness line 1"),
        ("witness_mismatch", "witness line 2"),
        ("checkpoint_missing", "witness line 2"),
        ("witness_mismatch", "witness line 3"),
        ("checkpoint_missing", "witness line 3"),
    ]
    restarted = await opened(witness)
    with pytest.raises(LogError) as refused:
        await restarted.checkpoint()
    assert refused.value.code == "log_tampered"


async def test_a_key_file_replaced_without_rotation_is_logged(paths):
    """A start with a new key in the key file (not the first key, no rotation) registers
    it and logs key_registered naming both keys; the log still verifies."""
    opened, tmp = paths
    first = await opened()
    await first.append("login", actor="a")
    await first.checkpoint()
    old = first.keyring.key_id
    assert await first.events("system", kind="key_registered") == []
    write_key_file(tmp / "node.key", Ed25519PrivateKey.generate())
    second = await opened()
    logged = await second.events("system", kind="key_registered")
    assert [e.detail for e in logged] == [{"old_key": old, "new_key": second.keyring.key_id}]
    await second.checkpoint()
    assert (await verify_stored(second)).ok


async def test_events_left_unsigned_are_reported(paths):
    """Events with no checkpoint covering them, older than the allowed window, are a
    no_checkpoint problem (also when no checkpoint exists at all); once signed, not."""
    opened, _tmp = paths
    log = await opened()
    first = await log.append("login", actor="a")
    later = dt.datetime.fromisoformat(first.at) + dt.timedelta(minutes=5)
    report = await verify_stored(log, unsigned_before=later)
    assert [(p.code, p.where) for p in report.problems] == [("no_checkpoint", "log_index 0")]
    await log.checkpoint()
    assert (await verify_stored(log, unsigned_before=later)).ok
