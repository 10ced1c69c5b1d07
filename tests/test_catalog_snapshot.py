"""The catalogue snapshot on real servers and a real database: this node's catalogue
writes show on the next request, another writer's (the CLI, another node) within about a
second, another node's at once through a real Redis; and a case list costs two queries."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import event

from coreview.app import create_app
from coreview.simulate import ApiClient
from recorder.clock import SystemClock
from signaling.node.services import open_services
from signaling.settings import Settings
from signaling.web.appkeys import CATALOG, ENGINE, READS
from tests.helpers import demo_password, wait_until

pytest_plugins = ("tests.redis_server",)

NEW_MATTER = {
    "code": "T-NEW-01",
    "name": "新增测试事项",
    "department": "LZ-SCJG",
    "time_limit_days": 5,
    "mode": "remote_approval",
    "retention_years": 30,
    "materials": ["申请表"],
}
CATALOG_TABLES = ("jurisdictions", "outlets", "departments", "matters", "matter_materials")


async def matter_codes(api: ApiClient) -> list[str]:
    return [m["code"] for m in (await api.get("/api/v1/matters"))["matters"]]


async def node_login(server: Any, data_dir: Any, username: str) -> ApiClient:
    api = ApiClient(str(server.make_url("")))
    await api.login(username, demo_password(data_dir, username))
    return api


async def test_this_nodes_catalogue_writes_show_on_the_next_request(users):
    """An import through the API, a matter disabled on the admin page and an outlet
    renamed: each shows on the very next request (no wait for the 1 s recheck)."""
    admin, clerk = await users("admin"), await users("chuangkou")
    assert "T-NEW-01" not in await matter_codes(clerk)
    await admin.post("/api/v1/catalog", {"matters": [NEW_MATTER]})
    assert "T-NEW-01" in await matter_codes(clerk)
    async with admin.http.post(
        f"{admin.base_url}/admin/matters/T-NEW-01/disable", headers={"X-CSRF-Token": admin.csrf}
    ) as response:
        assert response.status == 200
    assert "T-NEW-01" not in await matter_codes(clerk)
    renamed = {"code": "BH-HC-01", "name": "改名后的网点", "jurisdiction": "450502"}
    await admin.post("/api/v1/catalog", {"outlets": [renamed]})
    assert (await clerk.get("/api/v1/me"))["user"]["outlet"]["name"] == "改名后的网点"


async def test_an_auditors_scope_follows_a_new_jurisdiction_at_once(users, server):
    """An auditor of a new jurisdiction sees no case; once an outlet is moved into a
    jurisdiction added below theirs, the next list shows that outlet's cases."""
    admin = await users("admin")
    await admin.post("/api/v1/catalog", {"jurisdictions": [{"code": "459900", "name": "测试区"}]})
    user = {
        "username": "jiancha_cs",
        "display_name": "测试监察员",
        "role": "auditor",
        "jurisdiction": "459900",
        "password": "Ceshi-mima-2030",
        "temporary": False,
    }
    await admin.post("/api/v1/users", user)
    auditor = ApiClient(str(server.make_url("")))
    try:
        await auditor.login("jiancha_cs", "Ceshi-mima-2030")
        assert (await auditor.get("/api/v1/cases"))["total"] == 0
        below = {"code": "459901", "name": "测试街道", "parent": "459900"}
        moved = {"code": "BH-HC-01", "name": "海城窗口", "jurisdiction": "459901"}
        await admin.post("/api/v1/catalog", {"jurisdictions": [below], "outlets": [moved]})
        assert (await auditor.get("/api/v1/cases"))["total"] == 2  # the demo's two cases
    finally:
        await auditor.close()


async def test_another_writers_change_shows_within_about_a_second(users, settings):
    """The CLI's way (its own services on the same database, no bus): the node sees the
    new matter within ~1.1 s of the write, polled by requests."""
    clerk = await users("chuangkou")
    assert "T-NEW-01" not in await matter_codes(clerk)
    async with open_services(settings, SystemClock()) as other:
        await other.catalog.import_catalog({"matters": [NEW_MATTER]}, actor="cli")
    written = time.monotonic()

    async def shown() -> bool:
        return "T-NEW-01" in await matter_codes(clerk)

    await wait_until(shown, limit=5, what="the CLI's matter")
    assert time.monotonic() - written < 1.5  # 1 s recheck + a request on a loaded machine


@pytest.mark.redis
async def test_another_nodes_change_arrives_at_once_through_redis(
    aiohttp_server, data_dir, redis_url
):
    """Two nodes on one database and one redis-server, neither rechecking by time: a
    matter imported on one shows on the other (the bus carried the new generation)."""
    settings = Settings(data_dir=data_dir, redis_url=redis_url, announced_addresses=("127.0.0.1",))
    node_a = await aiohttp_server(create_app(settings))
    node_b = await aiohttp_server(create_app(settings))
    for node in (node_a, node_b):
        node.app[CATALOG].recheck_seconds = 3600.0
        node.app[CATALOG].invalidate()
    admin = await node_login(node_a, data_dir, "admin")
    clerk = await node_login(node_b, data_dir, "chuangkou")
    try:
        assert "T-NEW-01" not in await matter_codes(clerk)

        async def shown() -> bool:
            return "T-NEW-01" in await matter_codes(clerk)

        await admin.post("/api/v1/catalog", {"matters": [NEW_MATTER]})
        await wait_until(shown, limit=5, what="node A's matter on node B")
    finally:
        await admin.close()
        await clerk.close()


async def test_a_case_list_costs_one_query(client, as_user):
    """GET /api/v1/cases as a clerk and as an auditor: one page query each (was 7: the
    catalogue was read again and the total counted apart); the login lookup (kept for a
    second) and the catalogue's generation are read at most once a second."""
    statements: list[tuple[float, str]] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        statements.append((time.monotonic(), statement))

    event.listen(client.app[ENGINE].sync_engine, "before_cursor_execute", record)
    reader = client.app[READS].engine
    assert reader is not None  # its case list runs on SQLite's cursor: traced by SQLite
    event.listen(
        reader,
        "connect",
        lambda dbapi, _record: dbapi.set_trace_callback(lambda s: record(None, None, s)),
    )
    reader.dispose()  # connect again, traced
    for username in ("chuangkou", "jiancha"):
        session = await as_user(username)
        assert (await session.get("/api/v1/cases")).status == 200  # a fresh snapshot
        statements.clear()
        started = time.monotonic()
        for _ in range(10):
            response = await session.get("/api/v1/cases")
            assert response.status == 200
            assert (await response.json())["total"] == 2
        elapsed = time.monotonic() - started
        generation = [s for _, s in statements if "counters" in s]
        catalogue = [s for _, s in statements if any(f"FROM {t}" in s for t in CATALOG_TABLES)]
        logins = [s for _, s in statements if "login_sessions" in s]
        pages = [s for _, s in statements if "counters" not in s and "login_sessions" not in s]
        assert len(generation) <= int(elapsed) + 1, (generation, elapsed)
        assert len(logins) <= int(elapsed) + 1, (logins, elapsed)
        assert catalogue == []  # the generation did not move: nothing read again
        assert len(pages) == 10, [s[:80] for s in pages]
