"""The supervision dashboard's API (电子监察): figures per day or week and per outlet,
department or matter (JSON and CSV), and the time-limit cards of open cases."""

from __future__ import annotations

import csv
import io
from typing import Any

from aiohttp import web

from signaling.supervision.stats import StatsQuery
from signaling.web.access import USER, allow
from signaling.web.appkeys import AUDIT, SUPERVISION, TIME_LIMITS
from signaling.web.json_api import json_response

routes = web.RouteTableDef()

SCOPE = "cases of the auditor's jurisdiction; every case for an admin"
GROUP_NAMES = {"outlet": "网点", "department": "部门", "matter": "事项"}
CSV_COLUMNS = (
    ("sessions", "会话数"),
    ("accepted", "已接入"),
    ("timed_out", "等待超时"),
    ("cancelled", "已取消"),
    ("wait_p50", "等待时长P50(秒)"),
    ("wait_p90", "等待时长P90(秒)"),
    ("duration_p50", "审办时长P50(秒)"),
    ("duration_p90", "审办时长P90(秒)"),
    ("approved", "通过"),
    ("rejected", "不予受理"),
    ("supplement", "补正"),
    ("ratings", "评价数"),
    ("satisfied", "满意及非常满意"),
    ("satisfaction_rate", "满意率(%)"),
    ("awaiting_verify", "待回访核实"),
    ("awaiting_rectify", "待整改"),
    ("followups_overdue", "回访整改逾期"),
)
ALL = "合计"


async def _stats(request: web.Request) -> dict[str, Any]:
    supervision = request.app[SUPERVISION]
    query = StatsQuery.parse(request.query, supervision.today())
    return await supervision.stats(request[USER], query)


@routes.get("/api/v1/supervision/stats")
@allow("auditor", "admin", scope=SCOPE)
async def stats(request: web.Request) -> web.Response:
    return json_response(await _stats(request))


@routes.get("/api/v1/supervision/stats.csv")
@allow("auditor", "admin", scope=SCOPE)
async def stats_csv(request: web.Request) -> web.Response:
    """The same figures as a CSV file Excel opens (UTF-8 with BOM, Chinese header):
    one line per period and group, then each group's total, then the total. The
    download is logged (``supervision_exported``)."""
    found = await _stats(request)
    user = request[USER]
    await request.app[AUDIT].append(
        "supervision_exported",
        actor=user.username,
        period=found["period"],
        group=found["group"],
        **{"from": found["from"], "to": found["to"]},
    )
    name = f"coreview-supervision-{found['period']}-{found['group']}-{found['from']}-{found['to']}"
    return web.Response(
        body=to_csv(found).encode("utf-8-sig"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def _text(value: str) -> str:
    """A name as text, never as a spreadsheet formula (CSV injection)."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _cell(name: str, value: Any) -> str:
    if value is None:
        return ""
    if name == "satisfaction_rate":
        return f"{value * 100:.1f}"
    return str(value)


def to_csv(found: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    period = "日期" if found["period"] == "day" else "周（起始周一）"
    writer.writerow([period, GROUP_NAMES[found["group"]], *(title for _, title in CSV_COLUMNS)])
    lines = [
        *((row["bucket"], row["group_name"], row) for row in found["rows"]),
        *((ALL, row["group_name"], row) for row in found["by_group"]),
        (ALL, ALL, found["total"]),
    ]
    for bucket, group, figures in lines:
        writer.writerow([bucket, _text(group), *(_cell(n, figures[n]) for n, _ in CSV_COLUMNS)])
    return out.getvalue()


@routes.get("/api/v1/supervision/time-limits")
@allow("auditor", "admin", scope=SCOPE)
async def time_limits(request: web.Request) -> web.Response:
    return json_response(await request.app[TIME_LIMITS].cards(request[USER]))
