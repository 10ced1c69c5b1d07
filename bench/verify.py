"""Throughput of offline verify over a package with large media, beside a same-run
baseline of plain SHA-256 (one core, hashlib) over the same bytes.

    python -m bench.verify [--megabytes 1024] [--chunk-megabytes 32] [--payload 1200]

The package is built here: one case whose track has capture chunks of random payloads
in RTP-sized packets (``--payload`` bytes each; the chunks' events carry the counts the
live capture would log, so verify replays every packet), events sealed into a log,
two signed checkpoints. No playable files: converting real VP8 costs its own (see
bench/relay.py, conversion_cpu_per_media_second). Figures, over the media bytes:

- ``verify``: the whole ``verify_package`` with 2 worker processes (SHA-256 + SM3 of
  every byte in one pass per file, plus every check);
- ``verify_no_sm3``: the same with ``--no-sm3``;
- ``hash_only``: SHA-256 + SM3 over every member in 2 processes, nothing else;
- ``sha256_baseline``: hashlib SHA-256 in this process over the same bytes.

The last line is a JSON summary.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recorder import chunkfile, merkle, package, pkgjobs
from recorder.auditlog import GENESIS, AuditEvent, seal
from recorder.canonical import timestamp
from recorder.checkpoints import Checkpoint
from recorder.chunkstats import ChunkStats
from recorder.keyring import RegisteredKey, key_id, public_raw
from recorder.pkgarchive import Archive, read_blocks
from recorder.pkgverify import verify_package

CASE_NO = "BENCH-2026-000001"
TRACK = "bench/document/1"
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
MB = 1 << 20


def _chunk(
    index: int, packets: int, payload: int, seq: int, start_us: int
) -> tuple[bytes, dict[str, Any]]:
    header = {
        "codec": "video/vp8",
        "clock_rate": 90_000,
        "kind": "video",
        "track": TRACK,
        "chunk": index,
    }
    parts = [chunkfile.encode_header(header)]
    stats = ChunkStats("video/vp8", "video")
    noise = os.urandom(payload + packets)
    for n in range(packets):
        body = b"\x00" + noise[n : n + payload - 1]  # not a keyframe: no VP8 header parsed
        arrival = start_us + n * 1_000
        parts.append(chunkfile.encode_record(arrival, (seq + n) & 0xFFFF, n * 3000, 1, 97, 7, body))
        stats.add((seq + n) & 0xFFFF, n * 3000, 1, body, arrival / 1e6)
    meta = stats.meta(90_000)
    meta["media_kind"] = meta.pop("kind")
    return b"".join(parts), {**meta, "chunk": index}


def build(directory: Path, megabytes: int, chunk_megabytes: int, payload: int) -> Path:
    key = Ed25519PrivateKey.generate()
    keys = [RegisteredKey(key_id(key), public_raw(key).hex(), timestamp(T0))]
    events: list[AuditEvent] = []
    chain = f"case:{CASE_NO}"

    def add(kind: str, **detail: Any) -> None:
        prev = events[-1].hash if events else GENESIS
        at = T0 + dt.timedelta(seconds=len(events))
        events.append(seal(len(events), chain, len(events) + 1, prev, at, kind, None, detail))

    add("case_created")
    media = []
    per_chunk = chunk_megabytes * MB // (payload + chunkfile.RECORD.size)
    seq, start = 0, int(T0.timestamp() * 1e6)
    for index in range(max(1, megabytes // chunk_megabytes)):
        data, meta = _chunk(index, per_chunk, payload, seq, start)
        seq, start = seq + per_chunk, start + per_chunk * 1_000
        sha = hashlib.sha256(data).hexdigest()
        (directory / sha).write_bytes(data)
        media.append(package.MediaFile(sha, "capture", directory / sha, {"track": TRACK}))
        add("chunk_closed", sha256=sha, bytes=len(data), track=TRACK, **meta)
    tree = merkle.MerkleTree(bytes.fromhex(e.hash) for e in events)
    checkpoints = []
    for size in (1, tree.size):
        draft = Checkpoint(
            size, tree.root(size).hex(), timestamp(T0 + dt.timedelta(hours=size)), key_id(key), ""
        )
        checkpoints.append(replace(draft, signature=key.sign(draft.statement()).hex()))
    inclusion, used, consistency = package.attest(events, checkpoints, tree)
    contents = package.Contents(
        CASE_NO,
        timestamp(T0 + dt.timedelta(days=1)),
        "bench",
        events,
        inclusion,
        used,
        consistency,
        keys,
        media,
        [],
    )
    out = directory / "bench.zip"
    package.write_package(out, contents, key_id(key), key)
    for item in media:
        item.source.unlink()
    return out


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def _sha256_all(archive: Archive) -> None:
    for member in archive.members.values():
        digest = hashlib.sha256()
        for block in read_blocks(archive.path, member):
            digest.update(block)


def _hash_only(archive: Archive) -> None:
    members = sorted(archive.members.values(), key=lambda m: -m.size)
    with pkgjobs.Jobs(2, pkgjobs.PARALLEL_BYTES) as jobs:
        jobs.map(pkgjobs.digest, [(str(archive.path), m, True) for m in members])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=1024)
    parser.add_argument("--chunk-megabytes", type=int, default=32)
    parser.add_argument("--payload", type=int, default=1200, help="bytes per RTP payload")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        path, built = _timed(
            build, Path(directory), args.megabytes, args.chunk_megabytes, args.payload
        )
        archive = Archive.open(path)
        size = sum(m.size for m in archive.members.values())
        _sha256_all(archive)  # warm the page cache: every run reads from memory
        _, baseline = _timed(_sha256_all, archive)
        _, hashed = _timed(_hash_only, archive)
        report, whole = _timed(verify_package, archive, None, 2)
        report_fast, fast = _timed(verify_package, archive, None, 2, sm3=False)
    if not report.ok or not report_fast.ok:
        print("verify found problems in the benchmark package:", report.problems[:5])
        return 1
    figures = {
        "bytes": size,
        "build_seconds": round(built, 2),
        "verify_mb_per_s": round(size / MB / whole, 1),
        "verify_no_sm3_mb_per_s": round(size / MB / fast, 1),
        "hash_only_mb_per_s": round(size / MB / hashed, 1),
        "sha256_baseline_mb_per_s": round(size / MB / baseline, 1),
    }
    figures["ratio"] = round(figures["verify_mb_per_s"] / figures["sha256_baseline_mb_per_s"], 3)
    figures["ratio_no_sm3"] = round(
        figures["verify_no_sm3_mb_per_s"] / figures["sha256_baseline_mb_per_s"], 3
    )
    print(
        f"package: {size / MB:.0f} MB of media, {args.payload}-byte payloads, built {built:.1f} s"
    )
    for name in ("verify", "verify_no_sm3", "hash_only", "sha256_baseline"):
        print(f"{name:>16}: {figures[name + '_mb_per_s']:>8.1f} MB/s")
    print(f"{'ratio':>16}: {figures['ratio']:.3f} (no SM3: {figures['ratio_no_sm3']:.3f})")
    print(json.dumps({"verify": figures}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
