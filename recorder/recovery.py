"""Chunks left open: by a crash (found in ``incoming/`` at the next start) or by a write
that failed. Each is cut at its last whole packet record and counted again from its
file. And chunks closed but not yet filed: each has a note beside it in ``incoming/``
(``<chunk>.pending``: its hash, track, meta and event), written before it moves into the
store and removed once its row and event exist, so a crash at any step is finished at
the next start. Blocking file I/O: run it off the event loop."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recorder import chunkfile
from recorder.capture import TrackInfo
from recorder.chunkstats import ChunkStats
from recorder.private_files import write_private
from recorder.store import StoredFile, hash_file

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrimmedChunk:
    info: TrackInfo
    index: int
    meta: dict[str, Any]
    seconds: float
    cut_bytes: int
    """Bytes of a torn last record that were cut off."""


PENDING_SUFFIX = ".pending"


@dataclass(frozen=True)
class PendingChunk:
    """A closed chunk on its way into the store, its row and its event."""

    info: TrackInfo
    path: Path
    """The chunk in ``incoming/`` (gone once it is in the store)."""
    sha256: str
    bytes: int
    meta: dict[str, Any]
    seconds: float
    event: str

    @property
    def note(self) -> Path:
        return self.path.with_name(self.path.name + PENDING_SUFFIX)


def sync_and_hash(path: Path) -> StoredFile:
    """Make the file durable, then hash it: a logged hash always names synced bytes."""
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())
    return hash_file(path)


def write_note(chunk: PendingChunk) -> None:
    facts = dataclasses.asdict(chunk)
    facts["path"] = chunk.path.name
    write_private(chunk.note, json.dumps(facts, ensure_ascii=False).encode("utf-8"))


def pending_chunks(incoming: Path) -> list[PendingChunk]:
    """Chunks whose filing a crash interrupted (oldest first); an unreadable note is
    left in place and logged."""
    found = []
    notes = sorted(incoming.glob(f"*{PENDING_SUFFIX}"), key=lambda p: p.stat().st_mtime)
    for note in notes:
        try:
            facts = json.loads(note.read_text(encoding="utf-8"))
            facts["info"] = TrackInfo(**facts["info"])
            facts["path"] = incoming / Path(facts["path"]).name
            found.append(PendingChunk(**facts))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            logger.error("unreadable pending note %s: %s", note.name, exc)
    return found


def open_chunks(incoming: Path) -> list[Path]:
    """Chunk files still open in ``incoming/`` (oldest first)."""
    return sorted(incoming.glob(f"*{chunkfile.SUFFIX}"), key=lambda p: p.stat().st_mtime)


def info_from_header(header: dict[str, Any]) -> TrackInfo:
    return TrackInfo(
        session=str(header["session"]),
        case_no=str(header["case"]),
        case_id=int(header["case_id"]),
        participant=str(header["participant"]),
        source=str(header["source"]),
        kind=str(header["kind"]),
        codec=str(header["codec"]),
        track=str(header["track"]),
    )


def trim(path: Path) -> TrimmedChunk | None:
    """Cut the file after its last whole record and count what it holds. A file with
    no readable header or no packet holds nothing: it is removed (None)."""
    data = path.read_bytes()
    try:
        chunk = chunkfile.decode(data)
        info = info_from_header(chunk.header)
    except (chunkfile.ChunkFormatError, KeyError, ValueError) as exc:
        logger.warning("removing unreadable capture %s: %s", path.name, exc)
        path.unlink()
        return None
    if not chunk.records:
        path.unlink()
        return None
    if chunk.length < len(data):
        os.truncate(path, chunk.length)
    clock_rate = int(chunk.header.get("clock_rate") or 90_000)
    stats = ChunkStats(info.codec, info.kind)
    for record in chunk.records:
        stats.add(
            record.sequence_number,
            record.timestamp,
            record.marker,
            record.payload,
            record.arrival_us / 1_000_000,
        )
    meta = stats.meta(clock_rate)
    meta["chunk"] = int(chunk.header.get("chunk", 0))
    meta["sender_report"] = None
    return TrimmedChunk(
        info, meta["chunk"], meta, stats.seconds(clock_rate), len(data) - chunk.length
    )
