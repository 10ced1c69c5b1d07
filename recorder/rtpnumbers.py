"""RTP's wrapping numbers made monotonic: 16-bit sequence numbers and 32-bit timestamps
(RFC 3550 §A.1), the nearer of the two ways round being the one meant."""

from __future__ import annotations

SEQ_ROOM = 0x10000
"""A first sequence number is extended by this, leaving room below for older packets."""


def extend_seq(seq: int, highest: int | None) -> int:
    """``seq`` extended beside the highest extended number so far (None: the first)."""
    if highest is None:
        return seq + SEQ_ROOM
    delta = (seq - highest) & 0xFFFF
    return highest + delta if delta < 0x8000 else highest - (0x10000 - delta)


def extend_timestamp(timestamp: int, last: int) -> int:
    """``timestamp`` extended beside the last extended timestamp, forwards or back."""
    delta = (timestamp - last) & 0xFFFFFFFF
    return last + (delta if delta < 0x80000000 else delta - 0x100000000)


def rtp_since(timestamp: int, earlier: int) -> int:
    """``timestamp - earlier`` in RTP units, across a wrap of the 32-bit counter."""
    return extend_timestamp(timestamp, earlier) - earlier
