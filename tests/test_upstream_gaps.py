"""media/upstream.py: when upstream gaps are NACKed again and given up, timed by the
measured round trip (pure, with explicit times)."""

from __future__ import annotations

from media.upstream import (
    INITIAL_RETRY_INTERVAL,
    MAX_GIVE_UP,
    MIN_GIVE_UP,
    RoundTrip,
    UpstreamGaps,
)


def test_an_answer_to_a_single_nack_measures_the_round_trip():
    """A retransmission answering the only NACK for its gap is a round-trip sample; the
    retry interval then follows it (RFC 6298: srtt + 4 rttvar)."""
    gaps = UpstreamGaps()
    gaps.add(100, 0.0)
    assert gaps.add(102, 1.0)[0] == [101]
    assert gaps.add(101, 1.3) == ([], True, False)
    assert abs(gaps.round_trip.srtt - 0.3) < 1e-9
    assert abs(gaps.round_trip.retry_interval - (0.3 + 4 * 0.15)) < 1e-9


def test_an_answer_after_several_nacks_is_not_a_sample():
    """Karn: which NACK a retransmission answers is unknown after several."""
    gaps = UpstreamGaps()
    gaps.add(1, 0.0)
    gaps.add(3, 0.0)
    assert gaps.due(INITIAL_RETRY_INTERVAL) == ([2], False)
    assert gaps.add(2, INITIAL_RETRY_INTERVAL + 0.1)[1]
    assert gaps.round_trip.srtt is None


def test_a_long_round_trip_is_waited_for_and_a_gap_given_up_by_time():
    """With a 300 ms round trip a gap is NACKed again no sooner than one round trip
    and given up only after several (backing off), never by a count of fast ticks."""
    gaps = UpstreamGaps()
    for _ in range(5):
        gaps.round_trip.sample(0.3)
    interval, give_up = gaps.round_trip.retry_interval, gaps.round_trip.give_up
    assert interval >= 0.3
    assert MIN_GIVE_UP <= give_up <= MAX_GIVE_UP and give_up >= 4 * 0.3
    gaps.add(10, 0.0)
    gaps.add(12, 0.0)
    assert gaps.due(interval - 0.01) == ([], False)
    assert gaps.due(interval) == ([11], False)
    assert gaps.due(2 * interval) == ([], False)  # backs off: next at 3 intervals
    assert gaps.due(3 * interval) == ([11], False)
    assert gaps.next_due() == give_up
    assert gaps.due(give_up) == ([], True)
    assert 11 in gaps.abandoned


def test_a_retransmission_after_giving_up_is_reported_late():
    """A retransmission that comes after its gap was given up is still recognised (the
    legs forward it) and is not a round-trip sample."""
    gaps = UpstreamGaps()
    gaps.add(10, 0.0)
    gaps.add(12, 0.0)
    gaps.due(MAX_GIVE_UP)
    assert gaps.add(11, MAX_GIVE_UP + 0.2) == ([], False, True)
    assert gaps.round_trip.srtt is None and not gaps.abandoned


def test_an_outage_is_not_nacked():
    """A jump past MAX_RECOVERABLE_GAP records nothing and flags the jump."""
    gaps = UpstreamGaps()
    gaps.add(0, 0.0)
    assert gaps.add(1000, 0.1)[0] == []
    assert gaps.jumped and not gaps.missing


def test_round_trip_bounds():
    """Unmeasured: a conservative first interval; a tiny round trip still waits the
    minimum before giving up."""
    rtt = RoundTrip()
    assert rtt.retry_interval == INITIAL_RETRY_INTERVAL
    for _ in range(20):
        rtt.sample(0.001)
    assert rtt.retry_interval >= 0.03
    assert rtt.give_up == MIN_GIVE_UP
