"""Recording of live review sessions end to end: real aiortc peers through the public
API and protocol, a real database and evidence store, the conversion worker process."""

from __future__ import annotations

import errno
import hashlib
import io
from typing import Any

import av
import pytest
from aiortc.rtp import RtpPacket, is_rtcp
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from coreview.app import create_app
from coreview.simulate import connect_media, slot_for
from media.participant import SyntheticParticipant
from media.synthetic import read_counter
from recorder import chunkfile
from recorder.auditlog import chain_of
from recorder.capture import TrackInfo
from recorder.errors import StoreError
from recorder.rtpcodecs import vp8_keyframe_start
from recorder.schema import evidence_files
from signaling.review import protocol
from signaling.settings import Settings
from signaling.storage.tables import review_sessions
from signaling.web.appkeys import AUDIT, ENGINE, EVIDENCE, LIVE
from tests.helpers import live_call, wait_until
from tests.rtp_source import video_packets

CHUNK_SECONDS = 2.0


@pytest.fixture
async def server(aiohttp_server, data_dir):
    """A real server on loopback that records in 2 s chunks."""
    settings = Settings(
        data_dir=data_dir,
        announced_addresses=("127.0.0.1",),
        reconnect_grace_seconds=2,
        chunk_seconds=CHUNK_SECONDS,
    )
    return await aiohttp_server(create_app(settings))


def record_received(peer: SyntheticParticipant, digests: set[bytes]) -> None:
    """Keep a digest of the payload of every RTP packet the peer receives."""
    dtls = peer.pc.getTransceivers()[0].sender.transport
    original = dtls._handle_rtp_data

    async def handle(data: bytes, arrival_time_ms: int) -> None:
        if not is_rtcp(data):
            digests.add(hashlib.sha256(RtpPacket.parse(data).payload).digest())
        await original(data, arrival_time_ms)

    dtls._handle_rtp_data = handle


async def rows(app: Any, session_id: str) -> list[Any]:
    query = select(evidence_files).where(evidence_files.c.session_id == session_id)
    async with app[ENGINE].connect() as conn:
        return list((await conn.execute(query.order_by(evidence_files.c.id))).all())


async def kinds(app: Any, case_no: str) -> list[str]:
    return [e.kind for e in await app[AUDIT].events(f"case:{case_no}")]


async def recording_done(app: Any, session_id: str, case_no: str, tracks: int) -> bool:
    """Every track ended and every capture chunk has its playable file."""
    found = await rows(app, session_id)
    captures = {r.sha256 for r in found if r.role == "capture"}
    derived = {r.derived_from for r in found if r.role == "playable"}
    return (await kinds(app, case_no)).count("track_ended") == tracks and captures <= derived


def track_rows(found: list[Any], role: str, participant: str, source: str) -> list[Any]:
    chosen = [r for r in found if (r.role, r.participant, r.source) == (role, participant, source)]
    return sorted(chosen, key=lambda r: (r.track, r.meta["chunk"] if role == "capture" else 0))


def playable_counters(store: Any, playable: list[Any], captures: list[Any]) -> list[int]:
    """Counters of the decoded frames of a track's playable files, in chunk order."""
    by_chunk = {r.derived_from: r for r in playable}
    counters = []
    for capture in captures:
        with av.open(io.BytesIO(store.path(by_chunk[capture.sha256].sha256).read_bytes())) as f:
            counters += [
                read_counter(frame.to_ndarray(format="yuv420p")[: frame.height])
                for frame in f.decode(video=0)
            ]
    return counters


def sender_report_offset(meta: dict[str, Any]) -> float:
    """Last arrival minus the sender's wall time of the chunk's last packet (SR). The
    last, not the first: a video chunk starts on a requested keyframe, whose encoding
    delays it at the sender (more so on a loaded machine), which is not the recording's
    doing."""
    report = meta["sender_report"]
    delta = (meta["last_rtp_timestamp"] - report["rtp_timestamp"]) & 0xFFFFFFFF
    if delta >= 0x80000000:
        delta -= 0x100000000
    return float(meta["last_arrival"] - (report["ntp_time"] + delta / meta["clock_rate"]))


