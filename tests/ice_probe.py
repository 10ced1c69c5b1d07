"""Run by tests/test_candidates.py inside a network namespace of its own (nothing can
leave the machine): a media room announcing 10.77.0.1 answers an offer whose candidate
lines also name addresses it must not check. Decoy UDP sockets on those addresses count
what reaches them. Prints one JSON line: whether ICE connected, and the counts."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from media.participant import SyntheticParticipant, make_sources
from media.room import MediaConfig, MediaRoom
from tests.helpers import wait_until

ANNOUNCED = "10.77.0.1"
DENIED_NETWORK = "10.99.0.0/16"
DECOYS = (("169.254.169.254", 40001), ("127.0.0.1", 40002), ("10.99.0.5", 40003))
"""Cloud metadata (link-local), loopback while the server announces another address,
and a network the settings deny."""


class Count(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.datagrams += 1


def inject(offer: str) -> str:
    """Put a candidate for each decoy before each of the offer's own (so, at equal
    priority, the decoys are checked first)."""
    extra = "".join(
        f"a=candidate:9{i} 1 udp 2130706431 {host} {port} typ host\r\n"
        for i, (host, port) in enumerate(DECOYS)
    )
    return offer.replace("a=candidate:", extra + "a=candidate:")


async def main() -> None:
    loop = asyncio.get_running_loop()
    decoys = {}
    for host, port in DECOYS:
        _transport, protocol = await loop.create_datagram_endpoint(Count, local_addr=(host, port))
        decoys[host] = protocol
    connected = asyncio.Event()

    async def on_state(_participant: str, state: str) -> None:
        if state == "connected":
            connected.set()

    config = MediaConfig((ANNOUNCED,), ice_denied_networks=(DENIED_NETWORK,))
    room = MediaRoom("probe", config, on_state=on_state)
    peer = SyntheticParticipant(make_sources(("face",)), addresses=(ANNOUNCED,))
    try:
        offer, mapping = await peer.offer()
        answer = await room.connect("clerk", inject(offer), mapping, frozenset({"face"}))

        def checks() -> list[Any]:
            return server_checks(room)

        # before the client answers any check: the server has started a check on every
        # pair it formed (the decoys' first; none at all once they are dropped)
        await wait_until(
            lambda: (
                bool(checks()) and all(p.state.name not in ("FROZEN", "WAITING") for p in checks())
            ),
            what="a check started on every pair",
        )
        remote = sorted({p.remote_candidate.host for p in checks()})
        await peer.accept(answer)
        try:
            await asyncio.wait_for(connected.wait(), 20)
        except TimeoutError:
            pass
    finally:
        await peer.close()
        await room.close()
    counts = {host: protocol.datagrams for host, protocol in decoys.items()}
    print(json.dumps({"connected": connected.is_set(), "decoys": counts, "checked": remote}))


def server_checks(room: MediaRoom) -> list[Any]:
    """The server's ICE check list (aioice pairs; a test-only look at internals)."""
    pc = room._peers["clerk"].pc
    connection = pc.getTransceivers()[0].receiver.transport.transport.iceGatherer._connection
    return list(connection._check_list)


if __name__ == "__main__":
    asyncio.run(main())
