"""What a chunk holds, counted packet by packet: the facts logged when it closes (live)
or is recovered (from its file). Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recorder.rtpcodecs import keyframe_detector, keyframe_size
from recorder.rtpnumbers import extend_seq, extend_timestamp

OUTAGE_SECONDS = 1.0
"""No packet for longer than this inside a track is an outage (a logged gap)."""
MAX_TRACKED_GAP = 3000
"""A larger sequence jump (a publisher's reset) is noted, not counted packet by packet."""
MAX_LISTED_RANGES = 200


def _ranges(values: list[int]) -> list[list[int]]:
    """Sorted extended sequence numbers as [first, last] ranges of 16-bit numbers."""
    ranges: list[list[int]] = []
    for value in values:
        if ranges and value == ranges[-1][1] + 1:
            ranges[-1][1] = value
        else:
            ranges.append([value, value])
    return [[first & 0xFFFF, last & 0xFFFF] for first, last in ranges]


@dataclass(frozen=True)
class Continuity:
    """Where the track's previous chunk ended: the next chunk counts from there, so a
    loss, an outage or a new resolution at a cut is not lost between two chunks."""

    highest: int
    """Extended sequence number of the newest packet."""
    arrival: float
    size: tuple[int, int] | None


class Sequence:
    """The sequence numbers and arrival times of a track's packets in one chunk: what
    was lost (and is still missing), jumped over or went silent. What the verifier
    counts again from a file needs only this part of ``ChunkStats``."""

    def __init__(self, previous: Continuity | None = None) -> None:
        self.packets = 0
        self.last_arrival = 0.0
        self.highest: int | None = None  # extended sequence number
        self.missing: set[int] = set()
        self.jumps: list[dict[str, int]] = []
        self.outages: list[dict[str, float]] = []
        self.losses: list[tuple[int, int, float, float]] = []
        """(first, last extended seq, arrival before, arrival after) of each jump."""
        self.previous = previous
        if previous is not None:
            self.highest = previous.highest
            self.last_arrival = previous.arrival

    def add(self, seq: int, arrival: float) -> tuple[float, bool]:
        """Count one packet: the seconds since the track's previous packet arrived, also
        across a cut (0 for the track's first), and whether it is the newest so far
        after an earlier one (it moved the highest number on)."""
        gap = 0.0
        if self.packets or self.previous is not None:
            gap = arrival - self.last_arrival
            if gap > OUTAGE_SECONDS:
                self.outages.append(
                    {"from": self.last_arrival, "to": arrival, "seconds": round(gap, 3)}
                )
        self.packets += 1
        before = self.last_arrival
        self.last_arrival = arrival
        highest = self.highest
        if highest is None:
            self.highest = extend_seq(seq, None)
            return gap, False
        extended = extend_seq(seq, highest)
        if extended <= highest:
            self.missing.discard(extended)
            return gap, False
        jump = extended - highest - 1
        if jump > MAX_TRACKED_GAP:
            self.jumps.append({"from": highest & 0xFFFF, "to": seq})
        elif jump:
            self.missing.update(range(highest + 1, extended))
            self.losses.append((highest + 1, extended - 1, before, arrival))
        self.highest = extended
        return gap, True

    def continuity(self, size: tuple[int, int] | None = None) -> Continuity | None:
        if self.highest is None or not self.packets:
            return self.previous
        return Continuity(self.highest, self.last_arrival, size)

    def lost(self) -> dict[str, Any]:
        """The facts of the chunk's meta this part counts."""
        lost = sorted(self.missing)
        return {
            "lost": len(lost),
            "lost_ranges": _ranges(lost)[:MAX_LISTED_RANGES],
            "sequence_jumps": self.jumps,
            "outages": self.outages,
        }


class ChunkStats:
    def __init__(self, codec: str, kind: str, previous: Continuity | None = None) -> None:
        self.codec = codec.lower()
        self.kind = kind
        self.is_keyframe = keyframe_detector(self.codec)
        self.sequence = Sequence(previous)
        self.bytes = 0
        self.frames = 0
        self.keyframes = 0
        self.first_arrival = 0.0
        self.first_seq = 0
        self.first_timestamp = 0
        self.highest_timestamp = 0  # extended RTP timestamp
        self.starts_on_keyframe = False
        self.size: tuple[int, int] | None = None
        self.first_size: tuple[int, int] | None = None
        self.resolution_changes: list[dict[str, Any]] = []
        self._last_key_timestamp: int | None = None
        if previous is not None:
            self.size = previous.size

    @property
    def packets(self) -> int:
        return self.sequence.packets

    @property
    def last_arrival(self) -> float:
        return self.sequence.last_arrival

    def continuity(self) -> Continuity | None:
        return self.sequence.continuity(self.size)

    def is_fresh(self, seq: int) -> bool:
        """Newer than every packet so far (not a late retransmission)."""
        highest = self.sequence.highest
        return highest is None or extend_seq(seq, highest) > highest

    def add(self, seq: int, timestamp: int, marker: int, payload: bytes, arrival: float) -> float:
        """Count one packet; return the seconds since the track's previous packet
        arrived, also across a cut (0 for the track's first)."""
        key = self.kind == "video" and self.is_keyframe(payload)
        if self.sequence.packets == 0:
            self.first_arrival = arrival
            self.first_seq = seq
            self.first_timestamp = timestamp
            self.highest_timestamp = timestamp
            self.starts_on_keyframe = key or self.kind != "video"
        gap, newest = self.sequence.add(seq, arrival)
        self.bytes += len(payload)
        if newest and self.sequence.packets > 1:
            self.highest_timestamp = max(
                self.highest_timestamp, extend_timestamp(timestamp, self.highest_timestamp)
            )
        if self.kind != "video" or marker:
            self.frames += 1
        if key and timestamp != self._last_key_timestamp:
            self._last_key_timestamp = timestamp
            self.keyframes += 1
            self._note_size(keyframe_size(self.codec, payload), seq, timestamp, arrival)
        return gap

    def _note_size(
        self, size: tuple[int, int] | None, seq: int, timestamp: int, arrival: float
    ) -> None:
        if size is not None and self.first_size is None:
            self.first_size = size
        if size is None or size == self.size:
            return
        if self.size is not None:
            self.resolution_changes.append(
                {
                    "seq": seq,
                    "rtp_timestamp": timestamp,
                    "arrival": arrival,
                    "width": size[0],
                    "height": size[1],
                }
            )
        self.size = size

    def seconds(self, clock_rate: int) -> float:
        """Media time the chunk spans, by its RTP timestamps."""
        return (self.highest_timestamp - self.first_timestamp) / clock_rate if clock_rate else 0.0

    def gaps(self) -> list[dict[str, Any]]:
        """Lost packets (ranges still missing, with the arrivals around them) and
        outages, in order: what the evidence shows per track."""
        found: list[dict[str, Any]] = []
        missing = self.sequence.missing
        for first, last, before, after in self.sequence.losses:
            still = [n for n in range(first, last + 1) if n in missing]
            for low, high in _ranges(still):
                count = (high - low) % 0x10000 + 1
                found.append(
                    {
                        "reason": "lost",
                        "from": before,
                        "to": after,
                        "seconds": round(after - before, 3),
                        "first_seq": low,
                        "last_seq": high,
                        "packets": count,
                    }
                )
        found += [{"reason": "outage", **outage} for outage in self.sequence.outages]
        found.sort(key=lambda gap: gap["from"])
        return found[:MAX_LISTED_RANGES]

    def meta(self, clock_rate: int) -> dict[str, Any]:
        sequence = self.sequence
        return {
            "codec": self.codec,
            "kind": self.kind,
            "clock_rate": clock_rate,
            "packets": sequence.packets,
            "payload_bytes": self.bytes,
            "frames": self.frames,
            "keyframes": self.keyframes,
            "starts_on_keyframe": self.starts_on_keyframe,
            "first_arrival": self.first_arrival,
            "last_arrival": sequence.last_arrival,
            "first_seq": self.first_seq,
            "last_seq": (sequence.highest or 0) & 0xFFFF,
            "first_rtp_timestamp": self.first_timestamp,
            "last_rtp_timestamp": self.highest_timestamp & 0xFFFFFFFF,
            "width": self.first_size[0] if self.first_size else None,
            "height": self.first_size[1] if self.first_size else None,
            "resolution_changes": self.resolution_changes,
            **sequence.lost(),
            "gaps": self.gaps(),
        }
