"""The files of a package against its manifest, and its media against the case's
events: each listed file present with its SHA-256, SM3 and size, nothing extra; every
file an event names present (or purged, by an ``evidence_purged`` event) and no media
file that no event names; each playable file made again from its capture chunk, byte
for byte; each track's chunks counted again, with gaps only where the log has them;
each still's type and size as its event says. Every member is read once, in
recorder/pkgjobs.py over worker processes: hashed and, in the same read, decoded,
converted or opened as these checks need; a track's packets are then counted again
here, chunk after chunk.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from recorder import package, pkgjobs
from recorder.auditlog import AuditEvent
from recorder.chunkstats import Continuity, Sequence
from recorder.integrity import FILE_EVENTS, tombstones
from recorder.logverify import Problem
from recorder.pkgarchive import Archive, Member
from recorder.pkgreport import MediaReport, VerifyReport

OUTAGE_TOLERANCE = 0.01
"""Seconds: arrival times in the file are whole microseconds, the live counts were not."""


def _tasks(archive: Archive, events: list[AuditEvent], present: list[Member]) -> list[pkgjobs.Task]:
    """What to check of each present member beyond its hashes, by the events naming it."""
    captures = {
        e.detail.get("sha256") for e in events if e.kind in ("chunk_closed", "chunk_recovered")
    }
    images = {
        e.detail.get("sha256") for e in events if e.kind in ("still_captured", "snapshot_taken")
    }
    playables: dict[str, list[str]] = defaultdict(list)
    for event in events:
        made, source = event.detail.get("sha256"), event.detail.get("derived_from")
        if event.kind == "playable_derived" and isinstance(made, str) and isinstance(source, str):
            playables[source].append(made)
    names = {
        path: match.group(1)
        for path in archive.members
        if (match := package.MEDIA_NAME.fullmatch(path)) is not None
    }
    tasks = []
    for member in present:
        sha256 = names.get(member.name)
        tasks.append(
            pkgjobs.Task(
                member,
                sha256,
                capture=sha256 in captures,
                playables=tuple(p for p in playables.get(sha256 or "", []) if p in names.values()),
                image=sha256 in images,
            )
        )
    return tasks


def hash_members(
    archive: Archive,
    files: list[dict[str, Any]],
    events: list[AuditEvent],
    jobs: pkgjobs.Jobs,
    sm3: bool,
    report: VerifyReport,
) -> dict[str, pkgjobs.Examined]:
    """Hash every listed member present (and check what the events say of it in the
    same read); name what is missing, extra or different. Returns path → what was found."""
    listed = {f["path"]: f for f in files}
    for path in sorted(set(archive.members) - set(listed) - {package.MANIFEST, package.SIGNATURE}):
        report.problems.append(Problem("file_extra", path, "not listed in the manifest"))
    present = []
    for path, facts in listed.items():
        member = archive.members.get(path)
        if member is None:
            report.problems.append(Problem("file_missing", path, f"listed as {facts['role']}"))
        elif member.size != facts["bytes"]:
            report.problems.append(
                Problem("size_mismatch", path, f"{member.size} bytes, listed {facts['bytes']}")
            )
        else:
            present.append(member)
    present.sort(key=lambda m: -m.size)  # the largest first: workers finish together
    tasks = _tasks(archive, events, present)
    found = jobs.map(pkgjobs.examine, [(str(archive.path), task, sm3) for task in tasks])
    examined = {member.name: result for member, result in zip(present, found, strict=True)}
    for path, result in examined.items():
        differ = [
            f"{name} {result.digests[name]}, listed {listed[path][name]}"
            for name in ("sha256", "sm3")
            if name in result.digests and result.digests[name] != listed[path][name]
        ]
        if differ:
            report.problems.append(Problem("hash_mismatch", path, "; ".join(differ)))
    return examined


def work_bytes(archive: Archive) -> int:
    return sum(m.size for m in archive.members.values())


class _Media:
    """The media members by the hash in their names, which are intact, and what their
    reading found."""

    def __init__(self, archive: Archive, examined: dict[str, pkgjobs.Examined]) -> None:
        self.archive = archive
        self.paths: dict[str, str] = {}
        self.intact: set[str] = set()
        self.found: dict[str, pkgjobs.Examined] = {}
        self.problems: list[Problem] = []
        for path in archive.members:
            match = package.MEDIA_NAME.fullmatch(path)
            if match is None:
                continue
            sha256 = match.group(1)
            self.paths[sha256] = path
            facts = examined.get(path)
            if facts is None:
                continue
            computed = facts.digests["sha256"]
            if computed == sha256:
                self.intact.add(sha256)
                self.found[sha256] = facts
            else:
                self.problems.append(
                    Problem("hash_mismatch", path, f"content hashes to {computed}")
                )

    def member(self, sha256: str) -> Member:
        return self.archive.members[self.paths[sha256]]


def _where(event: AuditEvent) -> str:
    return f"case_seq {event.case_seq} ({event.kind}, log_index {event.log_index})"


def check_media(
    archive: Archive,
    manifest: dict[str, Any],
    events: list[AuditEvent],
    examined: dict[str, pkgjobs.Examined],
    report: VerifyReport,
) -> MediaReport:
    media = _Media(archive, examined)
    reported = {(p.code, p.where) for p in report.problems}
    report.problems.extend(p for p in media.problems if (p.code, p.where) not in reported)
    purges = tombstones(events)
    named: dict[str, AuditEvent] = {}
    for event in events:
        sha256 = event.detail.get("sha256")
        if event.kind not in FILE_EVENTS or not isinstance(sha256, str):
            continue
        named.setdefault(sha256, event)
        path = media.paths.get(sha256, f"media/{sha256}")
        if sha256 in purges:
            purge = purges[sha256]
            report.purged.append(
                Problem("evidence_purged", path, f"{purge.detail.get('reason')} {purge.at}")
            )
        elif sha256 not in media.paths:
            report.problems.append(Problem("file_missing", path, f"named by {_where(event)}"))
        elif media.member(sha256).size != event.detail.get("bytes"):
            report.problems.append(
                Problem("size_mismatch", path, f"{_where(event)} says {event.detail.get('bytes')}")
            )
    for gone in manifest["purged"]:
        if gone["sha256"] not in purges:
            where = f"media/{gone['sha256']}"
            report.problems.append(Problem("file_missing", where, "purged without a purge event"))
    for sha256, path in sorted(media.paths.items()):
        if sha256 not in named:
            report.problems.append(Problem("file_extra", path, "no event of the case names it"))
    _playables(media, events, report)
    _stills(media, events, report)
    check_tracks(media, events, report)
    present = [m for m in archive.members.values() if m.name in examined]
    return MediaReport(len(present), sum(m.size for m in present))


def _playables(media: _Media, events: list[AuditEvent], report: VerifyReport) -> None:
    from recorder.convert import libavformat_version  # PyAV: only where needed

    local = libavformat_version()
    for event in events:
        made, source = event.detail.get("sha256"), event.detail.get("derived_from")
        if event.kind != "playable_derived" or made not in media.intact:
            continue
        if source not in media.intact:
            continue
        result = media.found[source].remade[made]
        if result == "same":
            continue
        path = media.paths[made]
        made_with = event.detail.get("libavformat")
        if result == "differs" and made_with != local:
            report.warnings.append(
                Problem("libav_version_differs", path, f"made with {made_with}, here {local}")
            )
        else:
            report.problems.append(Problem("playable_not_reproducible", path, result))


def _stills(media: _Media, events: list[AuditEvent], report: VerifyReport) -> None:
    for event in events:
        sha256 = event.detail.get("sha256")
        if event.kind not in ("still_captured", "snapshot_taken") or sha256 not in media.intact:
            continue
        result = media.found[sha256].image or "not an image"
        size = result.partition(" ")[2]
        if size != event.detail.get("size"):
            report.problems.append(
                Problem(
                    "still_mismatch",
                    media.paths[sha256],
                    f"{result}; {_where(event)} says {event.detail.get('size')}",
                )
            )


def _number(value: Any) -> float:
    """A number from an event's detail; anything else counts as none (-1)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else -1.0


