"""Keyframe detection on RTP payloads (VP8 RFC 7741, H264 RFC 6184)."""

from __future__ import annotations

from media.keyframes import h264_keyframe_start, keyframe_detector, vp8_keyframe_start


def test_vp8_start_of_keyframe_with_and_without_extensions():
    """S=1, partition 0 and P=0 in the frame header mark a keyframe; extended control
    bits (picture id of 7 or 15 bits, TL0PICIDX, TID) are skipped correctly."""
    assert vp8_keyframe_start(bytes([0x10, 0x00]))
    assert not vp8_keyframe_start(bytes([0x10, 0x01]))  # P=1: inter frame
    assert not vp8_keyframe_start(bytes([0x00, 0x00]))  # not the start of a partition
    assert vp8_keyframe_start(bytes([0x90, 0x80, 0x05, 0x00]))  # X, I, 7-bit picture id
    assert vp8_keyframe_start(bytes([0x90, 0x80, 0x85, 0x01, 0x00]))  # 15-bit picture id
    assert vp8_keyframe_start(bytes([0x90, 0xE0, 0x05, 0x07, 0x20, 0x00]))  # I, L, T
    assert not vp8_keyframe_start(bytes([0x90, 0x80]))  # truncated


def test_h264_idr_sps_stap_a_and_fu_a():
    """An IDR or SPS NAL unit, an STAP-A carrying one, or the first FU-A fragment of one."""
    assert h264_keyframe_start(bytes([0x65, 0x88]))  # IDR
    assert h264_keyframe_start(bytes([0x67, 0x42]))  # SPS
    assert not h264_keyframe_start(bytes([0x41, 0x9A]))  # non-IDR slice
    stap = bytes([0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xCE])
    assert h264_keyframe_start(stap)
    assert h264_keyframe_start(bytes([0x7C, 0x85]))  # FU-A, start bit, IDR
    assert not h264_keyframe_start(bytes([0x7C, 0x05]))  # FU-A, not the start
    assert not h264_keyframe_start(b"")


def test_detector_is_chosen_by_codec():
    """Audio packets can always start a leg; video uses its codec's check."""
    assert keyframe_detector("audio/opus")(b"\x00")
    assert keyframe_detector("video/VP8") is vp8_keyframe_start
    assert keyframe_detector("video/H264") is h264_keyframe_start
