"""RTP-level forwarding through a MediaRoom, with real aiortc peers on loopback."""

from __future__ import annotations

from media.participant import SyntheticParticipant, make_sources
from media.room import MediaConfig, MediaRoom
from tests.helpers import wait_until

CONFIG = MediaConfig(announced_addresses=("127.0.0.1",))


async def join(room: MediaRoom, name: str, publish: tuple[str, ...]) -> SyntheticParticipant:
    peer = SyntheticParticipant(make_sources(publish))
    offer, mapping = await peer.offer()
    answer = await room.connect(name, offer, mapping, frozenset(publish))
    await peer.accept(answer)
    return peer


def slot_of(room: MediaRoom, subscriber: str, publisher: str, source: str) -> str:
    for mid, shown in room.slots(subscriber).items():
        if shown == {"participant": publisher, "source": source}:
            return mid
    raise AssertionError(f"{subscriber} has no slot for {publisher}/{source}")


async def test_stamped_frames_flow_both_ways_in_order():
    """Clerk's face, document and tone reach the approver and the approver's face and
    tone reach the clerk; counters arrive in increasing order."""
    room = MediaRoom("s1", CONFIG)
    clerk = await join(room, "clerk", ("face", "document", "audio"))
    approver = await join(room, "approver", ("face", "audio"))
    try:
        document = approver.received[slot_of(room, "approver", "clerk", "document")]
        face = approver.received[slot_of(room, "approver", "clerk", "face")]
        back = clerk.received[slot_of(room, "clerk", "approver", "face")]
        tone = approver.received[slot_of(room, "approver", "clerk", "audio")]
        await wait_until(
            lambda: (
                min(len(document.counters), len(face.counters), len(back.counters)) >= 30
                and tone.frequency is not None
            ),
            what="30 frames on every video track and a second of audio",
        )
        for received in (document, face, back):
            assert received.counters == sorted(received.counters)
            assert len(set(received.counters)) == len(received.counters)
        assert (1280, 720) in document.sizes
        assert abs(tone.frequency - 440) < 10
    finally:
        await clerk.close()
        await approver.close()
        await room.close()
