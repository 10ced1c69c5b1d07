"""Offline verification of an evidence package (recorder/package.py): from the package
alone, no server, database or network. Names each problem as recorder/logverify.py
does (code, where, detail); the log's own checks are those of logverify and merkle.

Checks: the manifest's signature and its key's validity when it was made; every event
line canonical, of this case, unique, its hash and the chain's links and sequence; each
event's inclusion proof against a signed checkpoint; the checkpoints' signatures, order
and consistency proofs; then, in one read of each file (recorder/pkgmedia.py), every
listed file's SHA-256, SM3 and size, nothing missing or extra, and the media against
the events; and, if given, the chain head expected.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from recorder import merkle, package
from recorder.auditlog import AuditEvent, chain_of, verify_chain
from recorder.canonical import canonical_json
from recorder.checkpoints import Checkpoint
from recorder.keyring import RegisteredKey, key_id
from recorder.logverify import Problem, check_signature
from recorder.pkgarchive import Archive, PackageError
from recorder.pkgjobs import Jobs
from recorder.pkgmedia import check_media, hash_members, work_bytes
from recorder.pkgreport import VerifyReport

HEX64 = frozenset("0123456789abcdef")
SIGNATURE_HEX = 128
"""An Ed25519 signature in lower-case hex (as written: another case of a digit is a
changed byte, even if it decodes to the same signature)."""


class Unreadable(ValueError):
    """A document or line of the package that does not have the expected shape."""


# -- shapes ------------------------------------------------------------------------------


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise Unreadable(f"not JSON: {exc}") from exc


def _get(obj: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise Unreadable(f"no {key}")
    value = obj[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise Unreadable(f"{key} is not {kind}")
    return value


def _hex(value: Any, length: int = 64) -> str:
    if not isinstance(value, str) or len(value) != length or not set(value) <= HEX64:
        raise Unreadable(f"not {length} hex digits: {value!r:.80}")
    return value


def _time(value: Any) -> str:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise Unreadable(f"not a time: {value!r:.80}") from exc
    if parsed.tzinfo is None:
        raise Unreadable(f"time without zone: {value}")
    return str(value)


def _checkpoint(obj: Any) -> Checkpoint:
    return Checkpoint(
        _get(obj, "tree_size", int),
        _hex(_get(obj, "root", str)),
        _time(_get(obj, "time", str)),
        _hex(_get(obj, "key_id", str)),
        _hex(_get(obj, "signature", str), SIGNATURE_HEX),
    )


def _keys(data: bytes) -> list[RegisteredKey]:
    return [
        RegisteredKey(
            _hex(_get(k, "key_id", str)),
            _hex(_get(k, "public_key", str)),
            _time(_get(k, "valid_from", str)),
        )
        for k in _get(_json(data), "keys", list)
    ]


def _event(line: bytes) -> tuple[AuditEvent, package.Inclusion | None]:
    obj = _json(line)
    data = _get(obj, "event", dict)
    if set(data) != set(AuditEvent.__dataclass_fields__):
        raise Unreadable("fields of an event expected")
    event = AuditEvent(
        _get(data, "log_index", int),
        _get(data, "chain", str),
        _get(data, "case_seq", int),
        _get(data, "at", str),
        _get(data, "kind", str),
        _get(data, "actor", (str, type(None))),
        _get(data, "detail", dict),
        _hex(_get(data, "prev_hash", str)),
        _hex(_get(data, "hash", str)),
    )
    proof = _get(obj, "inclusion", (dict, type(None)))
    if proof is None:
        return event, None
    hashes = [_hex(h) for h in _get(proof, "proof", list)]
    return event, package.Inclusion(_get(proof, "tree_size", int), hashes)


# -- checks ------------------------------------------------------------------------------


def _manifest_signature(
    archive: Archive, raw: bytes, created_at: str, keys: list[RegisteredKey], report: VerifyReport
) -> None:
    where = package.SIGNATURE
    if where not in archive.members:
        report.problems.append(Problem("file_missing", where, "the manifest is not signed"))
        return
    try:
        data = archive.read(where, 64 * 1024)
        sig = _json(data)
        if canonical_json(sig) != data or _get(sig, "algorithm", str) != "Ed25519":
            raise Unreadable("not a canonical Ed25519 signature statement")
        if set(sig) != {"algorithm", "key_id", "signature"}:
            raise Unreadable("unexpected fields")
        key_id = _hex(_get(sig, "key_id", str))
        signature = bytes.fromhex(_hex(_get(sig, "signature", str), SIGNATURE_HEX))
    except (Unreadable, ValueError) as exc:
        report.problems.append(Problem("document_unreadable", where, str(exc)))
        return
    report.key_id = key_id

    def verify(public: Ed25519PublicKey) -> bool:
        try:
            public.verify(signature, raw)
        except InvalidSignature:
            return False
        return True

    check_signature(where, key_id, created_at, keys, verify, report.problems)


def _events(
    archive: Archive, case_no: str, report: VerifyReport
) -> list[tuple[AuditEvent, package.Inclusion | None]]:
    if package.EVENTS not in archive.members:
        return []
    found = []
    for number, line in enumerate(archive.read(package.EVENTS).split(b"\n")[:-1], start=1):
        where = f"{package.EVENTS} 第 {number} 行"
        try:
            event, inclusion = _event(line)
            if canonical_json(_json(line)) != line:
                report.problems.append(Problem("event_not_canonical", where, "not RFC 8785"))
        except (Unreadable, ValueError) as exc:
            report.problems.append(Problem("event_unreadable", where, str(exc)))
            continue
        found.append((event, inclusion))
    _check_chain([e for e, _ in found], case_no, report)
    return found


def _name(event: AuditEvent) -> str:
    return f"{event.chain} #{event.case_seq} (log_index {event.log_index}, {event.kind})"


def _check_chain(events: list[AuditEvent], case_no: str, report: VerifyReport) -> None:
    """Of this case, each once, intact, and linked 1, 2, 3, … in order."""
    chain = chain_of(case_no)
    seen = Counter(e.hash for e in events)
    for event in events:
        if event.chain != chain:
            report.problems.append(Problem("wrong_chain", _name(event), f"not {chain}"))
        if event.entry_hash() != event.hash:
            report.problems.append(Problem("entry_altered", _name(event), "content changed"))
    for digest, count in seen.items():
        if count > 1:
            event = next(e for e in events if e.hash == digest)
            report.problems.append(Problem("event_duplicated", _name(event), f"{count} times"))
    broken = verify_chain(events)
    if broken is not None:
        event = events[broken]
        report.problems.append(
            Problem(
                "chain_broken",
                _name(event),
                f"line {broken + 1}: expected #{broken + 1} after the previous event's hash",
            )
        )
    report.events = len(events)
    report.head = events[-1].hash if events else None


def _checkpoints(
    archive: Archive, keys: Sequence[RegisteredKey], report: VerifyReport
) -> list[Checkpoint]:
    where = package.CHECKPOINTS
    if where not in archive.members:
        return []
    try:
        data = _json(archive.read(where))
        checkpoints = [_checkpoint(c) for c in _get(data, "checkpoints", list)]
        proofs = {
            (_get(p, "from", int), _get(p, "to", int)): [_hex(h) for h in _get(p, "proof", list)]
            for p in _get(data, "consistency", list)
        }
    except Unreadable as exc:
        report.problems.append(Problem("document_unreadable", where, str(exc)))
        return []
    for number, checkpoint in enumerate(checkpoints, start=1):
        label = f"checkpoint {number} (size {checkpoint.tree_size}, {checkpoint.time})"
        check_signature(
            label, checkpoint.key_id, checkpoint.time, keys, checkpoint.verify, report.problems
        )
        if number == 1:
            continue
        previous = checkpoints[number - 2]
        label = f"checkpoint {number - 1} → {number}"
        if checkpoint.tree_size < previous.tree_size or dt.datetime.fromisoformat(
            checkpoint.time
        ) < dt.datetime.fromisoformat(previous.time):
            report.problems.append(Problem("checkpoint_order", label, "size or time goes back"))
            continue
        proof = proofs.get((previous.tree_size, checkpoint.tree_size))
        if proof is None or not merkle.verify_consistency(
            previous.tree_size,
            checkpoint.tree_size,
            bytes.fromhex(previous.root),
            bytes.fromhex(checkpoint.root),
            [bytes.fromhex(h) for h in proof],
        ):
            report.problems.append(
                Problem("inconsistent_checkpoints", label, "no valid consistency proof")
            )
    report.checkpoints = len(checkpoints)
    return checkpoints


def _inclusion(
    events: list[tuple[AuditEvent, package.Inclusion | None]],
    checkpoints: list[Checkpoint],
    report: VerifyReport,
) -> None:
    roots = {c.tree_size: bytes.fromhex(c.root) for c in checkpoints}
    for event, inclusion in events:
        root = None if inclusion is None else roots.get(inclusion.tree_size)
        if inclusion is None or root is None:
            report.problems.append(
                Problem("not_in_checkpoint", _name(event), "no proof against a checkpoint here")
            )
            continue
        if not merkle.verify_inclusion(
            bytes.fromhex(event.entry_hash()),
            event.log_index,
            inclusion.tree_size,
            [bytes.fromhex(h) for h in inclusion.proof],
            root,
        ):
            report.problems.append(
                Problem(
                    "not_in_checkpoint",
                    _name(event),
                    f"the proof does not lead to the root of size {inclusion.tree_size}",
                )
            )


def _manifest(raw: bytes) -> dict[str, Any]:
    data = _json(raw)
    if _get(data, "format", str) != package.FORMAT or _get(data, "version", int) != package.VERSION:
        raise Unreadable("not a coreview evidence package of a known version")
    _get(data, "case_no", str)
    _time(_get(data, "created_at", str))
    for listed in _get(data, "files", list):
        _get(listed, "path", str)
        _get(listed, "role", str)
        _hex(_get(listed, "sha256", str))
        _hex(_get(listed, "sm3", str))
        _get(listed, "bytes", int)
    for gone in _get(data, "purged", list):
        _hex(_get(gone, "sha256", str))
    manifest: dict[str, Any] = data
    return manifest


def _tree_head(
    manifest: dict[str, Any], checkpoints: list[Checkpoint], report: VerifyReport
) -> None:
    head = manifest.get("tree_head")
    last = checkpoints[-1].to_dict() if checkpoints else None
    if head != last:
        report.problems.append(
            Problem("tree_head_mismatch", package.MANIFEST, "tree_head is not the last checkpoint")
        )
    chain = manifest.get("chain")
    if not isinstance(chain, dict) or chain.get("head") != report.head:
        report.problems.append(
            Problem("head_mismatch", package.MANIFEST, f"the events end at {report.head}")
        )


def _trusted(keys: list[RegisteredKey], expect_keys: frozenset[str] | None) -> list[Problem]:
    """Each key the package registers is named by its public key's hash and, when the
    verifier was given the issuer's key ids (obtained another way), is one of them."""
    problems = []
    for key in keys:
        if key_id(key.public()) != key.key_id:
            detail = f"key {key.key_id} is not its public key's hash"
            problems.append(Problem("key_id_mismatch", package.KEYS, detail))
        elif expect_keys is not None and key.key_id not in expect_keys:
            detail = f"key {key.key_id} is not among --expect-key"
            problems.append(Problem("untrusted_key", package.KEYS, detail))
    return problems


