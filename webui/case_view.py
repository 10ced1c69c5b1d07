"""The evidence of a case as the case page shows it: the event list in Chinese and the
recordings with what each file plays as."""

from __future__ import annotations

import datetime as dt
from typing import Any

from signaling.china_time import CHINA_TIME
from signaling.web.messages import (
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
    "not_started": "未能开始（告知同意未能记录）",
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
    if kind == "followup_verified":
        found = (
            f"反映属实，转入整改，期限 {d.get('due_date')}"
            if d.get("upheld")
            else "反映不属实，办结"
        )
        return f"{found}：{d.get('note', '')}"
    if kind == "followup_rectified":
        return f"整改完成，办结：{d.get('note', '')}"
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
    return _describe_evidence(kind, d)


GAP_REASONS = {"reconnect": "重新连接", "outage": "断流"}


def _track(d: dict[str, Any]) -> str:
    return f"{d.get('participant', '')} 的{SOURCE_NAMES.get(d.get('source', ''), '')}"


def _material(d: dict[str, Any]) -> str:
    material = d.get("material")
    return str(material.get("name")) if isinstance(material, dict) else "未指定材料"


def _describe_evidence(kind: str, d: dict[str, Any]) -> str:
    """Recording, stills, snapshots and the log's own events, in words; files by the
    start of their SHA-256 (the full hash is in the evidence API and the export)."""
    sha = f"SHA-256 {str(d['sha256'])[:12]}…" if d.get("sha256") else ""
    if kind in ("track_started", "track_ended"):
        return _track(d)
    if kind in ("chunk_closed", "chunk_recovered"):
        lost = f"，丢包 {d['lost']}" if d.get("lost") else ""
        part = int(d.get("chunk", 0)) + 1
        return f"{_track(d)} 第 {part} 段，{d.get('packets', 0)} 个包{lost}，{sha}"
    if kind == "playable_derived":
        return f"{_track(d)}，由分段 {str(d.get('derived_from', ''))[:12]}… 生成，{sha}"
    if kind == "recording_gap":
        reason = GAP_REASONS.get(d.get("reason", ""), "")
        return f"{_track(d)} 缺口 {d.get('seconds', '')} 秒（{reason}）"
    if kind in ("recording_failed", "conversion_failed"):
        return f"{_track(d)}：{d.get('code', '') or d.get('error', '')}"
    if kind == "still_requested":
        return _material(d)
    if kind == "still_captured":
        size = str(d.get("size", "")).replace("x", "×")
        return f"{_material(d)}，{size}，{sha}"
    if kind == "snapshot_taken":
        return f"{_track(d)}，{sha}"
    if kind == "session_interrupted":
        return f"服务中断 {d['seconds']} 秒" if d.get("seconds") else "服务中断"
    return sha


def event_rows(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The case's log, in order, in words."""
    return [
        {
            "seq": e.get("case_seq", number),
            "at": local_time(str(e["at"])),
            "kind": e["kind"],
            "name": EVENT_NAMES.get(e["kind"], e["kind"]),
            "actor": e["actor"] or "系统",
            "text": _describe(e["kind"], e["detail"] or {}),
        }
        for number, e in enumerate(events, 1)
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
