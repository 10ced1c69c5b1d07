"""Evidence packages: the layout, the manifest and its signature, and the writer.

A package is one ZIP file whose members are all *stored* (not compressed): media are
compressed already, and a verifier can then read every member in place by its offset,
check every name and size before reading a byte, and never inflates anything (no
decompression bomb). A tar would have to be read from the start, one member at a time,
and carries link types::

    manifest.json     the case, every file (path, role, SHA-256, SM3, bytes), the tree head
    manifest.sig      Ed25519 over the bytes of manifest.json, by the node key (key_id)
    keys.json         every registered signing key with its valid_from
    events.jsonl      the case chain, one RFC 8785 line per event with its inclusion proof
    checkpoints.json  the signed checkpoints the proofs need, consistency proofs between them
    VERIFY.md         how to check it all by hand (Chinese)
    media/<sha256>.<ext>  every capture chunk, playable file, still and snapshot

``write_package`` blocks (it reads and hashes every media file): run it in a thread.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recorder import merkle
from recorder.auditlog import AuditEvent
from recorder.canonical import canonical_json
from recorder.checkpoints import Checkpoint
from recorder.keyring import RegisteredKey

FORMAT = "coreview-evidence-package"
VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
KEYS = "keys.json"
EVENTS = "events.jsonl"
CHECKPOINTS = "checkpoints.json"
GUIDE = "VERIFY.md"
DOCUMENTS = {KEYS: "keys", EVENTS: "events", CHECKPOINTS: "checkpoints", GUIDE: "guide"}
"""Members the manifest lists besides the media, and their role."""
MEDIA_NAME = re.compile(r"media/([0-9a-f]{64})\.([a-z0-9]{1,8})")
EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "webm": "webm",
    "matroska": "mkv",
}
BLOCK = 1 << 20
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100444 << 16
"""A regular, read-only file in the members' external attributes."""


class Digests:
    """SHA-256 and SM3 of one stream, and its length, in one pass."""

    def __init__(self, sm3: bool = True) -> None:
        self._sha256 = hashlib.sha256()
        self._sm3 = hashes.Hash(hashes.SM3()) if sm3 else None
        self.bytes = 0

    def update(self, block: bytes | memoryview) -> None:
        self._sha256.update(block)
        if self._sm3 is not None:
            self._sm3.update(block)
        self.bytes += len(block)

    def facts(self) -> dict[str, Any]:
        found: dict[str, Any] = {"sha256": self._sha256.hexdigest(), "bytes": self.bytes}
        if self._sm3 is not None:
            found["sm3"] = self._sm3.finalize().hex()
        return found


def digest_bytes(data: bytes) -> dict[str, Any]:
    digests = Digests()
    digests.update(data)
    return digests.facts()


def media_path(sha256: str, role: str, meta: dict[str, Any]) -> str:
    """``media/<sha256>.<ext>``: the extension from the content type or container."""
    kind = meta.get("content_type") or meta.get("container") or ""
    ext = "capture" if role == "capture" else EXTENSIONS.get(str(kind), "bin")
    return f"media/{sha256}.{ext}"


@dataclass(frozen=True)
class MediaFile:
    sha256: str
    """The hash the file was filed under (its name in the store and in the log)."""
    role: str
    source: Path
    facts: dict[str, Any]
    """What the manifest says of it besides hashes: session, track, participant, …"""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return media_path(self.sha256, self.role, self.meta)


@dataclass(frozen=True)
class Inclusion:
    tree_size: int
    proof: list[str]


@dataclass(frozen=True)
class Contents:
    """Everything a package holds but the media's bytes."""

    case_no: str
    created_at: str
    created_by: str | None
    events: Sequence[AuditEvent]
    inclusion: dict[int, Inclusion]
    """log_index → proof against the checkpoint of that tree size."""
    checkpoints: Sequence[Checkpoint]
    consistency: Sequence[dict[str, Any]]
    """{"from", "to", "proof"} between each pair of successive checkpoints."""
    keys: Sequence[RegisteredKey]
    media: Sequence[MediaFile]
    purged: Sequence[dict[str, Any]]
    """{"sha256", "role", "bytes", "event"} of each file an ``evidence_purged`` event names."""


@dataclass(frozen=True)
class Written:
    path: Path
    sha256: str
    files: int
    bytes: int
    missing: list[str]
    """Media the store no longer holds (and no purge explains): left out, verify says so."""


