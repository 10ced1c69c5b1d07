"""Review actions in real headless Chromium against a real ``coreview serve``: the clerk
records the applicant's consent before starting, chat survives a reload, the approver
marks every material and decides (reason required, confirmed), the clerk sees each mark
and the decision as they happen, the clerk's screen takes the applicant's rating at the
end, and the case page shows all of it — with a playable recording and a still served
from the evidence store — to the clerk, the approver and the auditor.

Same fake devices as tests/test_browser_review.py."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import re

import av
import numpy as np
import pytest
from PIL import Image
from playwright.async_api import Browser, expect
from sqlalchemy import select

from recorder.store import EvidenceStore
from signaling.settings import Settings
from signaling.storage.db import create_engine
from signaling.storage.tables import cases, evidence_files
from tests.live import LiveServer, Tab
from tests.test_browser_review import (
    APPROVER,
    CLERK,
    DOCUMENT_CAMERA,
    SESSION_URL,
    assert_clean,
    create_case,
    open_queue,
)

pytest_plugins = ("tests.live",)
pytestmark = pytest.mark.browser

CONSENT = "申请人已知悉并同意录音录像"
LOADED = """(selector) => {
  const media = document.querySelector(selector);
  return Boolean(media) && media.readyState >= 1 && media.duration > 0;
}"""


def tiny_webm() -> bytes:
    """One second of VP8 in WebM, as a playable file of a recording is."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            picture = np.full((48, 64, 3), i * 20, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def tiny_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (30, 90, 200)).save(out, "JPEG")
    return out.getvalue()


async def file_evidence(server: LiveServer, case_no: str, session_id: str) -> None:
    """A playable recording chunk and a still, through the server's own store and
    database, as the recorder and the still upload file them."""
    store = EvidenceStore(server.data_dir / "evidence")
    engine = create_engine(Settings(data_dir=server.data_dir).sqlalchemy_url)
    try:
        async with engine.begin() as conn:
            case_id = await conn.scalar(select(cases.c.id).where(cases.c.case_no == case_no))
            for data, role, extra in (
                (tiny_webm(), "playable", {"source": "document", "seconds": 1.0,
                                          "track": f"{session_id}:{CLERK}:document:1",
                                          "meta": {"codec": "VP8", "kind": "video"}}),
                (tiny_jpeg(), "still", {"source": "document",
                                        "meta": {"width": 40, "height": 30}}),
            ):  # fmt: skip
                stored = await asyncio.to_thread(store.put, data)
                await conn.execute(
                    evidence_files.insert().values(
                        sha256=stored.sha256,
                        case_id=case_id,
                        session_id=session_id,
                        role=role,
                        participant=CLERK,
                        bytes=stored.bytes,
                        created_at=dt.datetime.now(dt.UTC),
                        **extra,
                    )
                )
    finally:
        await engine.dispose()


