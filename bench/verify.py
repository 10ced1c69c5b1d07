"""Throughput of offline verify over a package with large media, beside same-run
baselines of plain SHA-256 and SM3 (one core) over the same bytes.

    python -m bench.verify [--megabytes 1024] [--chunk-megabytes 32] [--payload 1200]
                           [--no-playables]

The package is built here: one case whose track has capture chunks of VP8-shaped frames
of random bytes in RTP-sized packets (``--payload`` bytes each; the chunks' events carry
the counts the live capture would log, so verify counts every packet again), each with
its playable file made by recorder/convert.py (so verify makes it again; with
``--no-playables`` none), events sealed into a log, two signed checkpoints. About half
of ``--megabytes`` is capture, half playable. Figures (MB/s):

- ``verify``: the whole ``verify_package`` with 2 worker processes (SHA-256 + SM3 of
  every byte, and every check), over all media;
- ``verify_no_sm3``: the same with ``--no-sm3``;
- ``hash_only``: SHA-256 + SM3 over every member in 2 processes, nothing else;
- ``replay``, ``reproduce``: the two checks of a capture chunk beyond its hashes, each
  alone on one core, over the capture bytes;
- ``sha256_baseline``, ``sm3_baseline``: one core, over all media.

SM3 bounds the whole: every byte's SM3 on 2 cores cannot go faster than twice
``sm3_baseline``. The last line is a JSON summary.
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

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recorder import chunkfile, merkle, package, pkgjobs
from recorder.auditlog import GENESIS, AuditEvent, seal
from recorder.canonical import timestamp
from recorder.checkpoints import Checkpoint
from recorder.chunkstats import ChunkStats
from recorder.convert import convert, libavformat_version
from recorder.keyring import RegisteredKey, key_id, public_raw
from recorder.pkgarchive import Archive, read_blocks
from recorder.pkgmedia import replay
from recorder.pkgverify import verify_package

CASE_NO = "BENCH-2026-000001"
TRACK = "bench/document/1"
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
SESSION_30_MIN = 1800
"""MB of a 30-minute session's media: face 0.5 + document 3 + approver's face 0.5 Mbit/s
and two Opus tracks (~4.1 Mbit/s, ~920 MB of capture), and about as much again in
playable files."""
MB = 1 << 20


FRAME_PACKETS = 4
"""Packets per frame (a keyframe has ``KEYFRAME_PACKETS``), one frame every 33 ms."""
KEYFRAME_PACKETS = 20
KEYFRAME_EVERY = 60
KEYFRAME_HEADER = b"\x9d\x01\x2a" + (1280).to_bytes(2, "little") + (720).to_bytes(2, "little")


def _frames(packets: int, payload: int) -> list[list[bytes]]:
    """VP8-shaped frames of random bytes, each split into RTP payloads: a payload
    descriptor (start of partition on a frame's first packet) and a frame tag (keyframes
    with the start code and a size), enough for the muxer, which never decodes."""
    noise = os.urandom(payload + 4096)
    frames: list[list[bytes]] = []
    count = 0
    while count < packets:
        key = len(frames) % KEYFRAME_EVERY == 0
        size = min(KEYFRAME_PACKETS if key else FRAME_PACKETS, packets - count)
        tag = b"\x00\x00\x00" + KEYFRAME_HEADER if key else b"\x01\x00\x00"
        body = [noise[(count + n) % 4096 :][: payload - 1] for n in range(size)]
        body[0] = tag + body[0][len(tag) :]
        frames.append([(b"\x10" if n == 0 else b"\x00") + b for n, b in enumerate(body)])
        count += size
    return frames


def _chunk(
    index: int, packets: int, payload: int, seq: int, start_us: int
) -> tuple[bytes, dict[str, Any], int]:
    """The chunk, its logged meta and when the next chunk starts."""
    header = {
        "codec": "video/vp8",
        "clock_rate": 90_000,
        "kind": "video",
        "track": TRACK,
        "chunk": index,
    }
    parts = [chunkfile.encode_header(header)]
    stats = ChunkStats("video/vp8", "video")
    n = 0
    for number, frame in enumerate(_frames(packets, payload)):
        timestamp = (start_us // 1_000 * 90 + number * 3000) & 0xFFFFFFFF
        for position, body in enumerate(frame):
            marker = int(position == len(frame) - 1)
            arrival = start_us + number * 33_000 + position * 100
            number_seq = (seq + n) & 0xFFFF
            parts.append(
                chunkfile.encode_record(arrival, number_seq, timestamp, marker, 97, 7, body)
            )
            stats.add(number_seq, timestamp, marker, body, arrival / 1e6)
            n += 1
    meta = stats.meta(90_000)
    meta["media_kind"] = meta.pop("kind")
    return b"".join(parts), {**meta, "chunk": index}, start_us + (number + 1) * 33_000


def build(
    directory: Path, megabytes: int, chunk_megabytes: int, payload: int, playables: bool
) -> tuple[Path, float]:
    """The package and the seconds writing it took (what an export does with the files:
    SHA-256 and SM3 while copying each into the zip, then the manifest and signature)."""
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
    written, index = 0, 0
    while written < megabytes * MB:
        data, meta, start = _chunk(index, per_chunk, payload, seq, start)
        index += 1
        seq += per_chunk
        written += len(data)
        sha = hashlib.sha256(data).hexdigest()
        (directory / sha).write_bytes(data)
        media.append(package.MediaFile(sha, "capture", directory / sha, {"track": TRACK}))
        add("chunk_closed", sha256=sha, bytes=len(data), track=TRACK, **meta)
        if playables:
            made = convert(chunkfile.decode(data)).data
            psha = hashlib.sha256(made).hexdigest()
            (directory / psha).write_bytes(made)
            written += len(made)
            facts = {"track": TRACK, "derived_from": sha}
            media.append(
                package.MediaFile(psha, "playable", directory / psha, facts, {"container": "webm"})
            )
            add(
                "playable_derived",
                sha256=psha,
                bytes=len(made),
                libavformat=libavformat_version(),
                **facts,
            )
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
    _, written_in = _timed(package.write_package, out, contents, key_id(key), key)
    for item in media:
        item.source.unlink()
    return out, written_in


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def _one_core(archive: Archive, make: Any) -> None:
    for member in archive.members.values():
        digest = make()
        for block in read_blocks(archive.path, member):
            digest.update(block)


def _hash_only(archive: Archive) -> None:
    members = sorted(archive.members.values(), key=lambda m: -m.size)
    with pkgjobs.Jobs(2, pkgjobs.PARALLEL_BYTES) as jobs:
        jobs.map(pkgjobs.examine, [(str(archive.path), pkgjobs.Task(m), True) for m in members])


def _captures(archive: Archive) -> list[bytes]:
    return [
        archive.read(name, pkgjobs.MAX_MEDIA_IN_MEMORY)
        for name in archive.members
        if name.endswith(".capture")
    ]


def _replay(chunks: list[bytes]) -> None:
    examined = []
    for data in chunks:
        _, offset = chunkfile.decode_header(data)
        examined.append((pkgjobs.Examined({}, chunkfile.arrivals(data, offset)), False))
    replay(examined)


def _reproduce(chunks: list[bytes]) -> None:
    for data in chunks:
        with pkgjobs.no_collection():  # as in verify's workers
            hashlib.sha256(convert(chunkfile.decode(data)).data).digest()


def _rate(size: int, seconds: float) -> float:
    return round(size / MB / seconds, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=1024)
    parser.add_argument("--chunk-megabytes", type=int, default=32)
    parser.add_argument("--payload", type=int, default=1200, help="bytes per RTP payload")
    parser.add_argument(
        "--no-playables", action="store_true", help="capture chunks only, no playable files"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        (path, exported), built = _timed(
            build,
            Path(directory),
            args.megabytes,
            args.chunk_megabytes,
            args.payload,
            not args.no_playables,
        )
        archive = Archive.open(path)
        size = sum(m.size for m in archive.members.values())
        _one_core(archive, hashlib.sha256)  # warm the page cache: every run reads from memory
        _, baseline = _timed(_one_core, archive, hashlib.sha256)
        _, sm3 = _timed(_one_core, archive, lambda: hashes.Hash(hashes.SM3()))
        _, hashed = _timed(_hash_only, archive)
        chunks = _captures(archive)
        captured = sum(len(c) for c in chunks)
        _, replayed = _timed(_replay, chunks)
        _, reproduced = _timed(_reproduce, chunks) if not args.no_playables else (None, 0.0)
        del chunks
        report, whole = _timed(verify_package, archive, None, 2)
        report_fast, fast = _timed(verify_package, archive, None, 2, sm3=False)
    if not report.ok or not report_fast.ok:
        print("verify found problems in the benchmark package:", report.problems[:5])
        return 1
    figures: dict[str, Any] = {
        "bytes": size,
        "capture_bytes": captured,
        "build_seconds": round(built, 2),
        "export_mb_per_s": _rate(size, exported),
        "export_30_min_session_seconds": round(SESSION_30_MIN / _rate(size, exported), 1),
        "verify_mb_per_s": _rate(size, whole),
        "verify_no_sm3_mb_per_s": _rate(size, fast),
        "hash_only_mb_per_s": _rate(size, hashed),
        "replay_mb_per_s": _rate(captured, replayed),
        "reproduce_mb_per_s": _rate(captured, reproduced) if reproduced else None,
        "sha256_baseline_mb_per_s": _rate(size, baseline),
        "sm3_baseline_mb_per_s": _rate(size, sm3),
    }
    figures["ratio"] = round(figures["verify_mb_per_s"] / figures["sha256_baseline_mb_per_s"], 3)
    figures["ratio_no_sm3"] = round(
        figures["verify_no_sm3_mb_per_s"] / figures["sha256_baseline_mb_per_s"], 3
    )
    playables = "no playables" if args.no_playables else "with playables"
    print(
        f"package: {size / MB:.0f} MB of media ({captured / MB:.0f} MB capture, {playables}), "
        f"{args.payload}-byte payloads, built {built:.1f} s"
    )
    for name, what in LINES:
        value = figures[name + "_mb_per_s"]
        if value is not None:
            print(f"{name:>16}: {value:>8.1f} MB/s  {what}")
    print(f"{'ratio':>16}: {figures['ratio']:.3f} (no SM3: {figures['ratio_no_sm3']:.3f})")
    print(
        f"a 30-minute session (~{SESSION_30_MIN} MB of capture and playable files) "
        f"exports in ~{figures['export_30_min_session_seconds']} s at this rate"
    )
    print(json.dumps({"verify": figures}))
    return 0


LINES = (
    ("export", "export: write the package (SHA-256 + SM3 while copying, 1 core)"),
    ("verify", "whole verify, 2 processes, SHA-256 + SM3 (all media)"),
    ("verify_no_sm3", "whole verify, 2 processes, --no-sm3 (all media)"),
    ("hash_only", "SHA-256 + SM3 of every member, 2 processes, nothing else"),
    ("replay", "1 core: capture packets scanned and counted again (capture bytes)"),
    ("reproduce", "1 core: capture decoded, converted, result hashed (capture bytes)"),
    ("sha256_baseline", "1 core: hashlib SHA-256 (all media)"),
    ("sm3_baseline", "1 core: SM3 (all media)"),
)


if __name__ == "__main__":
    raise SystemExit(main())
