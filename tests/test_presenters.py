"""How times and cases read (signaling/cases/cases.py, signaling/web/presenters.py): China time by
a shift equals China time by conversion; a case listed from its row reads as the case."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from signaling.cases.cases import case_of
from signaling.cases.catalog import CatalogSnapshot
from signaling.china_time import CHINA_TIME, china_iso
from signaling.storage.models import Material, Matter, Unit
from signaling.web.presenters import Lookup

OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)


@given(at=st.datetimes(), zone=st.none() | OFFSETS)
def test_china_time_by_a_shift_is_china_time(at: dt.datetime, zone: dt.tzinfo | None):
    if zone is not None:
        at = at.replace(tzinfo=zone)
    try:
        expected = (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).astimezone(CHINA_TIME)
    except OverflowError:  # beyond year 9999 in China
        return
    assert china_iso(at) == expected.isoformat(timespec="seconds")


def _snapshot() -> CatalogSnapshot:
    outlet = Unit(id=1, code="BH-HC-01", name="海城区窗口", jurisdiction_code="450502")
    department = Unit(id=2, code="LZ-SCJG", name="柳州市市场监管局", jurisdiction_code="450200")
    matter = Matter(
        id=3,
        code="LZ-SCJG-0101",
        name="营业执照变更登记",
        department_id=2,
        time_limit_days=3,
        mode="remote_approval",
        retention_years=30,
        active=True,
        materials=(Material(position=1, name="营业执照正、副本", required=True, id=4),),
    )
    return CatalogSnapshot(
        generation=1,
        jurisdictions=(),
        outlets=(outlet,),
        departments=(department,),
        matters=(matter,),
    )


def test_a_listed_row_reads_as_its_case():
    row = {
        "id": 7,
        "case_no": "GX-2026-000007",
        "matter_id": 3,
        "outlet_id": 1,
        "department_id": 2,
        "clerk_id": 5,
        "applicant_name": "王小二",
        "id_number_digest": "…",
        "id_number_masked": "4502**********1233",
        "phone": "13800000000",
        "notes": "",
        "status": "approved",
        "created_at": dt.datetime(2026, 11, 27, 17, 30, 5, 123456),  # naive UTC, as stored
        "due_at": dt.datetime(2026, 12, 2, 16, 0),
        "retention_years": 30,
        "sessions": 2,
        "waiting": 59.9999,
        "duration": 615.2,
        "decision": "approve",
        "decided_at": dt.datetime(2026, 11, 28, 1, 2, 3),
        "approver": "市场监管审批员",
        "rating": "satisfied",
        "gaps": 0,
        "overdue": 1,
        "total": 1,
    }
    lookup = Lookup(_snapshot())
    found = lookup.found(row)
    case = lookup.case(case_of(row))
    assert {key: found[key] for key in case} == case
    assert case["created_at"] == "2026-11-28T01:30:05+08:00"
    assert case["due_date"] == "2026-12-02" and case["phone_masked"] == "138****0000"
    assert case["matter"]["materials"] == [{"id": 4, "name": "营业执照正、副本", "required": True}]
    assert found["waiting_seconds"] == 60 and found["waiting_text"] == "1 分 0 秒"
    assert found["decided_at"] == "2026-11-28T09:02:03+08:00"
    assert found["gaps"] is False and found["overdue"] is True
