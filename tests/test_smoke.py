"""First checks of the running app."""

from __future__ import annotations

from tests.helpers import valid_id


async def test_healthz_reports_ok_once_migrated(anonymous):
    """/healthz answers {"status": "ok"} without a session."""
    response = await anonymous.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_clerk_creates_case_and_finds_it(as_user):
    """A clerk creates a case and finds it by case number and by ID number."""
    clerk = await as_user("chuangkou")
    id_number = valid_id()
    response = await clerk.post(
        "/api/v1/cases",
        json={
            "matter": "LZ-SCJG-0101",
            "applicant_name": "王小二",
            "id_number": id_number,
            "phone": "13800000000",
        },
    )
    body = await response.json()
    assert response.status == 201, body
    case_no = body["case"]["case_no"]
    for query in (case_no, id_number):
        found = await (await clerk.get("/api/v1/cases", params={"q": query})).json()
        assert [c["case_no"] for c in found["cases"]] == [case_no]