async def test_consent_marks_decision_rating_and_case_page_in_chromium(
    live_server: LiveServer, browser: Browser
) -> None:
    """Consent before the start, chat kept over a reload, every material marked (one
    twice) and seen live by the clerk, 补正 refused without a reason then confirmed and
    shown to both, the rating with its reason and follow-up after the end (kept over a
    reload), and the case page with consent, marks, decision, rating, follow-up, a
    playable recording, a still and the event list in order, for all three roles."""
    clerk = await Tab.open(browser, live_server.url)
    approver = await Tab.open(browser, live_server.url)
    auditor = await Tab.open(browser, live_server.url)
    tabs = (clerk, approver, auditor)
    try:
        await clerk.log_in(CLERK, live_server.password(CLERK))
        await approver.log_in(APPROVER, live_server.password(APPROVER))
        await auditor.log_in("jiancha", live_server.password("jiancha"))
        await open_queue(approver)
        case_no = await create_case(clerk)

        # Consent: the text is shown, and starting waits for the checkbox.
        page = clerk.page
        await clerk.goto(f"/cases/{case_no}/review")
        await page.get_by_label("高拍仪（文档摄像头）").select_option(label=DOCUMENT_CAMERA)
        await expect(page.locator("#document-info")).to_contain_text("1920×1080")
        await expect(page.locator("#consent-text")).to_contain_text("同意录音录像")
        start = page.get_by_role("button", name="开始远程审办")
        await expect(start).to_be_disabled()
        await page.get_by_label(CONSENT).check()
        await expect(start).to_be_enabled()
        await start.click()
        await page.wait_for_url(SESSION_URL)
        session_path = page.url.removeprefix(live_server.url)
        session_id = session_path.rsplit("/", 1)[1]
        row = approver.page.locator(f'#queue tr[data-case-no="{case_no}"]')
        await row.get_by_role("button", name="接入").click()
        await approver.page.wait_for_url(f"{live_server.url}{session_path}")
        await expect(page.locator("#state-name")).to_have_text("审办进行中")

        # Chat is kept: after a reload the clerk sees what was said.
        await page.get_by_label("消息").fill("请审查申请材料")
        await page.get_by_label("消息").press("Enter")
        said = f'#chat-log li[data-sender="{CLERK}"]'
        await expect(approver.page.locator(said)).to_contain_text("请审查申请材料")
        await page.reload()
        await expect(page.locator(said)).to_have_count(1)
        await expect(page.locator(said)).to_contain_text("请审查申请材料")

        # The approver marks each material 齐全; the clerk sees each mark at once.
        items = approver.page.locator("#checklist li")
        await expect(items.first).to_be_visible()
        count = await items.count()
        assert count >= 2
        await expect(page.locator("#checklist li")).to_have_count(count)
        await expect(page.locator("#checklist button")).to_have_count(0)  # read-only
        for index in range(count):
            item = items.nth(index)
            material = await item.get_attribute("data-material")
            await item.get_by_role("button", name="齐全").click()
            shown = page.locator(f'#checklist li[data-material="{material}"] .result')
            await expect(shown).to_have_text("齐全")
        first = items.first
        first_id = await first.get_attribute("data-material")
        await first.get_by_role("textbox").fill("第二页反光")
        await first.get_by_role("button", name="不清晰").click()
        await expect(
            page.locator(f'#checklist li[data-material="{first_id}"] .result')
        ).to_have_text("不清晰：第二页反光")

        # 补正 needs a reason; then a confirmation; both see the decision.
        form = approver.page.locator("#decision-form")
        await form.get_by_role("radio", name="补正").check()
        await form.get_by_role("button", name="提交决定").click()
        await expect(approver.page.locator("#decision-alert")).to_have_text("补正须填写理由。")
        await form.get_by_role("textbox").fill("请补充股东会决议")
        await form.get_by_role("button", name="提交决定").click()
        await expect(approver.page.locator("#decision-question")).to_contain_text(
            "确认审批决定：补正"
        )
        await approver.page.get_by_role("button", name="确认提交").click()
        for tab in (clerk, approver):
            await expect(tab.page.locator("#decision-banner")).to_have_text(
                "已决定：补正（请补充股东会决议）"
            )
        await expect(form).to_be_hidden()
        await approver.screenshot("actions-01-approver-decided")

        # The approver ends; the clerk's screen asks the applicant for a rating.
        await approver.page.get_by_role("button", name="结束审办").click()
        await approver.page.get_by_role("button", name="确认结束").click()
        rating = page.locator("#rating-form")
        await expect(rating).to_be_visible()
        await rating.get_by_label("不满意", exact=True).check()
        await expect(page.locator("#rating-reason-field")).to_be_visible()
        await rating.get_by_role("button", name="提交评价").click()
        await expect(page.locator("#rating-alert")).to_have_text("请填写不满意的原因。")
        await page.locator("#rating-reason").fill("等候时间较长")
        await rating.get_by_role("button", name="提交评价").click()
        done = page.locator("#rating-done")
        await expect(done).to_contain_text("已评价：不满意")
        await expect(done).to_contain_text("回访核实")
        await clerk.screenshot("actions-02-clerk-rated")
        await page.reload()
        await expect(done).to_contain_text("已评价：不满意")
        await expect(rating).to_be_hidden()

        # The case page shows it all, to each role.
        await file_evidence(live_server, case_no, session_id)
        for tab in tabs:
            await tab.goto(f"/cases/{case_no}")
            view = tab.page
            await expect(view.locator("h1 .status")).to_have_text("待补正")
            await expect(view.locator("#consent")).to_contain_text("申请人已同意录音录像")
            await expect(view.locator("#decision")).to_contain_text("补正")
            await expect(view.locator("#decision")).to_contain_text("请补充股东会决议")
            await expect(view.locator("#rating")).to_contain_text("不满意")
            await expect(view.locator("#followup")).to_contain_text("回访核实")
            await expect(view.locator("#marks tbody tr")).to_have_count(count + 1)
            await expect(view.locator("#marks tr.superseded")).to_have_count(1)
            # chunks load only when played (a long session has hundreds): play one
            first = view.locator("#recordings video").first
            assert await first.get_attribute("preload") == "none"
            await first.evaluate("(video) => { video.preload = 'metadata'; video.load(); }")
            await view.wait_for_function(LOADED, arg="#recordings video", polling=100)
            still = view.locator("#stills img")
            await still.scroll_into_view_if_needed()  # thumbnails load lazily
            await still.evaluate("(img) => img.decode()")  # loaded and decodable
            assert await still.evaluate("(img) => img.naturalWidth") == 40
            kinds = await view.locator("#events tbody tr").evaluate_all(
                "(rows) => rows.map((r) => r.dataset.kind)"
            )
            order = ["consent_recorded", "session_accepted", "material_marked", "decision_recorded"]
            assert [kinds.index(k) for k in order] == sorted(kinds.index(k) for k in order)
            assert kinds.index("rating_recorded") > kinds.index("session_ended")
            decided = view.locator('#events tr[data-kind="decision_recorded"]')
            await expect(decided).to_contain_text("作出审批决定")
            await expect(decided).to_contain_text("补正，理由：请补充股东会决议")
        await auditor.screenshot("actions-03-auditor-case-page")
        assert re.fullmatch(r"[0-9a-f-]{36}", session_id)
        assert_clean(*tabs)
    finally:
        for tab in tabs:
            await tab.close()
