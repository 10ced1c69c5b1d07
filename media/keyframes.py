"""Keyframe detection for forwarding. The parsing is pure and lives with the recorder's
codec parsing (recorder/rtpcodecs.py), which the capture and the converter use too."""

from __future__ import annotations

from recorder.rtpcodecs import h264_keyframe_start, keyframe_detector, vp8_keyframe_start

__all__ = ["h264_keyframe_start", "keyframe_detector", "vp8_keyframe_start"]
