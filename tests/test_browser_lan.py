"""Another PC opens the service by its LAN address, in real headless Chromium against a
real ``coreview serve --host 0.0.0.0``, inside a network namespace of the test's own
(loopback plus a veth address, 10.77.0.1): nothing can leave this machine.

Over HTTPS with the certificate ``coreview tls-cert`` made (Chromium trusts that key
only), the page is a secure context and lists the cameras; over plain HTTP the browser
gives the page no cameras, and it says in Chinese why and what to do — at 1366×768, in
view, in the error colour. serve prints the address to open in both cases."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.async_api import Browser, async_playwright, expect

from signaling.web.middleware import HSTS
from tests import netns
from tests.live import (
    Account,
    Tab,
    chromium_args,
    coreview_command,
    free_port,
    log_tail,
    seed_demo_data,
    server_env,
    stop_process,
    wait_started,
)
from tests.pixels import ERROR_BG, assert_painted, viewport
from tests.test_browser_review import CLERK, assert_clean, assert_moving_picture, create_case

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not netns.available(), reason="needs network namespaces (root)"),
]

START_SECONDS = 30.0
HALL_SCREEN = (1366, 768)


@contextlib.contextmanager
def serve_in(
    ns: netns.Namespace, data_dir: Path, log_path: Path, env: dict[str, str]
) -> Iterator[tuple[int, str]]:
    """``coreview serve --host 0.0.0.0`` inside the namespace; yields (port, what it
    printed on start) once started, stopped by its PID."""
    port = free_port()
    argv = [*coreview_command(), "serve", "--data-dir", str(data_dir)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ns.command([*argv, "--host", "0.0.0.0", "--port", str(port)]),  # noqa: S104
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server_env(env),
        )
    try:
        wait_started(process, log_path, "（仅本机）", START_SECONDS)
        yield port, log_tail(log_path)
    finally:
        stop_process(process)


def spki_hash(cert_path: Path) -> str:
    """base64 SHA-256 of the certificate's public key, as Chromium's
    --ignore-certificate-errors-spki-list takes it (trust that key only)."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


async def open_review_page(browser: Browser, url: str, accounts: dict[str, Account]) -> Tab:
    clerk = await Tab.open(browser, url, size=HALL_SCREEN)
    await clerk.log_in(CLERK, accounts[CLERK].password)
    case_no = await create_case(clerk)
    await clerk.goto(f"/cases/{case_no}/review")
    return clerk


async def test_another_pc_needs_https_and_is_told_so(tmp_path: Path) -> None:
    """Over https://10.77.0.1 the page may use the cameras (listed, previewed, HSTS
    sent); over http://10.77.0.1 it shows the Chinese insecure-context message instead
    of a JavaScript error; serve prints https:// or http://10.77.0.1:PORT to open."""
    data_dir = tmp_path / "var"
    accounts = seed_demo_data(data_dir)
    made = subprocess.run(  # noqa: ASYNC221 - before anything else runs
        [*coreview_command(), "tls-cert", "--data-dir", str(data_dir), "--host", netns.LAN_ADDRESS],
        capture_output=True,
        text=True,
        timeout=60,
        env=server_env(),
        check=True,
    )
    assert netns.LAN_ADDRESS in made.stdout
    cert, key = data_dir / "tls" / "cert.pem", data_dir / "tls" / "key.pem"
    tls_env = {"COREVIEW_TLS_CERT": str(cert), "COREVIEW_TLS_KEY": str(key)}
    args = chromium_args(
        [
            "--use-fake-device-for-media-stream=device-count=2",
            "--use-fake-ui-for-media-stream",
            f"--ignore-certificate-errors-spki-list={spki_hash(cert)}",
        ]
    )
    with netns.network_namespace() as ns:
        chromium = ns.wrapper(tmp_path, "/usr/bin/chromium")
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(chromium), args=args)
            try:
                # HTTPS by the LAN address: a secure context, cameras listed.
                with serve_in(ns, data_dir, tmp_path / "https.log", tls_env) as (port, printed):
                    url = f"https://{netns.LAN_ADDRESS}:{port}"
                    assert re.search(rf"^  {re.escape(url)}$", printed, re.M), printed
                    assert "未启用 HTTPS" not in printed
                    clerk = await open_review_page(browser, url, accounts)
                    assert all(shown.headers.get("strict-transport-security") == HSTS
                               for shown in clerk.shown)  # fmt: skip
                    assert await clerk.page.evaluate("window.isSecureContext") is True
                    picker = clerk.page.get_by_label("高拍仪（文档摄像头）").locator("option")
                    await expect(picker).to_have_count(2)
                    await expect(clerk.page.locator("#document-info")).to_contain_text("×")
                    await assert_moving_picture(clerk.page, "#document-preview")
                    await expect(clerk.page.locator("#device-status")).to_be_hidden()
                    await viewport(clerk.page, "lan-01-https-review-1366x768")
                    assert_clean(clerk)
                    await clerk.close()

                # Plain HTTP by the LAN address: told in Chinese what to do.
                with serve_in(ns, data_dir, tmp_path / "http.log", {}) as (port, printed):
                    url = f"http://{netns.LAN_ADDRESS}:{port}"
                    assert re.search(rf"^  {re.escape(url)}$", printed, re.M), printed
                    assert "注意：未启用 HTTPS" in printed
                    clerk = await open_review_page(browser, url, accounts)
                    assert "strict-transport-security" not in clerk.shown[-1].headers
                    status = clerk.page.locator("#device-status")
                    await expect(status).to_contain_text(
                        f"本页面经未加密的 http:// 地址（{netns.LAN_ADDRESS}:{port}）打开，"
                        "浏览器不允许网页使用摄像头和麦克风"
                    )
                    await expect(status).to_contain_text("请改用 https:// 开头的地址")
                    await expect(clerk.page.locator("#document-info")).to_have_text(
                        "无法使用（见上方说明）"
                    )
                    await expect(clerk.page.get_by_text("Cannot read properties")).to_have_count(0)
                    await expect(
                        clerk.page.get_by_role("button", name="开始远程审办")
                    ).to_be_disabled()
                    shot = await viewport(clerk.page, "lan-02-http-insecure-1366x768")
                    await assert_painted(clerk.page, status, shot, ERROR_BG)
                    # the browser itself warns that it ignores COOP on an insecure origin
                    clerk.console_errors = [
                        e for e in clerk.console_errors if "Cross-Origin-Opener-Policy" not in e
                    ]
                    assert_clean(clerk)
                    await clerk.close()
            finally:
                await browser.close()
