"""Chunks left open: by a crash (found in ``incoming/`` at the next start) or by a write
that failed. Each is cut at its last whole packet record and counted again from its
file. Blocking file I/O: run it off the event loop."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recorder import chunkfile
from recorder.capture import TrackInfo
from recorder.chunkstats import ChunkStats

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrimmedChunk:
    info: TrackInfo
    index: int
    meta: dict[str, Any]
    seconds: float
    cut_bytes: int
    """Bytes of a torn last record that were cut off."""


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
