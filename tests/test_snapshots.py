"""Server-side snapshots of live tracks, with real aiortc peers on loopback: the approver
and a hidden auditor get a picture of the clerk's document or face camera decoded from
one fresh keyframe (its stamped counter is a recent frame); it is stored and logged; a
clerk may not take one, a track nobody publishes is a clear 404, and no keyframe in
time is a clear timeout."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
from aiortc.rtp import RtpPacket
from PIL import Image

from coreview.simulate import ApiError, SignalChannel, connect_media
from media.room import MediaError
from media.snapshot import DECODERS, KeyframeSink, decode_frame, take_snapshot
from media.synthetic import read_counter
from signaling.web.appkeys import AUDIT, LIVE
from tests.helpers import live_call, wait_until
from tests.test_depacketize import HEIGHT, WIDTH, packetise

RECENT_FRAMES = 30
"""A snapshot shows one of the last 2 s of frames (15 fps)."""


async def fetch(api, url: str) -> bytes:
    async with api.http.get(api.base_url + url) as response:
        assert response.status == 200
        return await response.read()


async def test_snapshots_of_live_tracks(users, server):
    """Approver and auditor snapshot the clerk's document (PNG) and face (JPEG); each
    decodes to a recent stamped frame at the track's size, is served, listed (an
    auditor's only to auditors), and logged as snapshot_taken."""
    clerk, approver, auditor = (
        await users("chuangkou"),
        await users("shenpi"),
        await users("jiancha"),
    )
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id = started["session"]["id"]
    clerk_peer = await connect_media(clerk_channel, ("face", "document", "audio"))
    token = (await auditor.post(f"/api/v1/sessions/{session_id}/token"))["token"]
    auditor_channel = await SignalChannel.open(auditor, session_id, token)
    try:
        room = server.app[LIVE].sessions[session_id].media_room()

        def flowing() -> bool:
            tracks = [room.track("chuangkou", source) for source in ("face", "document")]
            return all(t is not None and t.packets > 0 for t in tracks)

        await wait_until(flowing, what="the clerk's video reaching the server")
        sources = clerk_peer.sources
        await wait_until(lambda: sources["document"].counter > 10, what="media flowing")
        url = f"/api/v1/sessions/{session_id}/snapshots"
        for api, source, image_format, size in (
            (approver, "document", "png", (1280, 720)),
            (auditor, "face", "jpeg", (640, 480)),
        ):
            body = {"participant": "chuangkou", "source": source, "format": image_format}
            shot = (await api.post(url, body))["snapshot"]
            sent = sources[source].counter
            assert (shot["width"], shot["height"]) == size
            assert shot["content_type"] == f"image/{image_format}"
            assert (shot["participant"], shot["source"]) == ("chuangkou", source)
            assert shot["taken_by"] == api.user["username"]
            data = await fetch(api, shot["url"])
            assert len(data) == shot["bytes"]
            picture = Image.open(io.BytesIO(data))
            assert picture.format == image_format.upper()
            counter = read_counter(np.asarray(picture.convert("L")))
            assert sent - RECENT_FRAMES <= counter <= sent, (source, counter, sent)

        listed = await approver.get(f"/api/v1/sessions/{session_id}/stills")
        assert [s["source"] for s in listed["snapshots"]] == ["document"]  # not the auditor's
        assert listed["stills"] == []
        listed = await auditor.get(f"/api/v1/sessions/{session_id}/stills")
        assert [s["source"] for s in listed["snapshots"]] == ["document", "face"]
        logged = await server.app[AUDIT].events(
            f"case:{started['session']['case_no']}", "snapshot_taken"
        )
        assert [(e.actor, e.detail["source"]) for e in logged] == [
            ("shenpi", "document"),
            ("jiancha", "face"),
        ]
    finally:
        await clerk_peer.close()
        for channel in (clerk_channel, approver_channel, auditor_channel):
            await channel.close()


async def test_snapshot_refusals(users):
    """A clerk may not take snapshots (wrong_role); a track nobody publishes is
    track_not_found; a bad source or format is field_invalid."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    url = f"/api/v1/sessions/{started['session']['id']}/snapshots"
    try:
        for api, body, status, code in (
            (clerk, {"participant": "shenpi", "source": "face"}, 403, "wrong_role"),
            (approver, {"participant": "chuangkou", "source": "document"}, 404, "track_not_found"),
            (approver, {"participant": "chuangkou", "source": "audio"}, 400, "field_invalid"),
            (approver, {"participant": "chuangkou", "source": "face", "format": "gif"}, 400,
             "field_invalid"),
        ):  # fmt: skip
            with pytest.raises(ApiError) as refused:
                await api.post(url, body)
            assert (refused.value.status, refused.value.code) == (status, code)
    finally:
        await clerk_channel.close()
        await approver_channel.close()


class SilentTrack:
    """Stands in for a PublishedTrack whose publisher never sends a keyframe."""

    kind = "video"
    mime_type = "video/VP8"

    def __init__(self) -> None:
        self.sinks: list[object] = []
        self.requests = 0

    def request_keyframe(self) -> None:
        self.requests += 1


async def test_no_keyframe_in_time_is_a_clear_timeout():
    """Without a keyframe the snapshot fails with snapshot_timeout after asking again
    for one, and leaves no sink behind."""
    track = SilentTrack()
    with pytest.raises(MediaError) as failed:
        await take_snapshot(track, 1.0)  # type: ignore[arg-type]
    assert failed.value.code == "snapshot_timeout"
    assert track.requests >= 2 and track.sinks == []


async def test_a_track_that_ends_fails_the_snapshot():
    """The track going away while waiting fails with track_ended at once."""
    track = SilentTrack()
    waiting = asyncio.ensure_future(take_snapshot(track, 30.0))  # type: ignore[arg-type]
    await wait_until(lambda: bool(track.sinks), what="the sink attached")
    track.sinks[0].ended()  # type: ignore[attr-defined]
    with pytest.raises(MediaError) as failed:
        await waiting
    assert failed.value.code == "track_ended"


@pytest.mark.parametrize("mime_type", ["video/H264", "video/VP8"])
async def test_a_keyframe_packetised_by_aiortc_decodes(mime_type: str) -> None:
    """A keyframe from aiortc's packetiser (for H264: SPS/PPS in a STAP-A, then IDR
    packets that also look like keyframe starts) is collected whole and decodes to its
    stamped counter."""
    records = packetise(mime_type, 4, 7000, frozenset({0, 2}))
    timestamps = sorted({r.timestamp for r in records})
    key_timestamp = timestamps[2]
    assert len([r for r in records if r.timestamp == key_timestamp]) > 1
    sink = KeyframeSink(mime_type)
    for n, r in enumerate(r for r in records if r.timestamp != timestamps[0]):
        rtp = RtpPacket(96, r.marker, r.sequence_number, r.timestamp, 1, r.payload)
        sink.packet(rtp, 1000.0 + n)
    frame, _arrival = sink.result.result()
    assert frame.keyframe and frame.timestamp & 0xFFFFFFFF == key_timestamp
    codec = DECODERS[mime_type.lower()]
    data, width, height = await asyncio.to_thread(decode_frame, codec, frame.data, "png")
    picture = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
    assert (width, height) == (WIDTH, HEIGHT) and read_counter(picture) == 2
