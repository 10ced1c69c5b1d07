"""The heavy part of verifying a package, as a plain function of (package path, member
offsets) so that it runs in worker processes: each listed member read once, hashed
(SHA-256 and SM3 in one pass) and, when its content is what its name says, checked in
the same read: a capture chunk decoded once, its packets' sequence numbers and arrivals
taken for counting again and its playable files made again (compared by hash: the
playable member is hashed on its own); a still's header read. ``Jobs`` runs the jobs
over ``workers`` processes, or inline.
"""

from __future__ import annotations

import gc
import hashlib
import io
import multiprocessing
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from PIL import Image

from recorder import chunkfile
from recorder.package import Digests
from recorder.pkgarchive import Member, PackageError, read_blocks
from recorder.stills import CONTENT_TYPES, sniff

T = TypeVar("T")
R = TypeVar("R")
MAX_MEDIA_IN_MEMORY = 1 << 30
"""A chunk or still read whole (to convert or open) must not be larger than this."""
PARALLEL_BYTES = 64 << 20
"""Below this much work, worker processes cost more than they save."""

Packets = tuple[list[int], list[int]]
"""A chunk's sequence numbers and arrivals (µs since the epoch), record by record."""


@dataclass(frozen=True)
class Task:
    """A listed member to hash, and what else to check in the same read when its bytes
    hash to ``name_sha256`` (the hash in its name): count a capture's packets again,
    make its ``playables`` again, read an image's header."""

    member: Member
    name_sha256: str | None = None
    capture: bool = False
    playables: tuple[str, ...] = ()
    image: bool = False


@dataclass
class Examined:
    digests: dict[str, Any]
    packets: Packets | str | None = None
    """Of a capture: its packets, or why it cannot be read."""
    remade: dict[str, str] = field(default_factory=dict)
    """Playable sha256 → "same", "differs", or why the chunk cannot be converted."""
    image: str | None = None
    """Of an image: "<type> <width>x<height>", or why it is not one."""


def _read(path: str, member: Member) -> bytes:
    with open(path, "rb") as handle:
        data = os.pread(handle.fileno(), member.size, member.offset)
    if len(data) != member.size:
        raise PackageError("not_a_package", f"{member.name} cut short")
    return data


def examine(path: str, task: Task, sm3: bool) -> Examined:
    member = task.member
    digests = Digests(sm3)
    wanted = task.capture or bool(task.playables) or task.image
    whole = wanted and member.size <= MAX_MEDIA_IN_MEMORY
    if not whole:
        for block in read_blocks(Path(path), member):
            digests.update(block)
        found = Examined(digests.facts())
        if wanted and found.digests["sha256"] == task.name_sha256:
            _too_large(task, found)
        return found
    data = _read(path, member)
    digests.update(data)
    found = Examined(digests.facts())
    if found.digests["sha256"] != task.name_sha256:
        return found  # a hash_mismatch: what it holds is not what was logged
    if task.capture or task.playables:
        with no_collection():
            found.packets, found.remade = _capture(data, task.playables)
    if task.image:
        found.image = image_facts(data)
    return found


@contextmanager
def no_collection() -> Iterator[None]:
    """A chunk decodes into a tuple per packet, none in a cycle: the cyclic garbage
    collector would walk them again and again for nothing (a fifth of the time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _too_large(task: Task, found: Examined) -> None:
    why = f"{task.member.size} bytes is too large to read whole"
    if task.capture or task.playables:
        found.packets = f"unreadable: {why}"
        found.remade = {sha256: f"cannot convert: {why}" for sha256 in task.playables}
    if task.image:
        found.image = f"unreadable image: {why}"


def _capture(data: bytes, playables: tuple[str, ...]) -> tuple[Packets | str, dict[str, str]]:
    try:
        header, offset = chunkfile.decode_header(data)
    except chunkfile.ChunkFormatError as exc:
        return f"unreadable: {exc}", {sha256: f"cannot convert: {exc}" for sha256 in playables}
    packets: Packets | str
    try:
        str(header["codec"]), str(header["kind"]), int(header.get("clock_rate") or 90_000)
    except (KeyError, TypeError, ValueError) as exc:
        packets = f"unreadable: {exc}"
    else:
        packets = chunkfile.arrivals(data, offset)
    if not playables:
        return packets, {}
    from recorder.convert import ConversionError, convert  # PyAV: only where needed

    try:
        made = hashlib.sha256(convert(chunkfile.decode(data)).data).hexdigest()
    except (ConversionError, ValueError) as exc:
        return packets, {sha256: f"cannot convert: {exc}" for sha256 in playables}
    return packets, {sha256: "same" if made == sha256 else "differs" for sha256 in playables}


def image_facts(data: bytes) -> str:
    """ "<type> <width>x<height>" from the image's header, or why it is not an image."""
    found = sniff(data)
    if found is None:
        return "not an image"
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=[CONTENT_TYPES[found]]) as image:
                width, height = image.size
        except (
            OSError,
            ValueError,
            SyntaxError,
            Image.DecompressionBombWarning,
            Image.DecompressionBombError,
        ) as exc:
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
