"""The capture chunk file format: pure encode/decode, no I/O.

    magic    8 bytes  b"CVRTPCAP"
    length   4 bytes  big-endian length of the header
    header   JSON (UTF-8, sorted keys): format version, codec, clock rate, kind,
             participant, source, session, case, case id, track, chunk index, opened at
    records  one per received RTP packet, in arrival order:
             tag 0xA5 (1) | marker << 7 | payload type (1) | sequence number (2) |
             RTP timestamp (4) | SSRC (4) | arrival, µs since the epoch (8) |
             payload length (2) | payload

A file ends at its last whole record: a tail cut short (a crash mid-write) or a byte
that is not a record tag ends it there, so a reader never invents a packet.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

MAGIC = b"CVRTPCAP"
VERSION = 1
SUFFIX = ".capture"
"""Open chunks in the store's incoming/ directory end with this."""
TAG = 0xA5
RECORD = struct.Struct("!BBHIIQH")
_LENGTH = struct.Struct("!I")
MAX_HEADER = 64 * 1024


class ChunkFormatError(ValueError):
    """Not a capture chunk (bad magic, header or version)."""


class Record(NamedTuple):
    """One received RTP packet (a tuple: a chunk holds hundreds of thousands)."""

    arrival_us: int
    sequence_number: int
    timestamp: int
    marker: int
    payload_type: int
    ssrc: int
    payload: bytes


def encode_header(header: dict[str, Any]) -> bytes:
    body = json.dumps({"version": VERSION, **header}, sort_keys=True, ensure_ascii=False).encode()
    return MAGIC + _LENGTH.pack(len(body)) + body


def encode_record(
    arrival_us: int,
    sequence_number: int,
    timestamp: int,
    marker: int,
    payload_type: int,
    ssrc: int,
    payload: bytes,
) -> bytes:
    flags = (marker & 1) << 7 | (payload_type & 0x7F)
    return (
        RECORD.pack(TAG, flags, sequence_number, timestamp, ssrc, arrival_us, len(payload))
        + payload
    )


def decode_header(data: bytes | memoryview) -> tuple[dict[str, Any], int]:
    """The header and the offset of the first record."""
    if bytes(data[:8]) != MAGIC or len(data) < 12:
        raise ChunkFormatError("not a capture chunk")
    (length,) = _LENGTH.unpack_from(data, 8)
    if length > MAX_HEADER or len(data) < 12 + length:
        raise ChunkFormatError("header cut short")
    try:
        header = json.loads(bytes(data[12 : 12 + length]))
    except ValueError as exc:
        raise ChunkFormatError("header is not JSON") from exc
    if not isinstance(header, dict) or header.get("version") != VERSION:
        raise ChunkFormatError(f"unsupported version {header.get('version')!r}")
    return header, 12 + length


def _records(
    data: bytes | memoryview, offset: int
) -> Iterator[tuple[int, int, int, int, int, int, int]]:
    """Each whole record's fixed fields (flags, sequence number, timestamp, SSRC,
    arrival) and where its payload starts and ends."""
    size = len(data)
    unpack, fixed = RECORD.unpack_from, RECORD.size
    while offset + fixed <= size:
        tag, flags, seq, timestamp, ssrc, arrival_us, length = unpack(data, offset)
        start = offset + fixed
        offset = start + length
        if tag != TAG or offset > size:
            return
        yield flags, seq, timestamp, ssrc, arrival_us, start, offset


def iter_records(data: bytes | memoryview, offset: int) -> Iterator[tuple[Record, int]]:
    """Each whole record and the offset just past it."""
    source = data if isinstance(data, bytes) else memoryview(data)  # bytes: one slice, no view
    for flags, seq, timestamp, ssrc, arrival_us, start, end in _records(source, offset):
        payload = bytes(source[start:end])
        yield Record(arrival_us, seq, timestamp, flags >> 7, flags & 0x7F, ssrc, payload), end


def arrivals(data: bytes | memoryview, offset: int) -> tuple[list[int], list[int]]:
    """The sequence number and arrival (µs) of each whole record, without its payload:
    all that counting a chunk's losses and outages again needs."""
    seqs: list[int] = []
    times: list[int] = []
    for _, seq, _, _, arrival_us, _, _ in _records(data, offset):
        seqs.append(seq)
        times.append(arrival_us)
    return seqs, times


@dataclass(frozen=True)
class Chunk:
    header: dict[str, Any]
    records: list[Record]
    length: int
    """Bytes up to the end of the last whole record."""


def decode(data: bytes | memoryview) -> Chunk:
    header, offset = decode_header(data)
    records = []
    length = offset
    for record, after in iter_records(data, offset):
        records.append(record)
        length = after
    return Chunk(header, records, length)
