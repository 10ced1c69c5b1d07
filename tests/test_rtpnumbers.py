"""RTP's wrapping numbers: sequence numbers and timestamps extended across the wrap,
forwards and back."""

from __future__ import annotations

from recorder.rtpnumbers import SEQ_ROOM, extend_seq, extend_timestamp


def test_sequence_numbers_extend_across_the_wrap_both_ways():
    """The first number leaves room below; later ones land on the nearer side of the
    highest, also across 65535 → 0 and for a late packet from before the wrap."""
    first = extend_seq(65534, None)
    assert first == 65534 + SEQ_ROOM
    after_wrap = extend_seq(1, first)
    assert after_wrap - first == 3
    assert extend_seq(65533, after_wrap) == first - 1  # late, from before the wrap
    assert extend_seq(40000, extend_seq(10, None)) < extend_seq(10, None)  # > half: older


def test_timestamps_extend_across_the_wrap_both_ways():
    """A 32-bit timestamp past 2³²-1 goes on counting; one a little older goes back."""
    last = 0xFFFFFF00
    assert extend_timestamp(0x100, last) == 0x100000100
    assert extend_timestamp(0xFFFFFE00, last) == last - 0x100
    assert extend_timestamp(0x100, 0x100000100) == 0x100000100  # already extended
