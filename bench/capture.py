"""The capture's figures of the relay benchmark (``python -m bench.relay --record``):
its CPU over forwarding alone, and the conversion worker's CPU per media second."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from recorder.convert import convert_stored
from recorder.workers import WorkerPool

if TYPE_CHECKING:
    from bench.clients import PathResult


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


async def conversion_cost(store_root: Path) -> dict[str, Any]:
    """Convert every chunk in the store with the conversion worker; its CPU time."""
    chunks = sorted(path.name for path in (store_root / "sha256").glob("*/*"))
    pool = WorkerPool()
    try:
        results = [await pool.run(convert_stored, str(store_root), sha) for sha in chunks]
    finally:
        await pool.close()
    cpu = sum(float(r["cpu_seconds"]) for r in results)
    media_seconds = sum(float(r["seconds"]) for r in results)
    return {
        "chunks": len(results),
        "media_seconds": round(media_seconds, 1),
        "cpu_seconds": round(cpu, 4),
        "cpu_per_media_second": round(cpu / media_seconds, 5) if media_seconds else None,
    }


def cpu_per_session(runs: list[PathResult]) -> float | None:
    """CPU per media second per session over several runs of one path."""
    window = sum(r.window_s for r in runs)
    if not window or any(r.cpu_s is None for r in runs):
        return None
    return sum(r.cpu_s or 0.0 for r in runs) / window / runs[0].sessions


def capture_figures(
    rooms: list[PathResult], records: list[PathResult], conversion: dict[str, Any]
) -> dict[str, Any]:
    """Room and room+capture runs alternate (``--pairs``): each figure sums all of them."""
    forwarding, recording = cpu_per_session(rooms), cpu_per_session(records)
    added = recording - forwarding if recording is not None and forwarding else None
    return {
        "pairs": len(records),
        "forwarding_cpu_per_session": _round(forwarding, 4),
        "capture_cpu_per_session": _round(recording, 4),
        "capture_added_cpu_per_session": _round(added, 4),
        "capture_added_percent": _round(100 * added / forwarding, 1)
        if added is not None and forwarding
        else None,
        "conversion_cpu_per_media_second": conversion["cpu_per_media_second"],
        "conversion": conversion,
        "record_frames_lost": sum(r.frames_lost for r in records),
    }