async def test_every_received_frame_is_in_the_capture_and_the_playable_files(users, server):
    """What the approver received is, payload for payload, in the clerk's capture
    chunks; each chunk starts on a keyframe and is stored under its hash; the playable
    files decode to the approver's frames in order; audio and video line up within
    100 ms; the session's end closes, stores and converts the last chunks, and a checkpoint
    is signed over them (not only over the session_ended before them)."""
    app = server.app
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id, case_no = started["session"]["id"], started["session"]["case_no"]
    received: set[bytes] = set()
    clerk_peer = await connect_media(clerk_channel, ("face", "document", "audio"))
    approver_peer = await connect_media(approver_channel, ("face", "audio"))
    record_received(approver_peer, received)
    try:
        await wait_until(lambda: slot_for(approver_channel, "chuangkou", "document") is not None)
        document = approver_peer.received[slot_for(approver_channel, "chuangkou", "document")]
        await wait_until(lambda: len(document.counters) >= 80, limit=30, what="80 frames")
        await approver_channel.send(protocol.End())
        await clerk_channel.wait("state", lambda m: m["state"] == "ended")
        await wait_until(
            lambda: recording_done(app, session_id, case_no, tracks=5),
            limit=60,
            what="the last chunks stored and converted",
        )
        last_chunk = (await app[AUDIT].events(chain_of(case_no), kind="chunk_closed"))[-1]

        async def signed_over_the_last_chunk() -> bool:
            latest = await app[AUDIT].latest_checkpoint()
            return latest is not None and latest.tree_size > last_chunk.log_index

        await wait_until(signed_over_the_last_chunk, limit=10, what="a checkpoint at the end")
    finally:
        for closing in (clerk_peer, approver_peer, clerk_channel, approver_channel):
            await closing.close()
    store, found = app[EVIDENCE], await rows(app, session_id)
    captured: set[bytes] = set()
    for row in (r for r in found if r.role == "capture"):
        assert store.verify(row.sha256) and row.case_id and row.meta["lost"] == 0
        chunk = chunkfile.decode(store.path(row.sha256).read_bytes())
        assert chunk.header["session"] == session_id and chunk.header["case"] == case_no
        captured |= {hashlib.sha256(r.payload).digest() for r in chunk.records}
        if row.source != "audio":
            assert vp8_keyframe_start(chunk.records[0].payload), "chunk not on a keyframe"
            assert row.meta["starts_on_keyframe"]
    unmatched = {d for d in received if d not in captured}
    assert len(received) > 200 and not unmatched  # (RTX would differ: none on loopback)

    captures = track_rows(found, "capture", "chuangkou", "document")
    assert len(captures) >= 3 and len({r.track for r in captures}) == 1
    counters = playable_counters(
        store, track_rows(found, "playable", "chuangkou", "document"), captures
    )
    assert counters == sorted(set(counters))
    assert set(document.counters) <= set(counters)

    playable = [r for r in found if r.role == "playable"]
    assert all(r.meta["libavformat"] and r.seconds > 0 for r in playable)
    audio = [
        r for r in track_rows(found, "capture", "chuangkou", "audio") if r.meta["sender_report"]
    ]
    video = [r for r in captures if r.meta["sender_report"]]
    assert audio and video
    audio_offset = sum(sender_report_offset(r.meta) for r in audio) / len(audio)
    video_offset = sum(sender_report_offset(r.meta) for r in video) / len(video)
    assert abs(audio_offset - video_offset) < 0.1

    logged = await kinds(app, case_no)
    assert logged.count("track_started") == 5
    assert logged.count("chunk_closed") == len(found) - len(playable)
    assert logged.count("playable_derived") == len(playable)
    assert "recording_gap" not in logged and "recording_failed" not in logged


class FullDisk:
    """An open chunk file whose disk is full."""

    def __init__(self, file: Any) -> None:
        self.file = file

    def write(self, _data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self) -> None:
        self.file.close()


