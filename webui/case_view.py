"""The evidence of a case as the case page shows it: the event list in Chinese and the
recordings with what each file plays as."""

from __future__ import annotations

import datetime as dt
from typing import Any

from signaling.cases import CHINA_TIME
from signaling.messages import (
    EVENT_NAMES,
    FOLLOWUP_STAGE_NAMES,
    MARK_NAMES,
    OUTCOME_NAMES,
    ROLE_NAMES,
    SCORE_NAMES,
)

SOURCE_NAMES = {"face": "人像", "document": "高拍仪", "audio": "声音"}
LEAVE_REASONS = {"hangup": "挂断", "grace_expired": "重连超时"}
END_REASONS = {
    "ended_by_approver": "审批人员结束",
    "all_left": "参会人员均已离开",
    "cancelled_by_clerk": "窗口人员取消",
    "nobody_accepted": "无人接入",
}


def local_time(iso: str) -> str:
    """ "2026-11-25T13:40:49+00:00" → "2026-11-25 21:40:49" (China time)."""
    try:
        at = dt.datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return at.astimezone(CHINA_TIME).strftime("%Y-%m-%d %H:%M:%S")


def _describe(kind: str, d: dict[str, Any]) -> str:
    if kind == "chat":
        return str(d.get("text", ""))
    if kind == "material_marked":
        text = f"{d.get('material_name', '')}：{MARK_NAMES.get(d.get('mark', ''), '')}"
        return text + (f"（{d['comment']}）" if d.get("comment") else "")
    if kind == "decision_recorded":
        reason = f"，理由：{d['reason']}" if d.get("reason") else ""
        return f"{OUTCOME_NAMES.get(d.get('outcome', ''), '')}{reason}"
    if kind == "rating_recorded":
        extra = "；".join(str(d[k]) for k in ("comment", "reason") if d.get(k))
        return SCORE_NAMES.get(d.get("score", ""), "") + (f"（{extra}）" if extra else "")
    if kind == "followup_opened":
        return f"{FOLLOWUP_STAGE_NAMES.get(d.get('stage', ''), '')}，期限 {d.get('due_date', '')}"
    if kind == "consent_recorded":
        return f"告知书版本 {d.get('version', '')}"
    if kind in ("participant_joined", "participant_rejoined", "auditor_joined"):
        return ROLE_NAMES.get(d.get("role", ""), "")
    if kind == "participant_left":
        return LEAVE_REASONS.get(d.get("reason", ""), "")
    if kind == "session_ended":
        return END_REASONS.get(d.get("reason", ""), "")
    if kind == "co_review_invited":
        return f"邀请部门 {d.get('department', '')}"
    return "，".join(f"{k}: {v}" for k, v in d.items() if k != "session")


def event_rows(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The case's log, in order, in words."""
    return [
        {
            "seq": e["case_seq"],
            "at": local_time(str(e["at"])),
            "kind": e["kind"],
            "name": EVENT_NAMES.get(e["kind"], e["kind"]),
            "actor": e["actor"] or "系统",
            "text": _describe(e["kind"], e["detail"] or {}),
        }
        for e in events
    ]


def track_rows(recordings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Recordings with names, and for each file whether it plays (and as what)."""
    rows = []
    for track in recordings:
        files = [
            {**f, "player": track["kind"] if f["role"] == "playable" else None}
            for f in track["files"]
        ]
        rows.append(
            {
                **track,
                "source_name": SOURCE_NAMES.get(track["source"] or "", track["source"]),
                "files": files,
            }
        )
    return rows
