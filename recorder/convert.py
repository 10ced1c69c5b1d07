"""A capture chunk → a playable file, without decoding or re-encoding: the frames as
they were sent, muxed with PyAV's ``add_mux_stream`` into WebM (VP8, Opus) or Matroska
(H264). Deterministic for one libavformat version (``fflags=+bitexact``): the same
chunk gives the same bytes, so anyone can reproduce a playable file from its capture.

The file starts on the chunk's first keyframe; timestamps are the RTP timestamps
relative to it. ``convert_stored`` is what the worker process runs (recorder/workers.py).
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from recorder import chunkfile
from recorder.depacketize import depacketize
from recorder.rtpcodecs import keyframe_size
from recorder.store import EvidenceStore

CONTAINERS = {
    "video/vp8": ("webm", "libvpx", "vp8"),
    "audio/opus": ("webm", "libopus", "opus"),
    "video/h264": ("matroska", "h264", "h264"),
}
"""codec → (container format, codec name for PyAV, name in the meta)."""
MUXER_OPTIONS = {"fflags": "+bitexact"}


class ConversionError(ValueError):
    """The chunk cannot be made playable (unsupported codec, no keyframe)."""


@dataclass(frozen=True)
class Playable:
    data: bytes
    container: str
    frames: int
    dropped: int
    seconds: float
    first_rtp_timestamp: int | None


def libavformat_version() -> str:
    return ".".join(str(part) for part in av.library_versions["libavformat"])


def _video_size(codec: str, chunk: chunkfile.Chunk) -> tuple[int, int]:
    for record in chunk.records:
        size = keyframe_size(codec, record.payload)
        if size is not None:
            return size
    return 0, 0


def title(header: dict[str, Any]) -> str:
    return f"coreview {header.get('case', '')} {header.get('track', '')} #{header.get('chunk', 0)}"


def convert(chunk: chunkfile.Chunk) -> Playable:
    codec = str(chunk.header.get("codec", "")).lower()
    if codec not in CONTAINERS:
        raise ConversionError(f"unsupported codec {codec!r}")
    container_format, codec_name, _ = CONTAINERS[codec]
    clock_rate = int(chunk.header.get("clock_rate") or 90_000)
    result = depacketize(codec, chunk.records)
    if not result.frames:
        raise ConversionError("no keyframe in the chunk")
    time_base = Fraction(1, clock_rate)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container_format, options=MUXER_OPTIONS) as container:
        # names its capture, so that two tracks with the same media (say, silence) never
        # give the same file; still derived from the chunk alone
        container.metadata["title"] = title(chunk.header)
        options: dict[str, Any] = {}
        if codec.startswith("video/"):
            options["width"], options["height"] = _video_size(codec, chunk)
        stream = container.add_mux_stream(codec_name, rate=clock_rate, **options)
        stream.time_base = time_base
        base = result.frames[0].timestamp
        for frame in result.frames:
            packet = av.Packet(frame.data)
            packet.stream = stream
            packet.time_base = time_base
            packet.pts = packet.dts = frame.timestamp - base
            packet.is_keyframe = frame.keyframe
            container.mux(packet)
    span = result.frames[-1].timestamp - base
    return Playable(
        data=buffer.getvalue(),
        container=container_format,
        frames=len(result.frames),
        dropped=result.dropped,
        seconds=span / clock_rate,
        first_rtp_timestamp=base & 0xFFFFFFFF,
    )


def convert_stored(store_root: str, chunk_sha256: str) -> dict[str, Any]:
    """Worker entry point: convert a stored chunk and store the playable file. Returns
    its hash and facts, with the CPU time the conversion took in this process."""
    cpu = time.process_time()
    store = EvidenceStore(Path(store_root))
    chunk = chunkfile.decode(store.path(chunk_sha256).read_bytes())
    playable = convert(chunk)
    stored = store.put(playable.data)
    return {
        "sha256": stored.sha256,
        "bytes": stored.bytes,
        "seconds": playable.seconds,
        "container": playable.container,
        "frames": playable.frames,
        "dropped_frames": playable.dropped,
        "first_rtp_timestamp": playable.first_rtp_timestamp,
        "libavformat": libavformat_version(),
        "pyav": av.__version__,
        "cpu_seconds": time.process_time() - cpu,
    }
