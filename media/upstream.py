"""Upstream loss recovery: which packets of a published track are missing, when to
NACK them again and when to give up — all timed by the measured round trip to the
publisher (RFC 6298's estimator), not by fixed ticks, so a long round trip or a busy
event loop does not abandon a loss before its retransmission can arrive. Pure: the
caller passes the time and sends the NACKs."""

from __future__ import annotations

from dataclasses import dataclass

INITIAL_RETRY_INTERVAL = 0.5
"""Before any round trip is measured, NACK a gap again after this long (s)."""
MIN_RETRY_INTERVAL = 0.03
MAX_RETRY_INTERVAL = 1.0
RTT_VARIANCE_FLOOR = 0.01
"""Lower bound of the round-trip variance term (s): loop and timer granularity."""
GIVE_UP_INTERVALS = 4
"""A gap is given up this many retry intervals after its first NACK, ..."""
MIN_GIVE_UP = 0.5
MAX_GIVE_UP = 3.0
"""... but never before MIN_GIVE_UP and always by MAX_GIVE_UP (s)."""
MAX_RECOVERABLE_GAP = 64
"""A longer upstream gap (an outage) is not NACKed: the legs wait for a keyframe."""


def seq_newer(a: int, b: int) -> bool:
    """``a`` comes after ``b`` in 16-bit sequence space."""
    return a != b and ((a - b) & 0xFFFF) < 0x8000


class RoundTrip:
    """Smoothed round-trip time and its variance (RFC 6298), in seconds."""

    def __init__(self) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.samples = 0

    def sample(self, rtt: float) -> None:
        if rtt <= 0:
            return
        self.samples += 1
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt

    @property
    def retry_interval(self) -> float:
        """How long a NACK's answer may take before we NACK again (the RTO)."""
        if self.srtt is None:
            return INITIAL_RETRY_INTERVAL
        rto = self.srtt + max(4 * self.rttvar, RTT_VARIANCE_FLOOR)
        return min(MAX_RETRY_INTERVAL, max(MIN_RETRY_INTERVAL, rto))

    @property
    def give_up(self) -> float:
        """How long after its first NACK a gap is abandoned."""
        return min(MAX_GIVE_UP, max(MIN_GIVE_UP, GIVE_UP_INTERVALS * self.retry_interval))


@dataclass
class Gap:
    first: float
    """When it was first NACKed."""
    due: float
    """When to NACK it again."""
    nacks: int = 1


class UpstreamGaps:
    """Missing upstream sequence numbers, NACKed again after each retry interval
    (doubling per gap) until answered or given up."""

    def __init__(self) -> None:
        self.highest: int | None = None
        self.missing: dict[int, Gap] = {}
        self.abandoned: dict[int, float] = {}
        """Given-up sequence numbers → when: a retransmission may still come."""
        self.round_trip = RoundTrip()
        self.jumped = False

    def add(self, seq: int, now: float) -> tuple[list[int], bool, bool]:
        """Record an arrival at ``now``; return the sequence numbers newly found missing,
        whether it filled a gap in time (a retransmission), and whether it filled a gap
        already given up (a late one: still forwarded, a subscriber may use it). A jump
        past MAX_RECOVERABLE_GAP is an outage: nothing is recorded (see ``jumped``)."""
        self.jumped = False
        if self.highest is None:
            self.highest = seq
            return [], False, False
        if seq == (self.highest + 1) & 0xFFFF and not self.missing and not self.abandoned:
            self.highest = seq  # the usual case, kept short: the next packet, nothing owed
            return [], False, False
        gap = self.missing.pop(seq, None)
        if gap is not None and gap.nacks == 1:  # Karn: only an unambiguous answer
            self.round_trip.sample(now - gap.first)
        late = gap is None and self.abandoned.pop(seq, None) is not None
        if not seq_newer(seq, self.highest):
            return [], gap is not None, late
        count = (seq - self.highest - 1) & 0xFFFF
        self.highest = seq
        if count > MAX_RECOVERABLE_GAP:
            self.jumped = True
            self.missing.clear()
            self.abandoned.clear()
            return [], gap is not None, late
        new = [(seq - count + i) & 0xFFFF for i in range(count)]
        due = now + self.round_trip.retry_interval
        for missing in new:
            self.missing[missing] = Gap(now, due)
        return new, gap is not None, late

    def due(self, now: float) -> tuple[list[int], bool]:
        """Gaps to NACK again at ``now``, and whether some were given up (ask for a
        keyframe)."""
        interval, give_up = self.round_trip.retry_interval, self.round_trip.give_up
        retry = []
        gave_up = False
        for seq, gap in list(self.missing.items()):
            if now - gap.first >= give_up:
                del self.missing[seq]
                self.abandoned[seq] = now
                gave_up = True
            elif now >= gap.due:
                gap.due = now + interval * 2**gap.nacks
                gap.nacks += 1
                retry.append(seq)
        for seq, when in list(self.abandoned.items()):
            if now - when > MAX_GIVE_UP:
                del self.abandoned[seq]
        return retry, gave_up

    def next_due(self) -> float | None:
        """When ``due`` has something to do next (None: nothing missing)."""
        if not self.missing:
            return None
        give_up = self.round_trip.give_up
        return min(min(gap.due, gap.first + give_up) for gap in self.missing.values())
