"""Does an RTP payload start a keyframe? The check for a track's codec, VP8 (RFC 7741) or
H264 (RFC 6184); the payload parsing is the recorder's depacketiser's."""

from __future__ import annotations

from collections.abc import Callable

from recorder.depacketize import h264_keyframe_start, vp8_keyframe_start

__all__ = ["h264_keyframe_start", "keyframe_detector", "vp8_keyframe_start"]


def _always(_payload: bytes) -> bool:
    return True  # audio: every packet can start a stream


def keyframe_detector(mime_type: str) -> Callable[[bytes], bool]:
    """The check for this codec, chosen once per track."""
    return {"video/vp8": vp8_keyframe_start, "video/h264": h264_keyframe_start}.get(
        mime_type.lower(), _always
    )