def _logged_outage(outage: dict[str, float], logged: list[dict[str, Any]]) -> bool:
    return any(
        abs(_number(o.get("from")) - outage["from"]) <= OUTAGE_TOLERANCE
        and abs(_number(o.get("to")) - outage["to"]) <= OUTAGE_TOLERANCE
        for o in logged
        if isinstance(o, dict)
    )


def check_tracks(media: _Media, events: list[AuditEvent], report: VerifyReport) -> None:
    """Chunks 0, 1, 2, … of each track; each chunk's losses, jumps and outages as the
    file shows them, the same as its event says (an outage may instead be logged as a
    ``recording_gap``)."""
    tracks: dict[str, list[AuditEvent]] = defaultdict(list)
    gaps: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        track = event.detail.get("track")
        if event.kind in ("chunk_closed", "chunk_recovered"):
            tracks[str(track)].append(event)
        elif event.kind == "recording_gap":
            gaps[str(track)].append(event.detail)
    plans: list[tuple[str, list[tuple[AuditEvent, bool]]]] = []
    for track, chunks in tracks.items():
        chunks.sort(key=lambda e: _number(e.detail.get("chunk")))
        indices = [_number(e.detail.get("chunk")) for e in chunks]
        for expected, index in enumerate(indices):
            if index != expected:
                report.problems.append(
                    Problem("track_gap_unlogged", track, f"chunk {expected} is not in the log")
                )
                break
        # (chunk, counted afresh): a recovered chunk, or one after a chunk not replayed
        # (missing, purged or altered: reported as such, not as a gap in the next one)
        plan, after_intact = [], False
        for event in chunks:
            intact = event.detail.get("sha256") in media.intact
            if intact:
                plan.append((event, event.kind == "chunk_recovered" or not after_intact))
            after_intact = intact
        plans.append((track, plan))
    results = [
        replay([(media.found[e.detail["sha256"]], fresh) for e, fresh in plan]) for _, plan in plans
    ]
    for (track, plan), counted in zip(plans, results, strict=True):
        for (event, _fresh), found in zip(plan, counted, strict=True):
            where = f"{track} chunk {event.detail.get('chunk')}"
            if isinstance(found, str):
                report.problems.append(Problem("track_gap_unlogged", where, found))
            elif not event.detail.get("partial"):
                _compare(where, found, event.detail, gaps[track], report)


