"""A small synthetic case as an evidence package, without a server: a real VP8 track in
two capture chunks with their playable files, a still, events sealed into a log with
another case's chain and system events between, two signed checkpoints. The tamper
tests change copies of it; ``Case.repack`` re-signs a changed package the way an owner
of the node key could."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from recorder import chunkfile, merkle, package
from recorder.auditlog import GENESIS, AuditEvent, seal
from recorder.canonical import canonical_json, timestamp
from recorder.checkpoints import Checkpoint
from recorder.chunkstats import ChunkStats
from recorder.convert import convert, libavformat_version
from recorder.keyring import RegisteredKey, key_id, public_raw
from tests.rtp_source import video_packets

CASE_NO = "GX-2026-000042"
OTHER_CASE = "GX-2026-000043"
T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
T0_US = int(T0.timestamp() * 1_000_000)
TRACK = "chuangkou/document/1772355600000"


def chunk_with_meta(
    index: int,
    packets: list[Any],
    start_us: int,
    drop: tuple[int, ...] = (),
    hide_loss: bool = False,
) -> tuple[bytes, dict[str, Any]]:
    """A capture chunk of the packets (those at the ``drop`` positions lost) and the
    meta the live capture would log for it (with ``hide_loss``, as if none were lost)."""
    header = {
        "format": "coreview-capture",
        "codec": "video/vp8",
        "clock_rate": 90_000,
        "kind": "video",
        "participant": "chuangkou",
        "source": "document",
        "session": "s-1",
        "case": CASE_NO,
        "case_id": 1,
        "track": TRACK,
        "chunk": index,
        "opened_at": start_us / 1e6,
    }
    data = chunkfile.encode_header(header)
    stats = ChunkStats("video/vp8", "video")
    for n, p in enumerate(packets):
        arrival = start_us + n * 5_000
        if n not in drop:
            data += chunkfile.encode_record(
                arrival, p.sequence_number, p.timestamp, p.marker, p.payload_type, p.ssrc, p.payload
            )
        if n not in drop or hide_loss:
            stats.add(p.sequence_number, p.timestamp, p.marker, p.payload, arrival / 1e6)
    meta = stats.meta(90_000)
    meta["media_kind"] = meta.pop("kind")
    return data, {**meta, "chunk": index, "sender_report": None}


def jpeg(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 180, 90)).save(out, "JPEG")
    return out.getvalue()


@dataclass
class Log:
    """A global log with several chains, sealed as AuditLog would."""

    start: dt.datetime = T0
    events: list[AuditEvent] = field(default_factory=list)
    heads: dict[str, AuditEvent] = field(default_factory=dict)

    def add(self, chain: str, kind: str, **detail: Any) -> AuditEvent:
        last = self.heads.get(chain)
        seq, prev = (last.case_seq + 1, last.hash) if last else (1, GENESIS)
        at = self.start + dt.timedelta(seconds=len(self.events))
        event = seal(len(self.events), chain, seq, prev, at, kind, "chuangkou", detail)
        self.events.append(event)
        self.heads[chain] = event
        return event

    def tree(self) -> merkle.MerkleTree:
        return merkle.MerkleTree(bytes.fromhex(e.hash) for e in self.events)


def sign(key: Ed25519PrivateKey, tree: merkle.MerkleTree, size: int, at: dt.datetime) -> Checkpoint:
    draft = Checkpoint(size, tree.root(size).hex(), timestamp(at), key_id(key), "")
    return replace(draft, signature=key.sign(draft.statement()).hex())


@dataclass
class Case:
    """The pieces of a synthetic case's package, kept to build changed copies."""

    directory: Path
    key: Ed25519PrivateKey
    keys: list[RegisteredKey]
    log: Log
    checkpoints: list[Checkpoint]
    media: list[package.MediaFile]
    path: Path
    purged: list[dict[str, Any]]

    @property
    def events(self) -> list[AuditEvent]:
        chain = f"case:{CASE_NO}"
        return [e for e in self.log.events if e.chain == chain]

    def contents(self, events: list[AuditEvent] | None = None, **changes: Any) -> package.Contents:
        events = self.events if events is None else events
        inclusion, used, consistency = package.attest(
            [e for e in events if e.log_index < self.log.tree().size],
            self.checkpoints,
            self.log.tree(),
        )
        values: dict[str, Any] = {
            "case_no": CASE_NO,
            "created_at": timestamp(T0 + dt.timedelta(hours=1)),
            "created_by": "jiancha",
            "events": events,
            "inclusion": inclusion,
            "checkpoints": used,
            "consistency": consistency,
            "keys": self.keys,
            "media": self.media,
            "purged": self.purged,
        }
        return package.Contents(**{**values, **changes})

    def write(self, out: Path, contents: package.Contents | None = None) -> Path:
        package.write_package(out, contents or self.contents(), key_id(self.key), self.key)
        return out


