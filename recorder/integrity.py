"""The integrity check of one case in the live store: pure over plain inputs (its
evidence file rows, its chain's events, what the store holds, the log's leaf hashes,
the latest signed checkpoint and the registered keys), so it runs anywhere; gathering
them from the database and the store is the caller's (signaling/custody/integrity.py).

It names each problem with the shared codes (``Problem`` of recorder/logverify.py):

- files: every file a row or an event names is in the store (``file_missing``), has the
  size the log gives it (``size_mismatch``) and still hashes to its name
  (``hash_mismatch``); every row has its event (``file_extra``: a row the log does not
  name), every file event its row (``file_missing``), with the same size;
- the chain: every event hashes to its stored hash (``entry_altered``) and links to the
  one before (``chain_broken``, recorder/auditlog.py ``verify_chain``);
- the checkpoint: it is signed by a registered key valid at its time (``unknown_key``,
  ``key_not_valid``, ``bad_signature``), its root is the root of the stored log at its
  size (``root_mismatch``), and each event of the chain is included in it by an RFC 6962
  inclusion proof (``not_in_checkpoint``).

A file named by an ``evidence_purged`` tombstone (``coreview retention run``) is listed
as purged, not as missing. ``where`` reads ``<role> <sha256>`` for a file,
``case:<no> #<seq>`` for an event and ``checkpoint <tree size>`` for the checkpoint;
``detail`` is in Chinese, for the auditor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from recorder import merkle
from recorder.auditlog import AuditEvent, verify_chain
from recorder.checkpoints import Checkpoint
from recorder.keyring import RegisteredKey
from recorder.logverify import Problem, check_signature
from recorder.store import EvidenceStore, hash_file

FILE_EVENTS = {
    "chunk_closed": "capture",
    "chunk_recovered": "capture",
    "playable_derived": "playable",
    "still_captured": "still",
    "snapshot_taken": "snapshot",
}
"""Events that file a stored file (their detail carries sha256, bytes, session) → role."""
PURGE_EVENT = "evidence_purged"
MEDIA_ROLES = ("capture", "playable", "still", "snapshot")


@dataclass(frozen=True)
class FiledFile:
    """One evidence_files row."""

    sha256: str
    role: str
    session: str | None
    bytes: int


@dataclass(frozen=True)
class OnDisk:
    """What the store holds under a name: None for both if nothing."""

    bytes: int | None
    sha256: str | None


@dataclass(frozen=True)
class Purged:
    """A file deleted by the retention run, as its tombstone says."""

    sha256: str
    role: str
    bytes: int
    session: str | None
    purged_at: str
    retention_until: str
    still_present: bool
    """The tombstone is logged but the deletion did not finish yet (the next run does)."""


@dataclass
class IntegrityReport:
    files: int
    """Distinct stored files checked (purged ones included)."""
    events: int
    checkpoint: Checkpoint | None
    problems: list[Problem] = field(default_factory=list)
    purged: list[Purged] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def measure(store: EvidenceStore, names: Sequence[str]) -> dict[str, OnDisk]:
    """Size and hash of each named stored file. Blocks (hashes every byte): call it in a
    worker thread."""
    found: dict[str, OnDisk] = {}
    for sha256 in names:
        try:
            stored = hash_file(store.path(sha256))
        except FileNotFoundError:
            found[sha256] = OnDisk(None, None)
        else:
            found[sha256] = OnDisk(stored.bytes, stored.sha256)
    return found


def _file(role: str, sha256: str) -> str:
    return f"{role} {sha256}"


def _event(event: AuditEvent) -> str:
    return f"{event.chain} #{event.case_seq}"


def tombstones(events: Sequence[AuditEvent]) -> dict[str, AuditEvent]:
    """The first ``evidence_purged`` event naming each file."""
    found: dict[str, AuditEvent] = {}
    for event in events:
        sha256 = event.detail.get("sha256")
        if event.kind == PURGE_EVENT and isinstance(sha256, str):
            found.setdefault(sha256, event)
    return found


def _logged_files(events: Sequence[AuditEvent]) -> dict[tuple[str, Any, str], AuditEvent]:
    logged: dict[tuple[str, Any, str], AuditEvent] = {}
    for event in events:
        role, sha256 = FILE_EVENTS.get(event.kind), event.detail.get("sha256")
        if role is not None and isinstance(sha256, str):
            logged.setdefault((role, event.detail.get("session"), sha256), event)
    return logged


def named_files(files: Sequence[FiledFile], events: Sequence[AuditEvent]) -> set[str]:
    """Every stored file the rows or the events name."""
    return {f.sha256 for f in files} | {sha for (_r, _s, sha) in _logged_files(events)}


def check_files(
    files: Sequence[FiledFile], events: Sequence[AuditEvent], disk: Mapping[str, OnDisk]
) -> tuple[list[Problem], list[Purged]]:
    """Rows against their events, and every file they name against the store."""
    problems: list[Problem] = []
    logged = _logged_files(events)
    rows = {(f.role, f.session, f.sha256): f for f in files}
    expected: dict[str, tuple[str, int]] = {}  # sha256 → (role, bytes): the log's word first
    for key, event in logged.items():
        role, _session, sha256 = key
        size = event.detail.get("bytes")
        if isinstance(size, int):
            expected.setdefault(sha256, (role, size))
        row = rows.get(key)
        if row is None:
            problems.append(
                Problem(
                    "file_missing",
                    _file(role, sha256),
                    f"日志事件 {_event(event)} 记录了该文件，但证据登记表中没有它",
                )
            )
        elif isinstance(size, int) and row.bytes != size:
            problems.append(
                Problem(
                    "size_mismatch",
                    _file(role, sha256),
                    f"证据登记表记为 {row.bytes} 字节，日志事件 {_event(event)} 记为 {size} 字节",
                )
            )
    for key, row in rows.items():
        expected.setdefault(row.sha256, (row.role, row.bytes))
        if key not in logged:
            problems.append(
                Problem(
                    "file_extra",
                    _file(row.role, row.sha256),
                    "证据登记表中有该文件，但日志中没有记录它的事件",
                )
            )
    purged_by = tombstones(events)
    purged: list[Purged] = []
    for sha256, (role, size) in expected.items():
        held = disk.get(sha256, OnDisk(None, None))
        tombstone = purged_by.get(sha256)
        if held.sha256 is not None and held.sha256 != sha256:
            problems.append(
                Problem("hash_mismatch", _file(role, sha256), f"存储中的内容现哈希为 {held.sha256}")
            )
        elif tombstone is not None:
            detail = tombstone.detail
            purged.append(
                Purged(
                    sha256,
                    str(detail.get("role", role)),
                    int(detail.get("bytes", size)),
                    detail.get("session"),
                    tombstone.at,
                    str(detail.get("retention_until", "")),
                    still_present=held.bytes is not None,
                )
            )
        elif held.bytes is None:
            problems.append(Problem("file_missing", _file(role, sha256), "存储中没有该文件"))
        elif held.bytes != size:
            problems.append(
                Problem(
                    "size_mismatch",
                    _file(role, sha256),
                    f"存储中为 {held.bytes} 字节，应为 {size} 字节",
                )
            )
    return problems, purged


def check_chain(events: Sequence[AuditEvent]) -> list[Problem]:
    """``events``: one chain in sequence order."""
    problems = [
        Problem(
            "entry_altered", _event(e), f"内容现哈希为 {e.entry_hash()}，与记录的 {e.hash} 不符"
        )
        for e in events
        if e.entry_hash() != e.hash
    ]
    broken = verify_chain(events)
    if broken is not None and events[broken].entry_hash() == events[broken].hash:
        problems.append(
            Problem(
                "chain_broken",
                _event(events[broken]),
                "序号或前一条的哈希（prev_hash）接不上：其前有条目被删除、插入、调换或改动",
            )
        )
    return problems


def check_inclusion(
    events: Sequence[AuditEvent],
    leaves: Sequence[bytes],
    checkpoint: Checkpoint | None,
    keys: Sequence[RegisteredKey],
    *,
    unsigned_reason: str = "",
) -> list[Problem]:
    """Each event against the checkpoint, by a proof from the stored ``leaves`` (the
    log's leaf hashes in index order, at least the checkpoint's size of them). An event
    already found altered is not reported again here."""
    problems: list[Problem] = []
    size = 0 if checkpoint is None else checkpoint.tree_size
    if checkpoint is not None:
        check_signature(
            f"checkpoint {checkpoint.tree_size}",
            checkpoint.key_id,
            checkpoint.time,
            keys,
            checkpoint.verify,
            problems,
        )
        tree = merkle.MerkleTree(leaves[:size])
        if tree.size < size:
            problems.append(
                Problem(
                    "log_truncated",
                    f"checkpoint {size}",
                    f"日志只有 {tree.size} 条，检查点签署了 {size} 条",
                )
            )
            return problems
        root = bytes.fromhex(checkpoint.root)
        if tree.root(size) != root:
            covered = sum(1 for e in events if e.log_index < size)
            problems.append(
                Problem(
                    "root_mismatch",
                    f"checkpoint {size}",
                    f"按日志重算的默克尔树根与签名不符，本案 {covered} 条事件的包含关系无法证明",
                )
            )
            return problems
        for event in events:
            leaf = bytes.fromhex(event.entry_hash())
            if event.log_index >= size or event.entry_hash() != event.hash:
                continue
            proof = tree.inclusion_proof(event.log_index, size)
            if not merkle.verify_inclusion(leaf, event.log_index, size, proof, root):
                problems.append(
                    Problem(
                        "not_in_checkpoint",
                        _event(event),
                        f"包含证明不成立（日志序号 {event.log_index}）",
                    )
                )
    for event in events:
        if event.log_index >= size:
            reason = f"（{unsigned_reason}）" if unsigned_reason else ""
            problems.append(
                Problem("not_in_checkpoint", _event(event), f"尚无签名检查点覆盖该事件{reason}")
            )
    return problems


def check_case(
    files: Sequence[FiledFile],
    events: Sequence[AuditEvent],
    disk: Mapping[str, OnDisk],
    leaves: Sequence[bytes],
    checkpoint: Checkpoint | None,
    keys: Sequence[RegisteredKey],
    *,
    unsigned_reason: str = "",
) -> IntegrityReport:
    """Every check above on one case; ``events`` is its chain in sequence order."""
    problems, purged = check_files(files, events, disk)
    problems += check_chain(events)
    problems += check_inclusion(events, leaves, checkpoint, keys, unsigned_reason=unsigned_reason)
    return IntegrityReport(
        len(named_files(files, events)), len(events), checkpoint, problems, purged
    )
