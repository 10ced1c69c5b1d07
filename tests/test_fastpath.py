"""The C parts of forwarding (media/_fastpath.c) that have a Python original: receiver
statistics against aiortc's, the slot's packet cache."""

from __future__ import annotations

from types import SimpleNamespace
from unittest import mock

from aiortc import rtcrtpreceiver
from aiortc.rtcrtpreceiver import StreamStatistics
from hypothesis import given
from hypothesis import strategies as st

from media import _fastpath

arrivals = st.lists(
    st.tuples(
        st.integers(0, 0xFFFF),  # sequence number
        st.integers(0, 0xFFFFFFFF),  # timestamp
        st.floats(0, 0.2),  # seconds since the previous arrival
    ),
    min_size=1,
    max_size=60,
)


@given(arrivals, st.sampled_from([8000, 48000, 90000]), st.integers(1, 6))
def test_stats_equal_aiortcs_stream_statistics(
    packets: list[tuple[int, int, float]], clockrate: int, read_every: int
) -> None:
    """Packets in any order (wraps, duplicates, reordering, jumps) give the same counts,
    highest sequence number, jitter and loss as aiortc's StreamStatistics, including
    ``fraction_lost``, which starts a new interval each time it is read."""
    theirs, ours = StreamStatistics(clockrate), _fastpath.Stats(clockrate)
    now = 1_800_000_000.0
    for i, (seq, timestamp, delay) in enumerate(packets):
        now += delay
        packet = SimpleNamespace(sequence_number=seq, timestamp=timestamp)
        with mock.patch.object(rtcrtpreceiver.time, "time", return_value=now):
            theirs.add(packet)  # type: ignore[arg-type]
        ours.add(packet, now)
        assert (ours.base_seq, ours.max_seq, ours.cycles, ours.packets_received) == (
            theirs.base_seq,
            theirs.max_seq,
            theirs.cycles,
            theirs.packets_received,
        )
        assert (ours.jitter, ours.packets_expected, ours.packets_lost) == (
            theirs.jitter,
            theirs.packets_expected,
            theirs.packets_lost,
        )
        if i % read_every == 0:
            assert ours.fraction_lost == theirs.fraction_lost


def test_stats_before_any_packet():
    stats = _fastpath.Stats(90000)
    assert (stats.base_seq, stats.max_seq, stats.packets_received, stats.jitter) == (
        None,
        None,
        0,
        0,
    )
