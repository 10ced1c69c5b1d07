"""Synthetic sources for demos, tests and benchmarks: a face pattern, a document page
with a frame counter stamped in pixels, a tone, and a full-resolution page still. The
counter survives lossy coding: it is written as 24 black-or-white blocks and read back
by thresholding their centres."""

from __future__ import annotations

import asyncio
import fractions
import io
import math
import time

import numpy as np
from aiortc import MediaStreamTrack
from av import AudioFrame, VideoFrame
from PIL import Image

COUNTER_BITS = 24
BLOCK = 16
"""Side of one counter block in pixels (luma)."""
VIDEO_CLOCK = 90_000
AUDIO_RATE = 48_000
AUDIO_SAMPLES = 960  # 20 ms


def stamp_counter(luma: np.ndarray, counter: int) -> None:
    """Write ``counter`` into the top-left blocks of a luma plane."""
    for bit in range(COUNTER_BITS):
        value = 235 if counter >> bit & 1 else 16
        luma[0:BLOCK, bit * BLOCK : (bit + 1) * BLOCK] = value


def read_counter(luma: np.ndarray) -> int:
    """Read the counter back from a (decoded) luma plane."""
    centre = BLOCK // 2
    counter = 0
    for bit in range(COUNTER_BITS):
        if luma[centre, bit * BLOCK + centre] > 125:
            counter |= 1 << bit
    return counter


def _face(width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    inside = (x - width / 2) ** 2 / (width / 4) ** 2 + (y - height / 2) ** 2 / (height / 3) ** 2 < 1
    return np.where(inside, 170, 60).astype(np.uint8)


def _document(width: int, height: int) -> np.ndarray:
    page = np.full((height, width), 235, dtype=np.uint8)
    for row in range(BLOCK * 3, height - BLOCK, 18):  # lines of "text"
        length = width // 8 + (row * 7919) % (width * 3 // 4)
        page[row : row + 6, width // 16 : width // 16 + length] = 40
    return page


PATTERNS = {"face": _face, "document": _document}


class StampedVideoTrack(MediaStreamTrack):
    """Frames of a fixed pattern with the frame number stamped in, at a fixed rate."""

    kind = "video"

    def __init__(self, pattern: str, width: int, height: int, fps: int) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self._luma = PATTERNS[pattern](width, height)
        self._chroma = np.full((height // 2, width), 128, dtype=np.uint8)
        self.counter = 0
        self._start: float | None = None
        self.sent_at: dict[int, float] = {}

    async def recv(self) -> VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self.counter / self.fps
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        luma = self._luma.copy()
        stamp_counter(luma, self.counter)
        frame = VideoFrame.from_ndarray(np.vstack([luma, self._chroma]), format="yuv420p")
        frame.pts = int(self.counter * VIDEO_CLOCK / self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.sent_at[self.counter] = time.monotonic()
        self.counter += 1
        return frame


class ToneTrack(MediaStreamTrack):
    """A sine tone, 20 ms a frame."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0) -> None:
        super().__init__()
        self.frequency = frequency
        self.counter = 0
        """Frames produced so far."""
        self._samples = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self._samples / AUDIO_RATE - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        t = (np.arange(AUDIO_SAMPLES) + self._samples) / AUDIO_RATE
        wave = (np.sin(2 * math.pi * self.frequency * t) * 8000).astype(np.int16)
        frame = AudioFrame.from_ndarray(wave.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._samples += AUDIO_SAMPLES
        self.counter += 1
        return frame


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def document_page(width: int = 4000, height: int = 3000, label: int = 0) -> bytes:
    """A synthetic scanned page as a JPEG at full resolution (a 12 MP 高拍仪 still): a
    white sheet with ruled lines and ``label`` stamped as counter blocks, so a test can
    tell pages apart after decoding."""
    luma = np.full((height, width), 235, dtype=np.uint8)
    luma[height // 10 :: height // 30, width // 12 : width - width // 12] = 40
    stamp_counter(luma, label)
    page = Image.fromarray(luma, mode="L")
    out = io.BytesIO()
    page.save(out, "JPEG", quality=90)
    return out.getvalue()