async def test_reconnect_gap_full_disk_and_failed_conversion_are_logged(users, server):
    """A publisher that reconnects makes a new track instance and a logged gap; a full
    disk stops that capture with an error to the participants while forwarding goes on,
    and what was written is kept; a chunk that cannot be converted is logged
    conversion_failed (once: the next start does not try it again) and its capture
    stays."""
    app = server.app
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id, case_no = started["session"]["id"], started["session"]["case_no"]
    clerk_peer = await connect_media(clerk_channel, ("face", "document", "audio"))
    approver_peer = await connect_media(approver_channel, ("face", "audio"))
    peers: list[Any] = [clerk_peer, approver_peer]
    try:
        await wait_until(lambda: slot_for(approver_channel, "chuangkou", "document") is not None)
        document = approver_peer.received[slot_for(approver_channel, "chuangkou", "document")]
        await wait_until(lambda: len(document.counters) >= 20, what="20 frames")
        await clerk_peer.close()  # the clerk's connection drops; it offers again
        peers.append(await connect_media(clerk_channel, ("face", "document", "audio")))
        await wait_until(lambda: _has(app, case_no, "recording_gap"), limit=30, what="a logged gap")
        gap = next(
            e for e in await app[AUDIT].events(f"case:{case_no}") if e.kind == "recording_gap"
        ).detail
        assert gap["reason"] == "reconnect" and gap["previous_track"] != gap["track"]
        assert 0 < gap["seconds"] < 10

        recording = app[LIVE].sessions[session_id].recording
        face = next(c for c in recording.captures if c.info.source == "face" and not c.done)
        # the disk fills once the new face chunk has some packets on it (a loaded machine
        # may not have written any yet: then there would be nothing to keep)
        await wait_until(
            lambda: face._file is not None and face._flushed_at > face._opened_at,
            what="the new face chunk's first write",
        )
        face._file = FullDisk(face._file)
        failed = await approver_channel.wait("error", lambda m: m["code"] == "recording_failed")
        assert "存储空间已满" in failed["message"]
        await clerk_channel.wait("error", lambda m: m["code"] == "recording_failed")
        seen = len(document.counters)
        await wait_until(lambda: len(document.counters) > seen + 15, what="forwarding on")

        await approver_channel.send(protocol.End())
        await clerk_channel.wait("state", lambda m: m["state"] == "ended")
        await wait_until(
            lambda: recording_done(app, session_id, case_no, tracks=8),
            limit=60,
            what="the recording closed",
        )
    finally:
        for closing in (*peers, clerk_channel, approver_channel):
            await closing.close()
    logged = await kinds(app, case_no)
    assert logged.count("recording_failed") == 1
    found = await rows(app, session_id)
    partial = [r for r in found if r.meta.get("partial")]
    assert len(partial) == 1 and partial[0].source == "face" and partial[0].meta["packets"] > 0

    recorder = app[LIVE].recorder
    capture = next(r for r in found if r.role == "capture")
    info = TrackInfo(
        session_id, case_no, capture.case_id, "chuangkou", "face", "video", "video/vp9", "x/face/1"
    )
    path = recorder.incoming / f"broken{chunkfile.SUFFIX}"
    broken = {"codec": "video/vp9", "session": session_id, "case": case_no, "kind": "video"}
    broken |= {"case_id": capture.case_id, "participant": "chuangkou", "source": "face"}
    broken |= {"track": info.track, "chunk": 0}
    path.write_bytes(
        chunkfile.encode_header(broken) + chunkfile.encode_record(1, 1, 1, 1, 98, 1, b"\x00" * 20)
    )
    sha256, conversion = await recorder.keep_chunk(info, path, {"chunk": 0}, 0.0, "chunk_closed")
    await conversion
    failed_event = (await app[AUDIT].events(f"case:{case_no}"))[-1]
    assert failed_event.kind == "conversion_failed" and failed_event.detail["chunk"] == sha256
    assert "unsupported codec" in failed_event.detail["reason"]
    assert app[EVIDENCE].verify(sha256)
    assert any(r.sha256 == sha256 and r.role == "capture" for r in await rows(app, session_id))

    # a stored chunk whose conversion never ran (the server stopped first) is converted
    # by convert_pending, which the next start runs
    vp8 = TrackInfo(
        session_id, case_no, capture.case_id, "chuangkou", "face", "video", "video/vp8", "y/face/1"
    )
    header = {"codec": "video/vp8", "clock_rate": 90_000, "session": session_id, "case": case_no}
    header |= {"case_id": capture.case_id, "participant": "chuangkou", "source": "face"}
    header |= {"kind": "video", "track": vp8.track, "chunk": 0}
    records = [
        chunkfile.encode_record(n, p.sequence_number, p.timestamp, p.marker, 97, 1, p.payload)
        for n, (_, p) in enumerate(video_packets("video/vp8", 15))
    ]
    pending = app[EVIDENCE].put(chunkfile.encode_header(header) + b"".join(records))
    assert await recorder._row(vp8, "capture", pending.sha256, pending.bytes, meta={})
    # not the one whose conversion failed: that is logged once, not at every start
    assert await recorder.convert_pending() == 1
    await wait_until(
        lambda: _derived(app, session_id, pending.sha256),
        limit=30,
        what="the pending chunk converted",
    )


