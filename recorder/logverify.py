"""Verify a whole log against its signed checkpoints and name exactly what fails.

Pure over its inputs (events, checkpoints, registered keys), so the same check runs on
the live database (``load_log``) and on an exported package. Checks:

- every event's hash is the leaf hash of its entry (``entry_altered``), and the indices
  run 0, 1, 2, … without a gap (``index_gap``);
- each chain starts at 1 and links by ``prev_hash`` (``chain_broken``);
- each checkpoint's size is within the log (``log_truncated``), its root is the root of
  the tree recomputed from the entries (``root_mismatch``), its key is registered and
  was the valid key at its time (``unknown_key``, ``key_not_valid``), and its signature
  verifies (``bad_signature``);
- successive checkpoints grow and are consistent by an RFC 6962 consistency proof
  (``checkpoint_order``, ``inconsistent_checkpoints``);
- no event stays unsigned longer than allowed (``no_checkpoint``);
- with a witness file (recorder/witness.py), each witnessed checkpoint verifies with the
  public key its line carries (``witness_bad_signature``, ``witness_unreadable``), the
  database still gives its root at its size (``witness_mismatch``) and still holds it
  (``checkpoint_missing``). The stored checkpoints and keys are the database owner's to
  rewrite; the witness, kept elsewhere, is not.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from recorder import merkle
from recorder.auditlog import AuditEvent, AuditLog, verify_chain
from recorder.checkpoints import Checkpoint
from recorder.keyring import RegisteredKey, key_valid_at
from recorder.witness import WitnessFile, read_witness


@dataclass(frozen=True)
class Problem:
    code: str
    where: str
    """The event (``log_index 7``, ``case:GX-2026-000001 #3``) or ``checkpoint N``."""
    detail: str


@dataclass(frozen=True)
class LogReport:
    events: int
    checkpoints: int
    problems: list[Problem] = field(default_factory=list)
    witnessed: int | None = None
    """Checkpoints in the witness file checked; None without a witness file."""

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_entries(events: Sequence[AuditEvent], problems: list[Problem]) -> list[bytes]:
    leaves: list[bytes] = []
    for position, event in enumerate(events):
        if event.log_index != position:
            problems.append(
                Problem("index_gap", f"log_index {event.log_index}", f"expected {position}")
            )
        recomputed = event.entry_hash()
        if recomputed != event.hash:
            problems.append(
                Problem(
                    "entry_altered",
                    f"log_index {event.log_index}",
                    f"content hashes to {recomputed}",
                )
            )
        leaves.append(bytes.fromhex(recomputed))
    return leaves


def _check_chains(events: Sequence[AuditEvent], problems: list[Problem]) -> None:
    chains: dict[str, list[AuditEvent]] = defaultdict(list)
    for event in events:
        chains[event.chain].append(event)
    for chain, members in chains.items():
        members.sort(key=lambda e: e.case_seq)
        broken = verify_chain(members)
        if broken is not None:
            event = members[broken]
            problems.append(
                Problem(
                    "chain_broken",
                    f"{chain} #{event.case_seq}",
                    f"log_index {event.log_index}: sequence, link or hash does not follow",
                )
            )


def _check_checkpoint(
    number: int,
    checkpoint: Checkpoint,
    tree: merkle.MerkleTree,
    keys: Sequence[RegisteredKey],
    problems: list[Problem],
) -> None:
    where = f"checkpoint {number} (size {checkpoint.tree_size}, {checkpoint.time})"
    if checkpoint.tree_size > tree.size:
        problems.append(Problem("log_truncated", where, f"the log holds {tree.size} events"))
    elif tree.root(checkpoint.tree_size).hex() != checkpoint.root:
        problems.append(Problem("root_mismatch", where, "the events do not give the signed root"))
    check_signature(where, checkpoint.key_id, checkpoint.time, keys, checkpoint.verify, problems)


def check_signature(
    where: str,
    key_id: str,
    time: str,
    keys: Sequence[RegisteredKey],
    verify: Callable[[Ed25519PublicKey], bool],
    problems: list[Problem],
) -> None:
    """A signature made at ``time`` by key ``key_id``: the key is registered, was the
    valid key then, and ``verify`` accepts it (checkpoints, export manifests)."""
    named = next((k for k in keys if k.key_id == key_id), None)
    if named is None:
        problems.append(Problem("unknown_key", where, f"密钥 {key_id} 未登记"))
        return
    valid = key_valid_at(keys, time)
    if valid is None or valid.key_id != named.key_id:
        problems.append(
            Problem("key_not_valid", where, f"密钥 {named.key_id} 在签名时不在有效期内")
        )
    if not verify(named.public()):
        problems.append(Problem("bad_signature", where, "签名验证失败"))


def _check_succession(
    number: int,
    previous: Checkpoint,
    checkpoint: Checkpoint,
    tree: merkle.MerkleTree,
    problems: list[Problem],
) -> None:
    where = f"checkpoint {number - 1} → {number}"
    later = dt.datetime.fromisoformat(checkpoint.time)
    if checkpoint.tree_size < previous.tree_size or later < dt.datetime.fromisoformat(
        previous.time
    ):
        problems.append(Problem("checkpoint_order", where, "size or time goes backwards"))
        return
    if checkpoint.tree_size > tree.size:
        return  # already reported as log_truncated
    proof = tree.consistency_proof(previous.tree_size, checkpoint.tree_size)
    if not merkle.verify_consistency(
        previous.tree_size,
        checkpoint.tree_size,
        bytes.fromhex(previous.root),
        bytes.fromhex(checkpoint.root),
        proof,
    ):
        problems.append(
            Problem("inconsistent_checkpoints", where, "the later tree does not extend the earlier")
        )


def _check_unsigned(
    events: Sequence[AuditEvent],
    checkpoints: Sequence[Checkpoint],
    deadline: dt.datetime,
    problems: list[Problem],
) -> None:
    signed = max((c.tree_size for c in checkpoints), default=0)
    if signed < len(events) and dt.datetime.fromisoformat(events[signed].at) < deadline:
        problems.append(
            Problem(
                "no_checkpoint",
                f"log_index {signed}",
                f"logged at {events[signed].at}; no signed checkpoint covers it",
            )
        )


def _check_witness(
    witness: WitnessFile,
    checkpoints: Sequence[Checkpoint],
    tree: merkle.MerkleTree,
    problems: list[Problem],
) -> None:
    for line in witness.unreadable:
        problems.append(Problem("witness_unreadable", f"witness line {line}", "not a checkpoint"))
    stored = set(checkpoints)
    for entry in witness.entries:
        seen = entry.checkpoint
        where = f"witness line {entry.line} (size {seen.tree_size}, {seen.time})"
        if not entry.verifies():
            problems.append(
                Problem("witness_bad_signature", where, f"key {seen.key_id} in the line")
            )
            continue
        if seen.tree_size > tree.size:
            problems.append(Problem("witness_mismatch", where, f"the log holds {tree.size} events"))
        elif tree.root(seen.tree_size).hex() != seen.root:
            problems.append(
                Problem("witness_mismatch", where, "the events do not give the witnessed root")
            )
        if seen not in stored:
            problems.append(Problem("checkpoint_missing", where, "not in log_checkpoints"))


def check_log(
    events: Sequence[AuditEvent],
    checkpoints: Sequence[Checkpoint],
    keys: Sequence[RegisteredKey],
    *,
    witness: WitnessFile | None = None,
    unsigned_before: dt.datetime | None = None,
) -> LogReport:
    """Every problem found, in the order of the checks above. ``events`` in index
    order, ``checkpoints`` in signing order; an event logged before ``unsigned_before``
    must be covered by a checkpoint."""
    problems: list[Problem] = []
    leaves = _check_entries(events, problems)
    _check_chains(events, problems)
    tree = merkle.MerkleTree(leaves)
    for number, checkpoint in enumerate(checkpoints, start=1):
        _check_checkpoint(number, checkpoint, tree, keys, problems)
        if number > 1:
            _check_succession(number, checkpoints[number - 2], checkpoint, tree, problems)
    if unsigned_before is not None:
        _check_unsigned(events, checkpoints, unsigned_before, problems)
    if witness is not None:
        _check_witness(witness, checkpoints, tree, problems)
    witnessed = None if witness is None else len(witness.entries)
    return LogReport(len(events), len(checkpoints), problems, witnessed)


async def verify_stored(
    log: AuditLog, *, witness: Path | None = None, unsigned_before: dt.datetime | None = None
) -> LogReport:
    """Check the log stored in the database, and against the ``witness`` file if given."""
    found = None if witness is None else await asyncio.to_thread(read_witness, witness)
    return check_log(
        await log.all_events(),
        await log.checkpoints(),
        await log.keyring.keys(),
        witness=found,
        unsigned_before=unsigned_before,
    )