def verify_package(
    archive: Archive,
    expect_head: str | None = None,
    workers: int = 2,
    sm3: bool = True,
    expect_keys: frozenset[str] | None = None,
) -> VerifyReport:
    """Every problem found in the package; ``PackageError`` if it is not one at all."""
    report = VerifyReport()
    if package.MANIFEST not in archive.members:
        raise PackageError("not_a_package", f"no {package.MANIFEST}")
    raw = archive.read(package.MANIFEST, 256 * 1024 * 1024)
    try:
        manifest = _manifest(raw)
    except Unreadable as exc:
        report.problems.append(Problem("manifest_unreadable", package.MANIFEST, str(exc)))
        return report
    report.case_no = manifest["case_no"]
    keys: list[RegisteredKey] = []
    try:
        keys = _keys(archive.read(package.KEYS)) if package.KEYS in archive.members else []
    except Unreadable as exc:
        report.problems.append(Problem("document_unreadable", package.KEYS, str(exc)))
    report.problems += _trusted(keys, expect_keys)
    _manifest_signature(archive, raw, manifest["created_at"], keys, report)
    events = _events(archive, manifest["case_no"], report)
    checkpoints = _checkpoints(archive, keys, report)
    _inclusion(events, checkpoints, report)
    _tree_head(manifest, checkpoints, report)
    logged = [e for e, _ in events]
    with Jobs(workers, work_bytes(archive)) as jobs:
        examined = hash_members(archive, manifest["files"], logged, jobs, sm3, report)
    media = check_media(archive, manifest, logged, examined, report)
    report.files, report.bytes = media.files, media.bytes
    if expect_head is not None and expect_head.lower() != report.head:
        report.problems.append(
            Problem(
                "head_mismatch", "--expect-head", f"expected {expect_head}, found {report.head}"
            )
        )
    return report
