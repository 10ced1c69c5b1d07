"""Server-side snapshot of a live video track: ask the publisher for a keyframe, collect
that keyframe's packets with a one-shot sink beside forwarding, depacketise it as the
converter does (recorder/depacketize.py) and decode only that one frame with PyAV, in a
worker thread, into a PNG or JPEG."""

from __future__ import annotations

import asyncio
import contextlib
import io
from dataclasses import dataclass
from typing import Literal

import av

from media.forwarder import PublishedTrack
from media.room import MediaError
from media.rtpread import RtpView
from recorder.chunkfile import Record
from recorder.depacketize import Frame, depacketize
from recorder.rtpcodecs import keyframe_detector

ImageFormat = Literal["png", "jpeg"]
CONTENT_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg"}
DECODERS = {"video/vp8": "vp8", "video/h264": "h264"}
KEYFRAME_ASK_INTERVAL = 0.6
"""Ask again this often while waiting (the track throttles requests to one per 0.5 s)."""
JPEG_QUALITY = 92


@dataclass(frozen=True)
class Snapshot:
    data: bytes
    content_type: str
    width: int
    height: int
    codec: str
    rtp_timestamp: int
    arrival: float
    """Wall-clock arrival of the frame's last packet (seconds since the epoch)."""


class KeyframeSink:
    """A one-shot ``PacketSink``: the first whole keyframe from now on. Packets are kept
    from a keyframe's first packet to the end of its frame (the marker; every packet of
    that timestamp: H264's SPS/PPS and each IDR slice all look like starts), then
    depacketised; a keyframe missing a packet is given up and the next one awaited."""

    def __init__(self, mime_type: str) -> None:
        self._mime_type = mime_type
        self._starts_keyframe = keyframe_detector(mime_type)
        self._packets: list[Record] = []
        self.result: asyncio.Future[tuple[Frame, float]] = (
            asyncio.get_running_loop().create_future()
        )

    def packet(self, packet: RtpView, arrival: float) -> None:
        if self.result.done():
            return
        collecting = bool(self._packets) and packet.timestamp == self._packets[0].timestamp
        if not collecting:
            if not self._starts_keyframe(packet.payload):
                return  # not (part of) a keyframe
            self._packets = []  # a new keyframe (an H264 one may have several starts)
        self._packets.append(
            Record(0, packet.sequence_number, packet.timestamp, packet.marker, 0, 0, packet.payload)
        )
        if not packet.marker:
            return
        frames = depacketize(self._mime_type, self._packets).frames
        self._packets = []
        if frames and frames[0].keyframe:
            self.result.set_result((frames[0], arrival))

    def ended(self) -> None:
        if not self.result.done():
            self.result.set_exception(MediaError("track_ended"))


def decode_frame(codec: str, data: bytes, image_format: ImageFormat) -> tuple[bytes, int, int]:
    """Decode one keyframe and encode it as an image (blocking: run it in a thread)."""
    context = av.CodecContext.create(codec, "r")
    if not isinstance(context, av.VideoCodecContext):
        raise MediaError("snapshot_not_video", codec)
    try:
        decoded = context.decode(av.Packet(data)) or context.decode(None)
    except av.FFmpegError as exc:
        raise MediaError("snapshot_undecodable", str(exc)) from exc
    if not decoded:
        raise MediaError("snapshot_undecodable", "no picture")
    picture = decoded[0].to_image()  # type: ignore[no-untyped-call]
    out = io.BytesIO()
    if image_format == "jpeg":
        picture.save(out, "JPEG", quality=JPEG_QUALITY)
    else:
        picture.save(out, "PNG", compress_level=1)  # fast; a PNG is lossless anyway
    return out.getvalue(), picture.width, picture.height


async def take_snapshot(
    track: PublishedTrack, wait_seconds: float, image_format: ImageFormat = "png"
) -> Snapshot:
    """A picture of the track's next keyframe; ``MediaError`` ``snapshot_timeout`` if none
    arrives within ``wait_seconds``, ``track_ended`` if the track goes meanwhile."""
    codec = DECODERS.get(track.mime_type.lower())
    if track.kind != "video" or codec is None:
        raise MediaError("snapshot_not_video", track.mime_type)
    sink = KeyframeSink(track.mime_type)
    track.sinks.append(sink)
    try:
        async with asyncio.timeout(wait_seconds):
            while not sink.result.done():
                track.request_keyframe()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(sink.result), KEYFRAME_ASK_INTERVAL)
            frame, arrival = sink.result.result()
    except TimeoutError as exc:
        raise MediaError("snapshot_timeout", f"no keyframe within {wait_seconds} s") from exc
    finally:
        with contextlib.suppress(ValueError):
            track.sinks.remove(sink)
        if not sink.result.done():
            sink.result.cancel()
    data, width, height = await asyncio.to_thread(decode_frame, codec, frame.data, image_format)
    return Snapshot(
        data, CONTENT_TYPES[image_format], width, height, codec, frame.timestamp, arrival
    )
