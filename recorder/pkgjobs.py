"""The heavy parts of verifying a package, as plain functions of (package path, member
offsets) so that they run in worker processes: hashing (SHA-256 and SM3 in one pass),
reproducing a playable file from its capture chunk, replaying a track's chunks, and
reading a still's header. ``Jobs`` runs them over ``workers`` processes, or inline.
"""

from __future__ import annotations

import io
import multiprocessing
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from PIL import Image

from recorder import chunkfile
from recorder.chunkstats import ChunkStats, Continuity
from recorder.package import Digests
from recorder.pkgarchive import Member, read_blocks
from recorder.stills import CONTENT_TYPES, sniff

T = TypeVar("T")
R = TypeVar("R")
MAX_MEDIA_IN_MEMORY = 1 << 30
"""A chunk or still read whole (to convert or open) must not be larger than this."""
PARALLEL_BYTES = 64 << 20
"""Below this much work, worker processes cost more than they save."""


def digest(path: str, member: Member, sm3: bool) -> dict[str, Any]:
    digests = Digests(sm3)
    for block in read_blocks(Path(path), member):
        digests.update(block)
    return digests.facts()


def _read(path: str, member: Member) -> bytes:
    if member.size > MAX_MEDIA_IN_MEMORY:
        raise ValueError(f"{member.name}: {member.size} bytes is too large to read whole")
    return b"".join(read_blocks(Path(path), member))


def reproduce(path: str, capture: Member, playable: Member) -> str:
    """ "same", "differs", or why the chunk cannot be converted."""
    from recorder.convert import ConversionError, convert  # PyAV: only where needed

    try:
        made = convert(chunkfile.decode(_read(path, capture)))
    except (ConversionError, chunkfile.ChunkFormatError, ValueError) as exc:
        return f"cannot convert: {exc}"
    return "same" if made.data == _read(path, playable) else "differs"


def replay(path: str, chunks: list[tuple[Member, bool]]) -> list[dict[str, Any] | str]:
    """Count a track's chunks again, in order, each continuing from the previous one as
    the live capture did (a recovered chunk, or one after a missing one, starts afresh):
    the gaps each chunk holds, or why it cannot be read."""
    found: list[dict[str, Any] | str] = []
    previous: Continuity | None = None
    for member, fresh in chunks:
        try:
            chunk = chunkfile.decode(_read(path, member))
            codec, kind = str(chunk.header["codec"]), str(chunk.header["kind"])
            clock_rate = int(chunk.header.get("clock_rate") or 90_000)
        except (chunkfile.ChunkFormatError, KeyError, TypeError, ValueError) as exc:
            found.append(f"unreadable: {exc}")
            previous = None
            continue
        stats = ChunkStats(codec, kind, None if fresh else previous)
        for record in chunk.records:
            stats.add(
                record.sequence_number,
                record.timestamp,
                record.marker,
                record.payload,
                record.arrival_us / 1_000_000,
            )
        meta = stats.meta(clock_rate)
        found.append({k: meta[k] for k in ("lost", "lost_ranges", "outages", "sequence_jumps")})
        previous = stats.continuity()
    return found


def image_facts(path: str, member: Member) -> str:
    """ "<type> <width>x<height>" from the image's header, or why it is not an image."""
    data = _read(path, member)
    found = sniff(data)
    if found is None:
        return "not an image"
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=[CONTENT_TYPES[found]]) as image:
                width, height = image.size
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning) as exc:
            return f"unreadable image: {exc}"
    return f"{found} {width}x{height}"


class Jobs:
    """Runs jobs in ``workers`` processes, or inline when there is little to do. Forked
    where the platform can (the verifier is single-threaded; a spawned worker would
    import everything again, ~1 s each on a busy machine), spawned elsewhere."""

    def __init__(self, workers: int, work_bytes: int) -> None:
        self._parallel = workers > 1 and work_bytes >= PARALLEL_BYTES
        self._workers = workers
        self._pool: Executor | None = None

    def __enter__(self) -> Jobs:
        if self._parallel:
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            self._pool = ProcessPoolExecutor(self._workers, mp_context=context)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def map(self, fn: Callable[..., R], jobs: Iterable[tuple[Any, ...]]) -> list[R]:
        listed = list(jobs)
        if self._pool is None or len(listed) < 2:
            return [fn(*job) for job in listed]
        futures = [self._pool.submit(fn, *job) for job in listed]
        return [future.result() for future in futures]
