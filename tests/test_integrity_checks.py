"""recorder/integrity.py alone, over built events and files: each problem code for what
the live tests cannot easily make (a row with no event, sizes that disagree, a deleted
or reordered event, events no checkpoint covers) and purged files."""

from __future__ import annotations

import dataclasses
import datetime as dt

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recorder import merkle
from recorder.auditlog import GENESIS, AuditEvent, seal
from recorder.canonical import timestamp
from recorder.checkpoints import Checkpoint
from recorder.integrity import FiledFile, OnDisk, check_case
from recorder.keyring import RegisteredKey, key_id, public_raw

AT = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)
CHUNK, STILL = "a" * 64, "b" * 64


def chain(*details: tuple[str, dict[str, object]]) -> list[AuditEvent]:
    events, prev = [], GENESIS
    for n, (kind, detail) in enumerate(details):
        event = seal(n, "case:GX-1", n + 1, prev, AT, kind, None, detail)
        events.append(event)
        prev = event.hash
    return events


def signed(events: list[AuditEvent], size: int) -> tuple[Checkpoint, list[RegisteredKey]]:
    key = Ed25519PrivateKey.generate()
    tree = merkle.MerkleTree(bytes.fromhex(e.hash) for e in events)
    draft = Checkpoint(size, tree.root(size).hex(), timestamp(AT), key_id(key), "")
    checkpoint = dataclasses.replace(draft, signature=key.sign(draft.statement()).hex())
    registered = RegisteredKey(key_id(key), public_raw(key).hex(), timestamp(AT - dt.timedelta(1)))
    return checkpoint, [registered]


EVENTS = chain(
    ("case_created", {}),
    ("chunk_closed", {"sha256": CHUNK, "bytes": 10, "session": "s1"}),
    ("still_captured", {"sha256": STILL, "bytes": 20, "session": "s1"}),
)
FILES = [FiledFile(CHUNK, "capture", "s1", 10), FiledFile(STILL, "still", "s1", 20)]
DISK = {CHUNK: OnDisk(10, CHUNK), STILL: OnDisk(20, STILL)}


def codes(events, files=FILES, disk=DISK, size=None) -> set[tuple[str, str]]:
    checkpoint, keys = signed(events, len(events) if size is None else size)
    leaves = [bytes.fromhex(e.hash) for e in events]
    report = check_case(files, events, disk, leaves, checkpoint, keys)
    return {(p.code, p.where) for p in report.problems}


def test_whole_evidence_has_no_problem() -> None:
    """Rows, events, stored files and the signed checkpoint agree."""
    assert codes(EVENTS) == set()


def test_rows_and_events_must_agree() -> None:
    """A row no event logs is file_extra; a row whose size differs from its event's is
    size_mismatch; an event with no row is file_missing."""
    extra = FiledFile("c" * 64, "snapshot", "s1", 5)
    disk = {**DISK, "c" * 64: OnDisk(5, "c" * 64)}
    assert codes(EVENTS, [*FILES, extra], disk) == {("file_extra", f"snapshot {'c' * 64}")}
    resized = [FILES[0], FiledFile(STILL, "still", "s1", 21)]
    assert codes(EVENTS, resized) == {("size_mismatch", f"still {STILL}")}
    assert codes(EVENTS, FILES[:1]) == {("file_missing", f"still {STILL}")}


def test_a_deleted_event_breaks_the_chain_and_unsigned_events_are_named() -> None:
    """Dropping the middle event is chain_broken at the next one; events past the
    checkpoint are not_in_checkpoint, each by its place in the chain."""
    dropped = [EVENTS[0], EVENTS[2]]
    found = codes(dropped, FILES[1:], {STILL: DISK[STILL]})
    assert ("chain_broken", "case:GX-1 #3") in found
    assert codes(EVENTS, size=1) == {
        ("not_in_checkpoint", "case:GX-1 #2"),
        ("not_in_checkpoint", "case:GX-1 #3"),
    }


def test_purged_files_are_listed_not_reported() -> None:
    """A tombstoned file missing from the store is purged, not file_missing; one whose
    deletion did not finish is purged with still_present."""
    tombstone = {
        "sha256": CHUNK,
        "role": "capture",
        "bytes": 10,
        "session": "s1",
        "reason": "retention",
        "retention_until": "2056-11-29",
    }
    events = chain(*[(e.kind, e.detail) for e in EVENTS], ("evidence_purged", tombstone))
    checkpoint, keys = signed(events, len(events))
    leaves = [bytes.fromhex(e.hash) for e in events]
    gone = {**DISK, CHUNK: OnDisk(None, None)}
    report = check_case(FILES, events, gone, leaves, checkpoint, keys)
    assert report.ok and [(p.sha256, p.still_present) for p in report.purged] == [(CHUNK, False)]
    report = check_case(FILES, events, DISK, leaves, checkpoint, keys)
    assert report.ok and [p.still_present for p in report.purged] == [True]
