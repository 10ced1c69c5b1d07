"""Document stills (高拍仪照片) and server-side snapshots of a review session: requests
for a still, checked uploads stored as evidence, listing, and snapshots of live tracks.

A still request is an audit event (``still_requested``) naming its session, so an upload
that cites a request is checked against the log on any node. Every stored still or
snapshot is a row of ``evidence_files`` (role ``still`` / ``snapshot``) beside its
write-once file, and an audit event (``still_captured`` / ``snapshot_taken``); a new still
is announced on the session's bus topic, which the live session relays (``still_added``).
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy import Row, and_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from media.forwarder import PublishedTrack
from media.room import MediaError
from media.snapshot import ImageFormat, take_snapshot
from recorder.auditlog import AuditLog, chain_of
from recorder.clock import Clock
from recorder.errors import StoreError
from recorder.rows import file_evidence
from recorder.stills import StillError, StillInfo, inspect_still
from recorder.store import EvidenceStore
from signaling.cases.cases import case_material
from signaling.china_time import china_iso
from signaling.review.protocol import StillRequested
from signaling.review.sessions import ReviewSession, session_topic
from signaling.settings import Settings
from signaling.storage.bus import Bus
from signaling.storage.tables import evidence_files
from signaling.web.errors import (
    InvalidInput,
    NotFound,
    SignalingError,
    StorageFull,
    TooLarge,
    Unavailable,
    UnsupportedType,
)

STILL_ERRORS: dict[str, type[SignalingError]] = {
    "still_not_image": UnsupportedType,
    "still_type_mismatch": InvalidInput,
    "hash_mismatch": InvalidInput,
    "still_too_many_pixels": InvalidInput,
    "still_undecodable": InvalidInput,
}
MEDIA_ERRORS: dict[str, type[SignalingError]] = {
    "snapshot_not_video": InvalidInput,
    "snapshot_timeout": Unavailable,
    "track_ended": Unavailable,
    "snapshot_undecodable": Unavailable,
}


def stored_error(exc: StoreError) -> SignalingError:
    if exc.code == "disk_full":
        return StorageFull("disk_full")
    return Unavailable("store_failed")


def image_json(row: Row[Any]) -> dict[str, Any]:
    """A still or snapshot as the API and the protocol show it."""
    meta = row.meta
    shown = {
        "sha256": row.sha256,
        "bytes": row.bytes,
        "width": meta.get("width"),
        "height": meta.get("height"),
        "content_type": meta.get("content_type"),
        "role": row.role,
        "participant": row.participant,
        "source": row.source,
        "taken_at": china_iso(row.created_at),
        "url": f"/api/v1/sessions/{row.session_id}/{row.role}s/{row.sha256}",
    }
    if row.role == "still":
        shown |= {"material": meta.get("material"), "request": meta.get("request")}
    else:
        shown |= {"taken_by": meta.get("taken_by")}
    return shown


class Stills:
    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        audit: AuditLog,
        store: EvidenceStore,
        bus: Bus,
        settings: Settings,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._audit = audit
        self._store = store
        self._bus = bus
        self._settings = settings

    # -- reads ----------------------------------------------------------------------------

    async def _material(self, session: ReviewSession, material_id: int) -> dict[str, Any]:
        material = await case_material(self._engine, session.case_id, material_id)
        return {"id": material["id"], "name": material["name"]}

    async def _request(self, session: ReviewSession, request_id: str) -> dict[str, Any]:
        """The logged request ``request_id`` of this session, or ``unknown_still_request``."""
        for event in await self._audit.events(f"case:{session.case_no}", "still_requested"):
            if event.detail.get("request") == request_id and (
                event.detail.get("session") == session.id
            ):
                return event.detail
        raise InvalidInput("unknown_still_request")

    async def of_session(
        self, session_id: str, role: str = "still", *, hidden: bool = False
    ) -> list[dict[str, Any]]:
        """Stills (or snapshots) of a session; those taken by a hidden auditor only for a
        ``hidden`` viewer (the others must not learn that someone watched)."""
        query = (
            select(evidence_files)
            .where(and_(evidence_files.c.session_id == session_id, evidence_files.c.role == role))
            .order_by(evidence_files.c.id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [image_json(row) for row in rows if hidden or not row.meta.get("hidden")]

    async def file(self, session_id: str, role: str, sha256: str) -> tuple[Path, str]:
        """Path and content type of a still (or snapshot) of this session."""
        query = select(evidence_files).where(
            and_(
                evidence_files.c.session_id == session_id,
                evidence_files.c.role == role,
                evidence_files.c.sha256 == sha256,
            )
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise NotFound("still_not_found")
        return self._store.path(sha256), str(row.meta.get("content_type"))

    # -- requests and uploads -------------------------------------------------------------

    async def request(
        self, session: ReviewSession, approver: str, display_name: str, material_id: int | None
    ) -> StillRequested:
        """Log an approver's request for a still; the message to relay to the session."""
        material = None if material_id is None else await self._material(session, material_id)
        request_id = secrets.token_hex(8)
        await self._audit.append(
            "still_requested",
            actor=approver,
            case_no=session.case_no,
            session=session.id,
            request=request_id,
            material=material,
        )
        return StillRequested(request_id, material, approver, display_name)

    def check_size(self, size: int | None) -> None:
        """``still_too_large`` for a body (declared or read so far) over the limit."""
        limit = self._settings.max_still_bytes
        if size is not None and size > limit:
            raise TooLarge("still_too_large", max_mb=round(limit / (1 << 20), 1))

    async def filed_under(
        self, session: ReviewSession, material_id: int | None, request_id: str | None
    ) -> dict[str, Any] | None:
        """The material a still is filed against: the upload's, else its request's.
        Checks both belong to the session (``unknown_material``, ``unknown_still_request``)."""
        material = None if material_id is None else await self._material(session, material_id)
        if request_id is not None:
            asked = await self._request(session, request_id)
            material = material or asked.get("material")
        return material

    async def add(
        self,
        session: ReviewSession,
        clerk: str,
        data: bytes,
        content_type: str,
        sha256: str,
        material: dict[str, Any] | None,
        request_id: str | None,
    ) -> tuple[dict[str, Any], bool]:
        """Check, store, record, log and announce a still; (still, created). The same
        bytes uploaded again in the session answer the still already stored (and log it
        if the first attempt stopped before its event); in another session of the case
        they are that session's still too."""
        try:
            info: StillInfo = await asyncio.to_thread(
                inspect_still, data, content_type, sha256, self._settings.max_still_pixels
            )
        except StillError as exc:
            raise STILL_ERRORS[exc.code](exc.code) from exc
        meta = {
            "width": info.width,
            "height": info.height,
            "content_type": info.content_type,
            "material": material,
            "request": request_id,
        }
        row, created = await self._record(session, "still", data, clerk, "document", meta)
        still = image_json(row)
        # a retry after a first attempt that died between its row and its event logs it
        if created or not await self._logged("still_captured", session, row.sha256):
            await self._audit.append(
                "still_captured",
                actor=clerk,
                case_no=session.case_no,
                session=session.id,
                sha256=info.sha256,
                bytes=info.bytes,
                size=f"{info.width}x{info.height}",
                material=material,
                request=request_id,
            )
            await self._bus.publish(
                session_topic(session.id), {"event": "still_added", "still": still}
            )
        return still, created

    async def _logged(self, kind: str, session: ReviewSession, sha256: str) -> bool:
        """Whether the case's log has an event of ``kind`` for these bytes in the session."""
        events = await self._audit.events(chain_of(session.case_no), kind)
        return any(
            e.detail.get("session") == session.id and e.detail.get("sha256") == sha256
            for e in events
        )

    async def _record(
        self,
        session: ReviewSession,
        role: str,
        data: bytes,
        participant: str,
        source: str,
        meta: dict[str, Any],
    ) -> tuple[Row[Any], bool]:
        """Store the bytes (write-once, synced) and insert their row; an existing row of
        the session with the same bytes in that role is returned instead."""
        try:
            sha256 = (await asyncio.to_thread(self._store.put, data)).sha256
        except StoreError as exc:
            raise stored_error(exc) from exc
        created = await file_evidence(
            self._engine,
            sha256=sha256,
            case_id=session.case_id,
            session_id=session.id,
            role=role,
            participant=participant,
            source=source,
            bytes=len(data),
            meta=meta,
            created_at=self._clock.now(),
        )
        query = select(evidence_files).where(
            and_(
                evidence_files.c.case_id == session.case_id,
                evidence_files.c.session_id == session.id,
                evidence_files.c.role == role,
                evidence_files.c.sha256 == sha256,
            )
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).one()
        return row, created

    # -- snapshots ------------------------------------------------------------------------

    async def snapshot(
        self,
        session: ReviewSession,
        actor: str,
        track: PublishedTrack,
        image_format: ImageFormat,
        *,
        hidden: bool = False,
    ) -> dict[str, Any]:
        """A picture of the track's next keyframe, stored and logged."""
        try:
            shot = await take_snapshot(track, self._settings.snapshot_timeout_seconds, image_format)
        except MediaError as exc:
            raise MEDIA_ERRORS.get(exc.code, Unavailable)(exc.code) from exc
        meta = {
            "width": shot.width,
            "height": shot.height,
            "content_type": shot.content_type,
            "taken_by": actor,
            "hidden": hidden,
            "codec": shot.codec,
            "rtp_timestamp": shot.rtp_timestamp,
            "arrival": shot.arrival,
        }
        row, _created = await self._record(
            session, "snapshot", shot.data, track.participant, track.source, meta
        )
        await self._audit.append(
            "snapshot_taken",
            actor=actor,
            case_no=session.case_no,
            session=session.id,
            participant=track.participant,
            source=track.source,
            sha256=row.sha256,
            bytes=row.bytes,
            size=f"{shot.width}x{shot.height}",
        )
        return image_json(row)