def build_case(
    directory: Path,
    *,
    hide_loss: bool = False,
    bad_playable: bool = False,
    still_size: str = "64x48",
    purge_still: bool = False,
) -> Case:
    """The synthetic case, its package written to ``directory/case.zip``. Options make a
    case whose log itself disagrees with its media: a loss in chunk 1 the log hides,
    chunk 1's playable file made from part of it, a still logged at another size; or a
    still purged by retention (not in the package, a tombstone in the log)."""
    key = Ed25519PrivateKey.generate()
    keys = [RegisteredKey(key_id(key), public_raw(key).hex(), timestamp(T0))]
    numbered = video_packets("video/vp8", 30, keyframes=(0, 15), size=(320, 240))
    packets = [p for _, p in numbered]
    cut = next(i for i, (c, _) in enumerate(numbered) if c == 15)
    chunks = [
        chunk_with_meta(0, packets[:cut], T0_US),
        chunk_with_meta(
            1,
            packets[cut:],
            T0_US + cut * 5_000,
            drop=(3,) if hide_loss else (),
            hide_loss=hide_loss,
        ),
    ]
    store = directory / "store"
    store.mkdir()
    log = Log()
    chain = f"case:{CASE_NO}"
    log.add("system", "login", user="chuangkou")
    log.add(chain, "case_created", matter="LZ-SCJG-0101")
    log.add(f"case:{OTHER_CASE}", "case_created", matter="LZ-SCJG-0101")
    log.add(chain, "track_started", track=TRACK, first_arrival=T0_US / 1e6, codec="video/vp8")
    media: list[package.MediaFile] = []
    for index, (data, meta) in enumerate(chunks):
        sha = _put(store, data)
        facts = {"session": "s-1", "track": TRACK, "participant": "chuangkou", "source": "document"}
        media.append(package.MediaFile(sha, "capture", store / sha, facts))
        log.add(chain, "chunk_closed", sha256=sha, bytes=len(data), **facts, **meta)
        decoded = chunkfile.decode(data)
        if bad_playable and index == 1:  # made from fewer packets than the chunk holds
            decoded = replace(decoded, records=decoded.records[:-3])
        playable = convert(decoded)
        psha = _put(store, playable.data)
        media.append(
            package.MediaFile(
                psha,
                "playable",
                store / psha,
                {**facts, "derived_from": sha},
                {"container": "webm"},
            )
        )
        if index == 0:
            mid = len(log.events)
        log.add(
            chain,
            "playable_derived",
            sha256=psha,
            bytes=len(playable.data),
            derived_from=sha,
            libavformat=libavformat_version(),
            **facts,
        )
    still = jpeg()
    ssha = _put(store, still)
    if not purge_still:
        media.append(
            package.MediaFile(
                ssha, "still", store / ssha, {"session": "s-1"}, {"content_type": "image/jpeg"}
            )
        )
    log.add(chain, "still_captured", session="s-1", sha256=ssha, bytes=len(still), size=still_size)
    purged = []
    if purge_still:
        purge = log.add(
            chain,
            "evidence_purged",
            sha256=ssha,
            role="still",
            bytes=len(still),
            session="s-1",
            reason="retention",
            retention_until="2056-03-01",
        )
        purged.append(
            {"sha256": ssha, "role": "still", "bytes": len(still), "event": purge.log_index}
        )
    log.add("system", "login", user="shenpi")
    log.add(chain, "decision_recorded", outcome="approve")
    tree = log.tree()
    checkpoints = [
        sign(key, tree, mid, T0 + dt.timedelta(minutes=1)),
        sign(key, tree, tree.size, T0 + dt.timedelta(minutes=2)),
    ]
    case = Case(directory, key, keys, log, checkpoints, media, directory / "case.zip", purged)
    case.write(case.path)
    return case


def _put(store: Path, data: bytes) -> str:
    sha = package.digest_bytes(data)["sha256"]
    (store / sha).write_bytes(data)
    return str(sha)


def rewrite(
    source: Path, out: Path, change: dict[str, bytes | None], add: dict[str, bytes] | None = None
) -> Path:
    """A copy of the package with members replaced (``None``: removed) or added, the
    manifest left as it was (a change without the key)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename in change:
                replaced = change[info.filename]
                if replaced is None:
                    continue
                data = replaced
            new.writestr(info, data)
        for name, data in (add or {}).items():
            new.writestr(name, data)
    return out


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def canonical_line(obj: Any) -> bytes:
    return canonical_json(obj) + b"\n"
