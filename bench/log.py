"""Audit-log benchmark on the real SQLite store: append rate, checkpoint signing time
(cold: a fresh process rebuilds its frontier from every stored leaf, and the longest
the event loop went unserved meanwhile; warm: one event since the last) and full
verification time, at each log size.

    python -m bench.log [--sizes 10000,100000] [--sample 2000]

The log is filled to each size minus ``--sample`` by sealing events in batches (the
same ``seal`` the log uses, one transaction per batch), then ``--sample`` events are
appended one by one through ``AuditLog.append`` and timed. The last line is a JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder.auditlog import GENESIS, AuditEvent, AuditLog, seal
from recorder.clock import SystemClock
from recorder.keyring import Keyring, read_key_file, write_key_file
from recorder.logverify import verify_stored
from recorder.schema import audit_events
from signaling.storage.db import create_engine, migrate

CHAINS = [f"case:BENCH-{n:04d}" for n in range(50)]
BATCH = 5000


class Bench:
    def __init__(self, engine: AsyncEngine, key_path: Path) -> None:
        self.engine = engine
        self.key_path = key_path
        self.heads: dict[str, AuditEvent] = {}
        self.size = 0

    async def open_log(self) -> AuditLog:
        """The log as a freshly started process sees it."""
        keyring = Keyring(self.engine, SystemClock(), self.key_path, read_key_file(self.key_path))
        log = AuditLog(self.engine, SystemClock(), keyring)
        await log.register_key()
        return log

    def _chain(self) -> str:
        return CHAINS[self.size % len(CHAINS)]

    async def fill(self, target: int) -> None:
        while self.size < target:
            rows: list[dict[str, Any]] = []
            for _ in range(min(BATCH, target - self.size)):
                chain, at = self._chain(), dt.datetime.now(dt.UTC)
                last = self.heads.get(chain)
                seq, prev = (last.case_seq + 1, last.hash) if last else (1, GENESIS)
                event = seal(self.size, chain, seq, prev, at, "mark", "bench", {"n": self.size})
                self.heads[chain] = event
                rows.append({**event.to_dict(), "at": at})
                self.size += 1
            async with self.engine.begin() as conn:
                await conn.execute(audit_events.insert(), rows)

    async def append(self, log: AuditLog, count: int) -> float:
        """Events per second through ``AuditLog.append``."""
        start = time.perf_counter()
        for _ in range(count):
            case_no = self._chain().removeprefix("case:")
            event = await log.append("mark", actor="bench", case_no=case_no, n=self.size)
            self.heads[event.chain] = event
            self.size += 1
        return count / (time.perf_counter() - start)


async def _timed(coroutine: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = await coroutine
    return result, (time.perf_counter() - start) * 1000


async def _stalls(coroutine: Any) -> tuple[Any, float, float]:
    """The result, its time (ms) and the longest the event loop went unserved meanwhile
    (ms): what a media task would have waited."""
    longest = 0.0
    done = asyncio.Event()

    async def tick() -> None:
        nonlocal longest
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0)
            longest = max(longest, time.perf_counter() - before)

    ticker = asyncio.create_task(tick())
    try:
        result, elapsed = await _timed(coroutine)
    finally:
        done.set()
        await ticker
    return result, elapsed, longest * 1000


async def measure(sizes: list[int], sample: int, directory: Path) -> dict[str, Any]:
    key_path = directory / "node.key"
    write_key_file(key_path, Ed25519PrivateKey.generate())
    engine = create_engine(f"sqlite+aiosqlite:///{directory / 'bench.sqlite3'}")
    results: dict[str, Any] = {}
    try:
        await migrate(engine)
        bench = Bench(engine, key_path)
        for size in sizes:
            await bench.fill(size - sample)
            log = await bench.open_log()
            rate = await bench.append(log, sample)
            fresh = await bench.open_log()
            cold, cold_ms, stall_ms = await _stalls(fresh.checkpoint())
            await bench.append(fresh, 1)
            _, warm_ms = await _timed(fresh.checkpoint())
            report, verify_ms = await _timed(verify_stored(log))
            assert report.ok and cold.tree_size == size, report.problems[:3]
            figures = {
                "append_per_s": round(rate),
                "checkpoint_cold_ms": round(cold_ms, 1),
                "cold_loop_stall_ms": round(stall_ms, 1),
                "checkpoint_warm_ms": round(warm_ms, 2),
                "verify_ms": round(verify_ms),
            }
            print(f"{size:>8} events: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
            results[str(size)] = figures
    finally:
        await engine.dispose()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.log", description=__doc__)
    parser.add_argument("--sizes", default="10000,100000", help="log sizes, comma-separated")
    parser.add_argument("--sample", type=int, default=2000, help="events appended one by one")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if sizes[0] <= args.sample:
        parser.error("every size must exceed --sample")
    with tempfile.TemporaryDirectory(prefix="bench-log-") as directory:
        summary = asyncio.run(measure(sizes, args.sample, Path(directory)))
    print(json.dumps({"log": summary}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