async def _derived(app: Any, session_id: str, sha256: str) -> bool:
    return any(r.derived_from == sha256 for r in await rows(app, session_id))


async def _has(app: Any, case_no: str, kind: str) -> bool:
    return kind in await kinds(app, case_no)


def chunk_file(info: TrackInfo, frames: int = 15, first_seq: int = 0) -> bytes:
    """A capture chunk of real VP8 packets with the header the capture writes."""
    header = {"codec": info.codec, "clock_rate": 90_000, "session": info.session}
    header |= {"case": info.case_no, "case_id": info.case_id, "participant": info.participant}
    header |= {"source": info.source, "kind": info.kind, "track": info.track, "chunk": 0}
    records = [
        chunkfile.encode_record(n, p.sequence_number, p.timestamp, p.marker, 97, 1, p.payload)
        for n, (_, p) in enumerate(video_packets("video/vp8", frames, seq=first_seq))
    ]
    return chunkfile.encode_header(header) + b"".join(records)


async def test_a_chunk_is_stored_before_its_row_and_a_crash_between_is_finished(
    users, server, monkeypatch
):
    """A chunk is in the store before its row exists (a failed move leaves no row); a
    crash between row and event is finished at the next start: the event is logged
    once, also when recovery runs again."""
    app = server.app
    recorder = app[LIVE].recorder
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id, case_no = started["session"]["id"], started["session"]["case_no"]
    await clerk_channel.close()
    await approver_channel.close()
    async with app[ENGINE].connect() as conn:
        case_id = await conn.scalar(
            select(review_sessions.c.case_id).where(review_sessions.c.id == session_id)
        )
    info = TrackInfo(
        session_id, case_no, case_id, "chuangkou", "face", "video", "video/vp8", "z/face/1"
    )

    # the move into the store fails: no row names bytes that are not stored
    full = recorder.incoming / f"full{chunkfile.SUFFIX}"
    full.write_bytes(chunk_file(info, first_seq=100))
    sha_full = hashlib.sha256(full.read_bytes()).hexdigest()

    def no_space(path: Any) -> Any:
        raise StoreError("disk_full", "no space")

    monkeypatch.setattr(recorder.store, "adopt", no_space)
    with pytest.raises(StoreError):
        await recorder.keep_chunk(info, full, {"chunk": 0}, 1.0, "chunk_closed")
    assert not any(r.sha256 == sha_full for r in await rows(app, session_id))
    monkeypatch.undo()
    full.unlink()
    for note in recorder.incoming.glob("*.pending"):
        note.unlink()

    # the process dies between the row and the event
    path = recorder.incoming / f"torn{chunkfile.SUFFIX}"
    path.write_bytes(chunk_file(info))
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    log = recorder.log

    async def dies(event_info: TrackInfo, event: str, **detail: Any) -> None:
        if event == "chunk_closed":
            raise OperationalError("INSERT", {}, Exception("the process died"))
        await log(event_info, event, **detail)

    monkeypatch.setattr(recorder, "log", dies)
    with pytest.raises(OperationalError):
        await recorder.keep_chunk(info, path, {"chunk": 0}, 1.0, "chunk_closed")
    monkeypatch.undo()
    assert any(r.sha256 == sha256 for r in await rows(app, session_id))
    for _ in range(2):  # the next start, and the one after
        await recorder.recover()
    events = await app[AUDIT].events(f"case:{case_no}")
    filed = [e for e in events if e.detail.get("sha256") == sha256]
    assert [e.kind for e in filed] == ["chunk_closed"]
    assert app[EVIDENCE].verify(sha256)
    assert not list(recorder.incoming.glob(f"*{chunkfile.SUFFIX}*"))
