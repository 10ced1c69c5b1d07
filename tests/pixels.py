"""Checks on what a browser actually painted: a viewport screenshot read with Pillow and
numpy, so a button that the DOM has but the screen does not show (below the fold,
covered, the wrong colour) fails.

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from playwright.async_api import Locator, Page

Rgb = tuple[int, int, int]
DANGER: Rgb = (180, 35, 24)  # --brand, button.danger
ACCENT: Rgb = (28, 100, 178)  # --accent, a button or .button link
WARN_BG: Rgb = (255, 250, 235)  # .alert.warn
ERROR_BG: Rgb = (254, 243, 242)  # .alert.error


def decode(png: bytes) -> NDArray[np.int16]:
    """RGB pixels (height, width, 3), signed so differences do not wrap."""
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


async def viewport(page: Page, name: str) -> NDArray[np.int16]:
    """What the screen shows now (the viewport only, never the part below the fold); kept
    as ``name``.png in $COREVIEW_SCREENSHOTS when that is set."""
    png = await page.screenshot()
    folder = os.environ.get("COREVIEW_SCREENSHOTS")
    if folder:
        await asyncio.to_thread(_keep, Path(folder) / f"{name}.png", png)
    return decode(png)


def _keep(path: Path, png: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)


async def painted_box(
    page: Page, locator: Locator, shot: NDArray[np.int16]
) -> tuple[int, int, int, int]:
    """The element's box (x, y, width, height) in device pixels; it must lie wholly in
    the viewport the screenshot shows."""
    box = await locator.bounding_box()
    assert box is not None, f"{locator} is not rendered"
    height, width = shot.shape[:2]
    x, y = round(box["x"]), round(box["y"])
    w, h = round(box["width"]), round(box["height"])
    assert w > 0 and h > 0, f"{locator} has no size"
    assert x >= 0 and y >= 0 and x + w <= width and y + h <= height, (
        f"{locator} at {box} lies outside the {width}×{height} viewport"
    )
    return x, y, w, h


def share(
    shot: NDArray[np.int16], box: tuple[int, int, int, int], rgb: Rgb, tol: int = 28
) -> float:
    """Fraction of the box's pixels within ``tol`` of ``rgb`` on every channel."""
    x, y, w, h = box
    region = shot[y : y + h, x : x + w]
    close = np.all(np.abs(region - np.array(rgb, dtype=np.int16)) <= tol, axis=2)
    return float(close.mean())


async def assert_painted(
    page: Page, locator: Locator, shot: NDArray[np.int16], rgb: Rgb, at_least: float = 0.4
) -> None:
    """The element is inside the viewport and the screen shows it in its colour there."""
    box = await painted_box(page, locator, shot)
    found = share(shot, box, rgb)
    assert found >= at_least, f"{locator}: only {found:.0%} of its box is {rgb} on screen"


def ink_height(png: bytes, tol: int = 60) -> int:
    """Height in pixels from the first to the last row holding anything but the image's
    background (its top-left pixel): one line of text is about 20, two lines 40."""
    pixels = decode(png)
    background = pixels[0, 0]
    rows = np.nonzero(np.any(np.abs(pixels - background).max(axis=2) > tol, axis=1))[0]
    return int(rows[-1] - rows[0] + 1) if rows.size else 0
