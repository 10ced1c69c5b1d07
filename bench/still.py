"""Capture → display of a full-resolution document still (高拍仪照片), on loopback.

``python -m bench.still [--rounds N] [--width 4000 --height 3000]`` runs coreview in this
process (demo data, SQLite, media on 127.0.0.1) and two pages of one headless Chromium:
the clerk, whose document camera is Chromium's file camera playing a generated
``width``×``height`` clip (so ``takePhoto()`` returns that size), and the approver. Each
round the clerk clicks 拍摄照片; the page takes the photo, hashes it (SHA-256), uploads
it; the server checks, decodes, stores and announces it; the approver's gallery loads
it. The pages stamp each step (ms since the epoch, one clock on one machine):

    capture   click → takePhoto() resolved           (the camera)
    announce  photo in hand → still_added at the approver (hash, upload, server, push)
    load      still_added → the approver's <img> loaded  (download and decode)
    total     click → loaded;  after_photo: photo in hand → loaded

Prints a line per round, a summary, and a JSON object as the last line."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright

from coreview.app import create_app
from recorder.clock import SystemClock
from signaling.id_numbers import check_digit
from signaling.node.demo import ACCOUNTS_FILE, seed
from signaling.node.services import open_services
from signaling.settings import Settings

CHROMIUM = "/usr/bin/chromium"
FFMPEG = "/usr/bin/ffmpeg"
CLERK, APPROVER = "chuangkou", "shenpi"
WAIT_MS = 30_000
GOAL_MS = 1500
MAX_ATTEMPTS = 4
"""Captures per counted round at most (a capture of a frame taken before is not)."""
ID_FIRST17 = "45050219880214321"

CANVAS_FACE_CAMERA = """(() => {
  const devices = navigator.mediaDevices;
  const listDevices = devices.enumerateDevices.bind(devices);
  const open = devices.getUserMedia.bind(devices);
  const face = { deviceId: "canvas-face", groupId: "canvas", kind: "videoinput",
                 label: "canvas face camera", toJSON() { return this; } };
  devices.enumerateDevices = async () => [face, ...(await listDevices())];
  devices.getUserMedia = async (constraints) => {
    const wanted = constraints?.video?.deviceId?.exact;
    if (wanted !== "canvas-face") return open(constraints);
    const canvas = document.createElement("canvas");
    canvas.width = 640;
    canvas.height = 480;
    const context = canvas.getContext("2d");
    let tick = 0;
    setInterval(() => {
      tick += 1;
      context.fillStyle = "#3c6e91";
      context.fillRect(0, 0, 640, 480);
      context.fillStyle = "#f5d6ba";
      context.fillRect(200 + (tick % 40), 120, 240, 260);
    }, 66);
    return canvas.captureStream(15);
  };
})();"""
"""An init script: a canvas face camera listed before Chromium's (file-backed) camera,
so a page picks face = canvas, document = the file camera (a file camera is always the
only device Chromium offers)."""


def make_camera_file(path: Path, size: tuple[int, int], frames: int = 3) -> Path:
    """A Y4M clip of a moving test pattern at ``size``, 5 frames a second (generated per
    run, never kept: ~18 MB a frame at 12 MP)."""
    subprocess.run(  # noqa: S603 - fixed arguments
        [
            FFMPEG, "-loglevel", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc2=size={size[0]}x{size[1]}:rate=5",
            "-frames:v", str(frames), "-pix_fmt", "yuv420p", str(path),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip
    return path


def chromium_args(camera: Path) -> list[str]:
    return [
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}",
        "--allow-loopback-in-peer-connection",
    ]


async def open_page(browser: Browser, url: str, username: str, password: str) -> Page:
    context = await browser.new_context(base_url=url, locale="zh-CN")
    context.set_default_timeout(WAIT_MS)
    page = await context.new_page()
    await page.goto("/login")
    await page.get_by_label("用户名").fill(username)
    await page.get_by_label("密码").fill(password)
    async with page.expect_navigation():
        await page.get_by_role("button", name="登录").click()
    return page


async def live_session(clerk: Page, approver: Page) -> None:
    """The clerk creates a case and starts; the approver accepts from the queue."""
    await clerk.goto("/cases/new")
    await clerk.get_by_label("事项").select_option("LZ-SCJG-0101")
    await clerk.get_by_label("申请人姓名").fill("周基准")
    await clerk.get_by_label("居民身份证号").fill(ID_FIRST17 + check_digit(ID_FIRST17))
    await clerk.get_by_label("联系电话").fill("13907795678")
    async with clerk.expect_navigation():
        await clerk.get_by_role("button", name="受理并创建案件").click()
    case_no = await clerk.locator("h1 .mono").inner_text()
    await approver.goto("/queue")
    await clerk.goto(f"/cases/{case_no}/review")
    await clerk.get_by_label("申请人已知悉并同意录音录像").check()
    await clerk.get_by_role("button", name="开始远程审办").click()
    await clerk.wait_for_url("**/sessions/*")
    row = approver.locator(f'#queue tr[data-case-no="{case_no}"]')
    await row.get_by_role("button", name="接入").click()
    await approver.wait_for_url("**/sessions/*")
    await clerk.locator("#still-take:enabled").wait_for()


async def one_round(clerk: Page, approver: Page, index: int) -> dict[str, Any] | None:
    """One capture; None if the camera showed a frame already taken (the file camera
    loops a few frames): the server answers the stored still and nothing new shows."""
    taken_before = await clerk.locator("#gallery li.still").count()
    await clerk.evaluate("() => { document.querySelector('#still-status').textContent = ''; }")
    await clerk.get_by_role("button", name="拍摄照片").click()
    await clerk.wait_for_function(
        "() => document.querySelector('#still-status').textContent.startsWith('已上传')",
        timeout=WAIT_MS,
    )
    if await clerk.locator("#gallery li.still").count() == taken_before:
        return None
    item = approver.locator(f"#gallery li.still:nth-child({index})")
    await approver.wait_for_function(
        "(n) => document.querySelector(`#gallery li.still:nth-child(${n})`)?.dataset.loadedAt",
        arg=index,
        timeout=WAIT_MS,
    )
    digest = await item.get_attribute("data-sha256")
    taken = clerk.locator(f'#gallery li[data-sha256="{digest}"]')
    await taken.wait_for()
    stamps = {
        "capture_started": await taken.get_attribute("data-capture-started"),
        "photo_taken": await taken.get_attribute("data-photo-taken"),
        "added": await item.get_attribute("data-added-at"),
        "loaded": await item.get_attribute("data-loaded-at"),
    }
    t = {k: int(v or 0) for k, v in stamps.items()}
    size = await item.locator("img").evaluate("(img) => [img.naturalWidth, img.naturalHeight]")
    answer: dict[str, Any] = await approver.evaluate(
        "async (url) => { const r = await fetch(url); return {bytes: (await r.blob()).size}; }",
        await item.locator("img").get_attribute("src"),
    )
    return {
        "size": f"{size[0]}x{size[1]}",
        "bytes": answer["bytes"],
        "capture_ms": t["photo_taken"] - t["capture_started"],
        "announce_ms": t["added"] - t["photo_taken"],
        "load_ms": t["loaded"] - t["added"],
        "total_ms": t["loaded"] - t["capture_started"],
        "after_photo_ms": t["loaded"] - t["photo_taken"],
    }


async def run(rounds: int, size: tuple[int, int]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-still-") as temp:
        work = Path(temp)
        # distinct frames, so that most captures are new stills
        camera = make_camera_file(work / "document.y4m", size, 2 * rounds + 3)
        data_dir = work / "var"
        settings = Settings(data_dir=data_dir, announced_addresses=("127.0.0.1",))
        async with open_services(settings, SystemClock()) as services:
            await seed(services, data_dir)
        accounts = json.loads((data_dir / ACCOUNTS_FILE).read_text("utf-8"))
        password = {a["username"]: a["password"] for a in accounts}
        runner = web.AppRunner(create_app(settings), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}"
        results: list[dict[str, Any]] = []
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, args=chromium_args(camera)
                )
                try:
                    clerk = await open_page(browser, url, CLERK, password[CLERK])
                    await clerk.context.add_init_script(CANVAS_FACE_CAMERA)
                    approver = await open_page(browser, url, APPROVER, password[APPROVER])
                    await live_session(clerk, approver)
                    attempts = 0
                    while len(results) < rounds and attempts < MAX_ATTEMPTS * rounds:
                        attempts += 1
                        started = time.monotonic()
                        found = await one_round(clerk, approver, len(results) + 1)
                        if found is None:
                            print("(a frame taken before: not counted)", flush=True)
                            continue
                        result = found
                        results.append(result)
                        print(
                            f"round {len(results)}: {result['size']} {result['bytes']} B  "
                            f"capture {result['capture_ms']} ms  "
                            f"announce {result['announce_ms']} ms  "
                            f"load {result['load_ms']} ms  total {result['total_ms']} ms  "
                            f"(wall {1000 * (time.monotonic() - started):.0f} ms)",
                            flush=True,
                        )
                finally:
                    await browser.close()
        finally:
            await runner.cleanup()
    return summarise(results, size)


def summarise(results: list[dict[str, Any]], size: tuple[int, int]) -> dict[str, Any]:
    def stat(key: str) -> dict[str, float]:
        values = [r[key] for r in results]
        return {"p50": statistics.median(values), "max": max(values)}

    total = stat("total_ms")
    return {
        "rounds": len(results),
        "size": f"{size[0]}x{size[1]}",
        "bytes": results[0]["bytes"] if results else 0,
        "capture_ms": stat("capture_ms"),
        "announce_ms": stat("announce_ms"),
        "load_ms": stat("load_ms"),
        "total_ms": total,
        "after_photo_ms": stat("after_photo_ms"),
        "goal_ms": GOAL_MS,
        "within_goal": total["max"] <= GOAL_MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    args = parser.parse_args()
    summary = asyncio.run(run(args.rounds, (args.width, args.height)))
    for key in ("capture_ms", "announce_ms", "load_ms", "total_ms", "after_photo_ms"):
        figures = summary[key]
        print(f"{key:>15}: p50 {figures['p50']:.0f} ms, max {figures['max']:.0f} ms")
    print(json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    main()