def replay(chunks: list[tuple[pkgjobs.Examined, bool]]) -> list[dict[str, Any] | str]:
    """Count a track's chunks again, in order, each continuing from the previous one as
    the live capture did (a recovered chunk, or one after a missing one, starts afresh):
    the gaps each chunk holds, or why it cannot be read."""
    counted: list[dict[str, Any] | str] = []
    previous: Continuity | None = None
    for found, fresh in chunks:
        if not isinstance(found.packets, tuple):
            counted.append(found.packets or "unreadable: not examined")
            previous = None
            continue
        sequence = Sequence(None if fresh else previous)
        add = sequence.add
        for seq, arrival_us in zip(*found.packets, strict=True):
            add(seq, arrival_us / 1_000_000)
        counted.append(sequence.lost())
        previous = sequence.continuity()
    return counted


def _compare(
    where: str,
    found: dict[str, Any],
    logged: dict[str, Any],
    gap_events: list[dict[str, Any]],
    report: VerifyReport,
) -> None:
    if found["lost"] != logged.get("lost") or found["lost_ranges"] != logged.get("lost_ranges"):
        report.problems.append(
            Problem(
                "track_gap_unlogged",
                where,
                f"{found['lost']} packets lost {found['lost_ranges'][:5]}, "
                f"logged {logged.get('lost')} {str(logged.get('lost_ranges'))[:80]}",
            )
        )
    if found["sequence_jumps"] != logged.get("sequence_jumps"):
        report.problems.append(Problem("track_gap_unlogged", where, "sequence jumps not logged"))
    outages = [o for o in logged.get("outages") or [] if isinstance(o, dict)]
    for outage in found["outages"]:
        if not _logged_outage(outage, outages + gap_events):
            report.problems.append(
                Problem(
                    "track_gap_unlogged",
                    where,
                    f"no packet from {outage['from']:.3f} to {outage['to']:.3f} (not logged)",
                )
            )
