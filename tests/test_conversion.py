"""Capture chunks → playable files (recorder/convert.py) without re-encoding, and the
conversion worker (recorder/workers.py): read back with PyAV, stamped counters intact."""

from __future__ import annotations

import asyncio
import io
import os
import signal

import av
import pytest

from media.synthetic import read_counter
from recorder import chunkfile
from recorder.convert import ConversionError, convert, convert_stored
from recorder.store import EvidenceStore
from recorder.workers import JobFailed, WorkerPool
from tests import worker_jobs
from tests.helpers import wait_until
from tests.rtp_source import Packet, audio_packets, video_packets

T0_US = 1_700_000_000_000_000


def chunk_bytes(
    codec: str, packets: list[Packet], clock_rate: int = 90_000, track: str = "a/audio/1"
) -> bytes:
    header = chunkfile.encode_header(
        {"codec": codec, "clock_rate": clock_rate, "chunk": 0, "track": track}
    )
    records = b"".join(
        chunkfile.encode_record(
            T0_US + n * 20_000,
            p.sequence_number,
            p.timestamp,
            p.marker,
            p.payload_type,
            p.ssrc,
            p.payload,
        )
        for n, p in enumerate(packets)
    )
    return header + records


def decoded_counters(data: bytes) -> list[int]:
    with av.open(io.BytesIO(data)) as container:
        return [
            read_counter(frame.to_ndarray(format="yuv420p")[: frame.height])
            for frame in container.decode(video=0)
        ]


@pytest.mark.parametrize(
    ("codec", "container"), [("video/vp8", "webm"), ("video/h264", "matroska")]
)
def test_video_chunk_plays_from_its_first_keyframe_and_is_reproducible(codec, container):
    """A chunk that begins mid-stream (the last packet of a frame, then inter frames)
    plays from its first keyframe: every frame from there decodes with its counter, in
    order; converting it again gives the same bytes."""
    numbered = video_packets(codec, 40, keyframes=(0, 10))
    start = max(i for i, (c, _) in enumerate(numbered) if c == 5)  # frame 5's last packet
    chunk = chunkfile.decode(chunk_bytes(codec, [p for _, p in numbered[start:]]))
    playable = convert(chunk)
    assert playable.container == container
    assert decoded_counters(playable.data) == list(range(10, 40))
    assert playable.data == convert(chunk).data
    assert playable.dropped == 0


def test_vp8_chunk_starts_on_keyframe_and_skips_to_next_keyframe_after_a_loss():
    """Packets before the first keyframe are left out; a frame with a lost packet, and
    the frames after it until the next keyframe, are dropped (counted), never shown
    broken; pts follow the RTP timestamps."""
    numbered = video_packets("video/vp8", 45, keyframes=(0, 15, 30))
    packets = [p for c, p in numbered if c >= 3]  # starts mid-stream: no keyframe until 15
    lost = next(p for c, p in numbered if c == 20)
    packets.remove(lost)
    playable = convert(chunkfile.decode(chunk_bytes("video/vp8", packets)))
    assert decoded_counters(playable.data) == [*range(15, 20), *range(30, 45)]
    assert playable.dropped >= 9  # 21..29 at least (20 too, unless its only packet was lost)
    assert abs(playable.seconds - 29 / 15) < 1e-3
    with av.open(io.BytesIO(playable.data)) as container:
        stream = container.streams.video[0]
        pts = [
            float(p.pts * stream.time_base) for p in container.demux(stream) if p.pts is not None
        ]
    assert pts[0] == 0 and abs(pts[5] - 15 / 15) < 2e-3  # frame 30 one second after frame 15


def test_opus_chunk_plays_every_packet():
    """Opus: one packet, one frame; all of them decode, 20 ms each. The file names its
    track: two tracks with the same sound (a tone, silence) give different files."""
    packets = audio_packets(50)
    playable = convert(chunkfile.decode(chunk_bytes("audio/opus", packets, 48_000)))
    assert playable.container == "webm" and playable.frames == 50
    with av.open(io.BytesIO(playable.data)) as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
    assert samples == 50 * 960
    other = chunkfile.decode(chunk_bytes("audio/opus", packets, 48_000, track="b/audio/1"))
    assert convert(other).data != playable.data  # same sound, another track: another file


def test_unconvertible_chunks_are_refused():
    """An unknown codec, or video without any keyframe, is a clear ConversionError."""
    with pytest.raises(ConversionError, match="unsupported codec"):
        convert(chunkfile.decode(chunk_bytes("video/vp9", [])))
    inter = [p for c, p in video_packets("video/vp8", 5) if c > 0]
    with pytest.raises(ConversionError, match="no keyframe"):
        convert(chunkfile.decode(chunk_bytes("video/vp8", inter)))


async def test_worker_converts_a_stored_chunk_at_low_priority(tmp_path):
    """The worker process converts a stored chunk into the store (content-addressed),
    reports libavformat's version and its CPU time, and runs niced."""
    store = EvidenceStore(tmp_path / "evidence")
    data = chunk_bytes("video/vp8", [p for _, p in video_packets("video/vp8", 30)])
    chunk = store.put(data)
    pool = WorkerPool()
    try:
        result = await pool.run(convert_stored, str(store.root), chunk.sha256)
        again = await pool.run(convert_stored, str(store.root), chunk.sha256)
        assert result["sha256"] == again["sha256"] and store.verify(result["sha256"])
        assert result["libavformat"] == ".".join(map(str, av.library_versions["libavformat"]))
        assert result["frames"] == 30 and result["cpu_seconds"] > 0
        assert await pool.run(worker_jobs.niceness) >= os.nice(0) + 10
    finally:
        await pool.close()


async def test_a_killed_worker_is_replaced_and_the_job_runs_again(tmp_path):
    """A worker that dies mid-job breaks the pool: it is rebuilt and the job runs again
    in a new process."""
    started, release = tmp_path / "started", tmp_path / "release"
    pool = WorkerPool()
    try:
        job = asyncio.create_task(
            pool.run(worker_jobs.started_then_wait, str(started), str(release))
        )
        await wait_until(started.exists, limit=30, what="the job to start")
        first = int(started.read_text())
        started.unlink()
        os.kill(first, signal.SIGKILL)
        await wait_until(started.exists, limit=30, what="the job to start again")
        second = int(started.read_text())
        release.touch()
        assert await job == second != first
        assert pool.rebuilt == 1
    finally:
        await pool.close()


async def test_a_job_failing_twice_is_given_up():
    """A job that fails on both attempts raises JobFailed with the reason."""
    pool = WorkerPool()
    try:
        with pytest.raises(JobFailed, match="broken chunk"):
            await pool.run(worker_jobs.always_fails)
    finally:
        await pool.close()


def test_resolution_change_mid_chunk_still_plays():
    """A publisher that changes resolution mid-stream (at a keyframe): the playable file
    holds both sizes, every frame decodes with its counter."""
    small = video_packets("video/vp8", 10, size=(640, 480))
    large = video_packets(
        "video/vp8", 10, size=(1280, 720), seq=small[-1][1].sequence_number + 1, start_counter=10
    )
    playable = convert(chunkfile.decode(chunk_bytes("video/vp8", [p for _, p in small + large])))
    with av.open(io.BytesIO(playable.data)) as container:
        frames = [
            (read_counter(f.to_ndarray(format="yuv420p")[: f.height]), (f.width, f.height))
            for f in container.decode(video=0)
        ]
    assert [c for c, _ in frames] == list(range(20))
    assert {size for _, size in frames} == {(640, 480), (1280, 720)}
