"""Checks of an uploaded document still (高拍仪照片) before it becomes evidence: its type
by content (JPEG, PNG or WebP magic bytes, which the declared type must agree with), its
SHA-256 against the hash the browser computed, and one full decode with Pillow under a
pixel limit, which proves it is a whole image and gives its size.

``inspect_still`` blocks (hashing and decoding a 12 MP image take ~0.1-0.3 s): call it
from a worker thread.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image

from recorder.errors import EvidenceError

CONTENT_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}


class StillError(EvidenceError):
    """An upload that cannot be a still. Codes: ``still_not_image``, ``still_type_mismatch``,
    ``hash_mismatch``, ``still_too_many_pixels``, ``still_undecodable``."""


@dataclass(frozen=True)
class StillInfo:
    sha256: str
    bytes: int
    width: int
    height: int
    content_type: str


def sniff(data: bytes) -> str | None:
    """The image type the bytes start with, as a content type, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def inspect_still(data: bytes, content_type: str, sha256: str, max_pixels: int) -> StillInfo:
    """Check the still; raise ``StillError`` with a stable code if it is not acceptable."""
    found = sniff(data)
    if found is None:
        raise StillError("still_not_image", f"declared {content_type}")
    if found != content_type:
        raise StillError("still_type_mismatch", f"declared {content_type}, content {found}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise StillError("hash_mismatch", f"declared {sha256}, content {digest}")
    with warnings.catch_warnings():
        # Pillow's own bomb check warns (an error in tests) above its global limit: ours
        # is checked first, from the header, before anything is decoded
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=[CONTENT_TYPES[found]]) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise StillError("still_too_many_pixels", f"{width}x{height}")
                image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise StillError("still_too_many_pixels", str(exc)) from exc
        except (OSError, ValueError, SyntaxError) as exc:
            raise StillError("still_undecodable", str(exc)) from exc
    return StillInfo(digest, len(data), width, height, found)
