"""The Merkle log on a real SQLite store: canonical entries, append-only tables, signed
checkpoints that catch a rewritten chain, proofs, key rotation and the witness file."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from recorder import merkle
from recorder.auditlog import GENESIS, AuditEvent, AuditLog, seal, verify_chain
from recorder.checkpoints import Checkpoint
from recorder.errors import LogError
from recorder.keyring import Keyring, RegisteredKey, key_id, public_raw, write_key_file
from recorder.logverify import check_log, verify_stored
from recorder.schema import APPEND_ONLY_TABLES
from signaling.storage.db import create_engine, migrate

CASE = "GX-2026-000001"


class StepClock:
    """A clock that moves one second per reading."""

    def __init__(self) -> None:
        self.time = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)

    def now(self) -> dt.datetime:
        self.time += dt.timedelta(seconds=1)
        return self.time


@dataclasses.dataclass
class Node:
    engine: object
    log: AuditLog
    key_path: Path
    clock: StepClock

    async def restart(self, witness: Path | None = None) -> AuditLog:
        """A new process on the same database and key file."""
        keyring = Keyring(self.engine, self.clock, self.key_path, _read(self.key_path))  # type: ignore[arg-type]
        log = AuditLog(self.engine, self.clock, keyring, witness)  # type: ignore[arg-type]
        await log.register_key()
        return log


def _read(path: Path) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(path.read_bytes())


@pytest.fixture
async def node(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'log.sqlite3'}")
    await migrate(engine)
    key_path = tmp_path / "node.key"
    write_key_file(key_path, Ed25519PrivateKey.generate())
    clock = StepClock()
    node = Node(engine, None, key_path, clock)  # type: ignore[arg-type]
    node.log = await node.restart(tmp_path / "witness" / "log.jsonl")
    try:
        yield node
    finally:
        await engine.dispose()


async def raw(node: Node, sql: str, **params: object) -> None:
    async with node.engine.begin() as conn:  # type: ignore[attr-defined]
        await conn.execute(text(sql), params)


async def test_an_event_is_the_leaf_hash_of_its_rfc8785_entry(node):
    """hash = SHA-256(0x00 ‖ JCS(entry)); the dict form round-trips; log_index is
    global and gapless while case_seq counts within the chain; head names the last."""
    log = node.log
    first = await log.append("case_created", actor="a", case_no=CASE, n=1.0, name="张三")
    other = await log.append("login", actor="a")
    second = await log.append("note", actor="b", case_no=CASE, items=("x", "y"))
    assert [e.log_index for e in (first, other, second)] == [0, 1, 2]
    assert (first.case_seq, second.case_seq, other.case_seq) == (1, 2, 1)
    assert second.prev_hash == first.hash and first.prev_hash == GENESIS
    entry = {k: v for k, v in second.to_dict().items() if k != "hash"}
    by_hand = hashlib.sha256(b"\x00" + rfc8785.dumps(entry)).hexdigest()
    assert second.hash == by_hand
    stored = await log.events(f"case:{CASE}")
    assert stored == [first, second]  # what was hashed is what reads back
    assert stored[0].detail == {"n": 1, "name": "张三"}
    assert AuditEvent.from_dict(json.loads(json.dumps(second.to_dict()))) == second
    assert await log.head(f"case:{CASE}") == second.hash
    assert await log.head("case:nothing") is None
    assert await log.events(f"case:{CASE}", kind="note") == [second]


async def test_bad_detail_is_refused_and_nothing_is_stored(node):
    """A detail JSON cannot express canonically (NaN, an integer beyond 2^53) is a
    LogError, and the log is unchanged."""
    for bad in ({"x": float("nan")}, {"x": 2**60}):
        with pytest.raises(LogError) as caught:
            await node.log.append("note", actor="a", case_no=CASE, **bad)
        assert caught.value.code == "bad_detail"
    assert await node.log.size() == 0


async def test_the_database_refuses_update_and_delete(node):
    """Raw SQL UPDATE and DELETE on the events, checkpoints and keys abort."""
    await node.log.append("note", actor="a", case_no=CASE, n=1)
    await node.log.checkpoint()
    for table in APPEND_ONLY_TABLES:
        for sql in (f"UPDATE {table} SET rowid = rowid", f"DELETE FROM {table}"):  # noqa: S608
            with pytest.raises(Exception, match="append-only"):
                await raw(node, sql)
    assert await node.log.size() == 1
    assert len(await node.log.checkpoints()) == 1
    assert len(await node.log.keyring.keys()) == 1


async def _drop_triggers(node: Node) -> None:
    for table in APPEND_ONLY_TABLES:
        await raw(node, f"DROP TRIGGER {table}_no_update")
        await raw(node, f"DROP TRIGGER {table}_no_delete")


async def test_a_rewritten_chain_is_caught_by_the_signed_checkpoint(node):
    """An attacker with the database drops the triggers, rewrites an event and every
    later hash of its chain: the chain verifies again, but the verifier names the
    checkpoint whose signed root no longer matches, and a restarted node refuses to
    sign over the rewritten log."""
    log = node.log
    for n in range(5):
        await log.append("mark", actor="a", case_no=CASE, n=n)
        await log.append("login", actor="b")
    signed = await log.checkpoint()
    assert (await verify_stored(log)).ok

    await _drop_triggers(node)
    events = await log.events(f"case:{CASE}")
    prev = events[1].prev_hash
    for original in events[1:]:
        detail = {"n": 99} if original is events[1] else original.detail
        at = dt.datetime.fromisoformat(original.at)
        forged = seal(
            original.log_index, original.chain, original.case_seq, prev, at, "mark", "a", detail
        )
        await raw(
            node,
            "UPDATE audit_events SET detail = :detail, prev_hash = :prev, hash = :hash "
            "WHERE log_index = :index",
            detail=json.dumps(forged.detail),
            prev=forged.prev_hash,
            hash=forged.hash,
            index=forged.log_index,
        )
        prev = forged.hash
    rewritten = await log.events(f"case:{CASE}")
    assert rewritten[1].detail == {"n": 99}
    assert verify_chain(rewritten) is None  # the chain alone cannot tell

    report = await verify_stored(log)
    assert [(p.code, p.where) for p in report.problems] == [
        ("root_mismatch", f"checkpoint 1 (size {signed.tree_size}, {signed.time})")
    ]
    with pytest.raises(LogError) as refused:
        await (await node.restart()).checkpoint()
    assert refused.value.code == "log_tampered"


async def test_deleting_events_is_caught(node):
    """Dropping the last events is caught as a truncated log, one in the middle as a
    gap, a broken chain and a wrong root; a restarted node will not sign."""
    log = node.log
    for n in range(4):
        await log.append("mark", actor="a", case_no=CASE, n=n)
    await log.checkpoint()
    await _drop_triggers(node)
    await raw(node, "DELETE FROM audit_events WHERE log_index = 3")
    assert {p.code for p in (await verify_stored(log)).problems} == {"log_truncated"}
    with pytest.raises(LogError) as refused:
        await (await node.restart()).checkpoint()
    assert refused.value.code == "log_truncated"
    await raw(node, "DELETE FROM audit_events WHERE log_index = 1")
    codes = {p.code for p in (await verify_stored(log)).problems}
    assert {"index_gap", "chain_broken", "log_truncated"} <= codes


async def test_proofs_verify_against_signed_checkpoints(node):
    """Inclusion proofs of every event and the consistency proof between two signed
    checkpoints verify with the RFC 9162 algorithms; bad ranges are refused."""
    log = node.log
    for n in range(6):
        await log.append("mark", actor="a", case_no=CASE, n=n)
    first = await log.checkpoint()
    for n in range(7):
        await log.append("login", actor="b", n=n)
    second = await log.checkpoint()
    assert await log.latest_checkpoint() == second
    events = await log.all_events()
    for event in events:
        proof = [bytes.fromhex(h) for h in await log.inclusion_proof(event.log_index, 13)]
        leaf = bytes.fromhex(event.hash)
        assert merkle.verify_inclusion(leaf, event.log_index, 13, proof, bytes.fromhex(second.root))
    proof = [bytes.fromhex(h) for h in await log.consistency_proof(6, 13)]
    old, new = bytes.fromhex(first.root), bytes.fromhex(second.root)
    assert merkle.verify_consistency(6, 13, old, new, proof)
    for bad in (
        log.inclusion_proof(13, 13),
        log.inclusion_proof(0, 14),
        log.consistency_proof(7, 6),
    ):
        with pytest.raises(LogError):
            await bad


async def test_checkpoint_statement_and_witness_file(node):
    """A checkpoint signs the JCS of (tree_size, root, time, key_id) with the registered
    key; each one is appended to the witness file as a JSON line that verifies alone."""
    await node.log.append("login", actor="a")
    first = await node.log.checkpoint()
    assert await node.log.checkpoint_if_grown() is None  # nothing new
    await node.log.append("login", actor="b")
    second = await node.log.checkpoint_if_grown()
    assert second is not None and second.tree_size == 2
    lines = (node.key_path.parent / "witness" / "log.jsonl").read_text().splitlines()
    assert len(lines) == 2
    for line, checkpoint in zip(lines, (first, second), strict=True):
        data = json.loads(line)
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(data.pop("public_key")))
        assert Checkpoint.from_dict(data) == checkpoint
        statement = {k: data[k] for k in ("tree_size", "root", "time", "key_id")}
        public.verify(bytes.fromhex(data["signature"]), rfc8785.dumps(statement))
        assert hashlib.sha256(public_raw(public)).hexdigest() == checkpoint.key_id


async def test_key_rotation_keeps_old_checkpoints_verifiable(node):
    """Rotation signs with the old key, replaces the key file, registers the new key,
    logs key_rotated and signs with the new key; the whole log still verifies, and a
    node started with the old key file is refused."""
    log = node.log
    old_file = node.key_path.read_bytes()
    await log.append("login", actor="a")
    old, new = await log.rotate_key(actor="cli")
    assert node.key_path.read_bytes() != old_file
    assert key_id(_read(node.key_path)) == new
    assert [k.key_id for k in await log.keyring.keys()] == [old, new]
    rotated = await log.events("system", kind="key_rotated")
    assert rotated[0].detail == {"old_key": old, "new_key": new}
    checkpoints = await log.checkpoints()
    assert [c.key_id for c in checkpoints] == [old, new]
    assert (await verify_stored(log)).ok
    node.key_path.write_bytes(old_file)
    with pytest.raises(LogError) as refused:
        await node.restart()
    assert refused.value.code == "stale_node_key"


async def test_a_running_node_follows_a_rotation_by_another_process(node):
    """After `coreview keys rotate` in another process, the server's next checkpoint
    is signed with the new key read from the key file."""
    cli = await node.restart()
    _old, new = await cli.rotate_key(actor="cli")
    await node.log.append("login", actor="a")
    assert (await node.log.checkpoint()).key_id == new
    assert (await verify_stored(node.log)).ok


# -- the pure verifier, property-tested ------------------------------------------------


def _signed_log(n: int) -> tuple[list[AuditEvent], list[Checkpoint], list[RegisteredKey]]:
    key = Ed25519PrivateKey.generate()
    start = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    events: list[AuditEvent] = []
    heads: dict[str, AuditEvent] = {}
    for i in range(n):
        chain = f"case:GX-{i % 3}" if i % 4 else "system"
        last = heads.get(chain)
        at = start + dt.timedelta(seconds=i)
        event = seal(
            i,
            chain,
            last.case_seq + 1 if last else 1,
            last.hash if last else GENESIS,
            at,
            "mark",
            None,
            {"i": i},
        )
        heads[chain] = event
        events.append(event)
    tree = merkle.MerkleTree(bytes.fromhex(e.hash) for e in events)
    checkpoints = []
    for size in sorted({n // 2, n}):
        time = (start + dt.timedelta(hours=1, seconds=size)).isoformat()
        draft = Checkpoint(size, tree.root(size).hex(), time, key_id(key), "")
        signature = key.sign(draft.statement()).hex()
        checkpoints.append(dataclasses.replace(draft, signature=signature))
    keys = [RegisteredKey(key_id(key), public_raw(key).hex(), start.isoformat())]
    return events, checkpoints, keys


@settings(max_examples=60, deadline=None)
@given(n=st.integers(min_value=2, max_value=40), data=st.data())
def test_any_change_removal_insertion_or_reorder_is_detected(n, data):
    """Whatever an attacker does to the events, the verifier reports a problem, even
    when the forged events are re-sealed with consistent hashes."""
    events, checkpoints, keys = _signed_log(n)
    assert check_log(events, checkpoints, keys).ok
    i = data.draw(st.integers(0, n - 1))
    j = data.draw(st.integers(0, n - 1).filter(lambda x: x != i))
    target = events[i]
    changed = dataclasses.replace(target, detail={"i": -1})
    resealed = seal(
        target.log_index,
        target.chain,
        target.case_seq,
        target.prev_hash,
        dt.datetime.fromisoformat(target.at),
        target.kind,
        target.actor,
        {"i": -1},
    )
    attacks = {
        "change": [*events[:i], changed, *events[i + 1 :]],
        "change_resealed": [*events[:i], resealed, *events[i + 1 :]],
        "remove": [*events[:i], *events[i + 1 :]],
        "insert": [*events[:i], resealed, *events[i:]],
        "reorder": [
            events[j] if k == i else events[i] if k == j else e for k, e in enumerate(events)
        ],
    }
    for name, forged in attacks.items():
        assert not check_log(forged, checkpoints, keys).ok, name
    tampered_signature = dataclasses.replace(checkpoints[-1], root=checkpoints[0].root)
    assert not check_log(events, [*checkpoints[:-1], tampered_signature], keys).ok