def attest(
    events: Sequence[AuditEvent], checkpoints: Sequence[Checkpoint], tree: merkle.MerkleTree
) -> tuple[dict[int, Inclusion], list[Checkpoint], list[dict[str, Any]]]:
    """Each event's inclusion proof against the first checkpoint that covers it (so it
    shows the event was signed soon after it happened); those checkpoints and the last
    one, in signing order, with a consistency proof between each successive pair.
    ``checkpoints`` in signing order, the last covering every event; ``tree`` at least
    as large as the last."""
    inclusion: dict[int, Inclusion] = {}
    used: list[Checkpoint] = []
    for event in events:
        first = next(c for c in checkpoints if c.tree_size > event.log_index)
        if first not in used:
            used.append(first)
        proof = tree.inclusion_proof(event.log_index, first.tree_size)
        inclusion[event.log_index] = Inclusion(first.tree_size, [h.hex() for h in proof])
    if checkpoints and checkpoints[-1] not in used:
        used.append(checkpoints[-1])
    consistency = [
        {
            "from": old.tree_size,
            "to": new.tree_size,
            "proof": [h.hex() for h in tree.consistency_proof(old.tree_size, new.tree_size)],
        }
        for old, new in itertools.pairwise(used)
    ]
    return inclusion, used, consistency


def event_line(event: AuditEvent, inclusion: Inclusion | None) -> bytes:
    proof = (
        None if inclusion is None else {"tree_size": inclusion.tree_size, "proof": inclusion.proof}
    )
    return canonical_json({"event": event.to_dict(), "inclusion": proof}) + b"\n"


def documents(contents: Contents) -> dict[str, bytes]:
    """keys.json, events.jsonl, checkpoints.json and VERIFY.md as bytes."""
    return {
        KEYS: canonical_json({"keys": [k.to_dict() for k in contents.keys]}),
        EVENTS: b"".join(
            event_line(e, contents.inclusion.get(e.log_index)) for e in contents.events
        ),
        CHECKPOINTS: canonical_json(
            {
                "checkpoints": [c.to_dict() for c in contents.checkpoints],
                "consistency": list(contents.consistency),
            }
        ),
        GUIDE: resources.files("recorder").joinpath("verify_guide.md").read_bytes(),
    }


def manifest(contents: Contents, files: list[dict[str, Any]]) -> bytes:
    head = contents.checkpoints[-1] if contents.checkpoints else None
    last = contents.events[-1] if contents.events else None
    return canonical_json(
        {
            "format": FORMAT,
            "version": VERSION,
            "case_no": contents.case_no,
            "created_at": contents.created_at,
            "created_by": contents.created_by,
            "tree_head": None if head is None else head.to_dict(),
            "chain": {"events": len(contents.events), "head": None if last is None else last.hash},
            "files": files,
            "purged": list(contents.purged),
        }
    )


def signature(manifest_bytes: bytes, key_id: str, key: Ed25519PrivateKey) -> bytes:
    return canonical_json(
        {"algorithm": "Ed25519", "key_id": key_id, "signature": key.sign(manifest_bytes).hex()}
    )


def _info(name: str, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = FILE_MODE
    info.file_size = size
    return info


def _copy(
    archive: zipfile.ZipFile, media: MediaFile, progress: Callable[[int], None]
) -> dict[str, Any]:
    digests = Digests()
    with media.source.open("rb") as source:
        size = os.fstat(source.fileno()).st_size
        with archive.open(_info(media.path, size), "w") as target:
            while block := source.read(BLOCK):
                digests.update(block)
                target.write(block)
                progress(len(block))
    return {"path": media.path, "role": media.role, **digests.facts(), **media.facts}


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def write_package(
    out: Path,
    contents: Contents,
    key_id: str,
    key: Ed25519PrivateKey,
    progress: Callable[[int], None] = lambda _n: None,
) -> Written:
    """Write the package to ``out`` (through a temporary name beside it, renamed when
    whole). ``progress`` is told the media bytes copied, block by block."""
    temporary = out.with_name(f".{out.name}.partial")
    files: list[dict[str, Any]] = []
    missing: list[str] = []
    written: set[str] = set()
    total = 0
    try:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for media in contents.media:
                if media.path in written:
                    continue  # the same bytes filed twice (another session or role)
                written.add(media.path)
                try:
                    listed = _copy(archive, media, progress)
                except FileNotFoundError:
                    missing.append(media.sha256)
                    continue
                files.append(listed)
                total += listed["bytes"]
            for name, data in documents(contents).items():
                archive.writestr(_info(name, len(data)), data)
                files.append({"path": name, "role": DOCUMENTS[name], **digest_bytes(data)})
                total += len(data)
            signed = manifest(contents, sorted(files, key=lambda f: f["path"]))
            archive.writestr(_info(MANIFEST, len(signed)), signed)
            sig = signature(signed, key_id, key)
            archive.writestr(_info(SIGNATURE, len(sig)), sig)
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)
    return Written(out, _hash_file(out), len(files), total, missing)
