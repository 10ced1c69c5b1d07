"""Live parts for end-to-end tests: a real ``coreview serve`` process on loopback and a
real headless Chromium driven by Playwright.

A test module opts in with ``pytest_plugins = ("tests.live",)``; that registers the
fixtures below (``live_server``, ``live_template``, ``browser``, ``chromium_extra_args``)
and the report hook that adds the tail of the server's log to the report of a failing
test.

- ``live_server``: a copy of a data directory seeded once per run by ``coreview
  demo-data --json`` (``live_template``), then ``coreview serve`` on a free loopback
  port, ready once ``GET /healthz`` answers ``{"status": "ok"}``. Its output goes to
  ``<tmp_path>/coreview-server.log``. Stopped by its PID (terminate, then kill after a
  deadline) whatever the test's outcome. A module that needs settings overrides the
  ``live_server_env`` fixture (``COREVIEW_*`` names).
- ``browser``: Debian's ``/usr/bin/chromium`` through Playwright's async API, closed in
  teardown. A module that needs more switches (fake cameras, …) overrides the
  ``chromium_extra_args`` fixture; ``--disable-features``/``--enable-features`` given
  there are merged with Playwright's own lists (see ``chromium_args``).
- ``Tab``: one page of a browser context that records, for every page it shows, the HTTP
  status, the headers and the HTML, and collects console errors (which include CSP
  violations) and uncaught exceptions.

Test modules import from here before pytest loads it as a plugin, so it opts out of
assertion rewriting (which would otherwise warn, and warnings are errors):
PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Page,
    Response,
    async_playwright,
)

CHROMIUM = Path("/usr/bin/chromium")
BASE_CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# Playwright (1.65) passes its own --disable-features/--enable-features lists, and
# Chromium honours only the last occurrence of a switch. Copied from playwright-core's
# chromiumSwitches.ts so that a test's extra features are added to these rather than
# replacing them; refresh the copy when Playwright is upgraded.
PLAYWRIGHT_FEATURES = {
    "--disable-features": (
        "AvoidUnnecessaryBeforeUnloadCheckSync",
        "DestroyProfileOnBrowserClose",
        "HttpsUpgrades",
        "HttpsFirstBalancedModeAutoEnable",
        "LensOverlay",
        "MediaRouter",
        "PaintHolding",
        "ThirdPartyStoragePartitioning",
        "AvoidCorsURLLoaderRestartOnRedirect",
        "TcpPortRandomizationWin",
        "OptimizationHints",
        "NetworkTimeServiceQuerying",
        "AimEnabled",
        "PreconnectToSearch",
        "msForceBrowserSignIn",
        "msEdgeUpdateLaunchServicesPreferredVersion",
    ),
    "--enable-features": ("CDPScreenshotNewSurface", "SkipListAccountsWithoutGaiaCookies"),
}
SERVER_START_SECONDS = 30.0
SERVER_STOP_SECONDS = 10.0
SEED_SECONDS = 60.0
LOG_TAIL_LINES = 60


# -- the coreview server ------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """A demo account as ``coreview demo-data --json`` prints it."""

    username: str
    password: str
    role: str
    outlet: str | None = None
    department: str | None = None


@dataclass
class LiveServer:
    """A running ``coreview serve`` process."""

    url: str
    """Base URL, e.g. ``http://127.0.0.1:40123``."""
    port: int
    data_dir: Path
    log_path: Path
    """The server's stdout and stderr together."""
    accounts: dict[str, Account]
    """Demo accounts by username, with their passwords."""
    process: subprocess.Popen[bytes]

    def password(self, username: str) -> str:
        return self.accounts[username].password

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return log_tail(self.log_path, lines)


def coreview_command() -> list[str]:
    """The installed ``coreview`` script beside this interpreter, else ``python -m``."""
    script = Path(sys.executable).with_name("coreview")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "coreview.cli"]


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without COREVIEW_* settings (tests pass theirs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COREVIEW_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text("utf-8", errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def serving(
    tmp_path: Path, env: dict[str, str], timeout: float = 30.0
) -> Iterator[tuple[int, Path]]:
    """``coreview serve`` on a fresh data dir and a loopback port with ``env`` (no demo
    data); yields (port, log path) once it has said it started; stopped by its PID."""
    port = free_port()
    log_path = tmp_path / "serve.log"
    listen = ("--host", "127.0.0.1", "--port", str(port))
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [*coreview_command(), "serve", "--data-dir", str(tmp_path / "var"), *listen],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server_env(env),
        )
    try:
        wait_started(process, log_path, "coreview 已启动", timeout)
        yield port, log_path
    finally:
        stop_process(process)


def wait_started(
    process: subprocess.Popen[bytes], log_path: Path, marker: str, timeout: float = 30.0
) -> None:
    """Until the server's log shows ``marker``; fails with the log's tail if it exits
    or takes longer than ``timeout``."""
    end = time.monotonic() + timeout
    while marker not in log_tail(log_path):
        assert time.monotonic() < end, f"not started:\n{log_tail(log_path)}"
        with contextlib.suppress(subprocess.TimeoutExpired):
            code = process.wait(timeout=0.05)
            raise AssertionError(f"exited with {code}:\n{log_tail(log_path)}")


def seed_demo_data(data_dir: Path, env: dict[str, str] | None = None) -> dict[str, Account]:
    """Run ``coreview demo-data --json`` on ``data_dir``; return the demo accounts."""
    data_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [*coreview_command(), "demo-data", "--data-dir", str(data_dir), "--json"],
        capture_output=True,
        env=server_env(env),
        timeout=SEED_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"coreview demo-data failed ({done.returncode}):\n"
            + done.stderr.decode("utf-8", errors="replace")
        )
    listed = json.loads(done.stdout)["accounts"]
    return {a["username"]: Account(**a) for a in listed}


def healthy(port: int) -> bool:
    """True once ``GET /healthz`` answers 200 ``{"status": "ok"}``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        body = response.read()
    except OSError:
        return False
    finally:
        connection.close()
    return response.status == 200 and json.loads(body) == {"status": "ok"}


def stop_process(process: subprocess.Popen[bytes], deadline: float = SERVER_STOP_SECONDS) -> None:
    """Terminate by PID; kill if it has not exited within ``deadline`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=deadline)


def start_server(
    data_dir: Path,
    log_path: Path,
    accounts: dict[str, Account],
    *,
    env: dict[str, str] | None = None,
    deadline: float = SERVER_START_SECONDS,
) -> LiveServer:
    """Start ``coreview serve`` on a free loopback port and wait until it is healthy.

    Between two probes of /healthz it waits on the process itself, so a server that
    dies (a taken port, a bad setting) is noticed at once, not at the deadline."""
    port = free_port()
    command = [
        *coreview_command(),
        "serve",
        "--data-dir",
        str(data_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server_env(env),
        )
    server = LiveServer(f"http://127.0.0.1:{port}", port, data_dir, log_path, accounts, process)
    try:
        end = time.monotonic() + deadline
        while not healthy(port):
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"coreview serve not healthy within {deadline:.0f} s")
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = process.wait(timeout=min(0.05, remaining))
                raise RuntimeError(f"coreview serve exited with {code} before it was healthy")
    except BaseException as exc:
        stop_process(process)
        if isinstance(exc, RuntimeError):
            raise RuntimeError(f"{exc}; log tail:\n{server.log_tail()}") from exc
        raise
    return server


@dataclass(frozen=True)
class Seeded:
    """A data directory seeded by ``coreview demo-data``, and its accounts."""

    data_dir: Path
    accounts: dict[str, Account]


@contextlib.contextmanager
def running_server(
    workdir: Path,
    *,
    env: dict[str, str] | None = None,
    template: Seeded | None = None,
    attempts: int = 3,
) -> Iterator[LiveServer]:
    """A seeded server in ``workdir`` (data in ``var/``, log in ``coreview-server.log``),
    stopped on exit: its data a copy of ``template``, else seeded here. A port taken
    between choosing it and binding it is retried."""
    data_dir = workdir / "var"
    log_path = workdir / "coreview-server.log"
    if template is None:
        accounts = seed_demo_data(data_dir, env)
    else:
        shutil.copytree(template.data_dir, data_dir)
        accounts = template.accounts
    for attempt in range(1, attempts + 1):
        try:
            server = start_server(data_dir, log_path, accounts, env=env)
            break
        except RuntimeError:
            if attempt == attempts or "address already in use" not in log_tail(log_path):
                raise
    try:
        yield server
    finally:
        stop_process(server.process)


_SERVERS = pytest.StashKey[list[LiveServer]]()


LOOPBACK_MEDIA = {"COREVIEW_ANNOUNCED_ADDRESSES": "127.0.0.1"}
"""Media announced on 127.0.0.1: aioice skips it when gathering host candidates
(docs/design.md, "Testing")."""
FAKE_CAMERAS = (
    "--use-fake-device-for-media-stream=device-count=3",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
)
"""Three fake cameras (face, 高拍仪, a spare) granted without a prompt; WebRTC on loopback."""


@pytest.fixture
def live_server_env() -> dict[str, str]:
    """The server's ``COREVIEW_*`` environment; a module that needs other settings
    overrides this fixture (starting from ``LOOPBACK_MEDIA``)."""
    return LOOPBACK_MEDIA


@pytest.fixture(scope="session")
def live_template(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """The demo data, seeded once per run by ``coreview demo-data --json``."""
    data_dir = tmp_path_factory.mktemp("live-template") / "var"
    return Seeded(data_dir, seed_demo_data(data_dir))


@pytest.fixture
def live_server(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    live_server_env: dict[str, str],
    live_template: Seeded,
) -> Iterator[LiveServer]:
    """A real ``coreview serve`` on a copy of the demo data, on loopback, for one test."""
    with running_server(tmp_path, env=live_server_env, template=live_template) as server:
        request.node.stash.setdefault(_SERVERS, []).append(server)
        yield server


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On a failure, add the tail of each live server's log to the test's report."""
    report = yield
    if report.failed:
        for server in item.stash.get(_SERVERS, []):
            report.sections.append(
                (f"coreview server log, last lines ({server.log_path})", server.log_tail())
            )
    return report


# -- Chromium -----------------------------------------------------------------------------


def chromium_args(extra: Sequence[str] = ()) -> list[str]:
    """The base switches plus ``extra``; feature lists are merged into one switch each,
    together with Playwright's own, and put last (the last occurrence wins)."""
    args = list(BASE_CHROMIUM_ARGS)
    features: dict[str, list[str]] = {}
    for arg in extra:
        name, sep, value = arg.partition("=")
        if sep and name in PLAYWRIGHT_FEATURES:
            features.setdefault(name, []).extend(v for v in value.split(",") if v)
        elif arg not in args:
            args.append(arg)
    for name, added in features.items():
        merged = dict.fromkeys([*PLAYWRIGHT_FEATURES[name], *added])
        args.append(f"{name}={','.join(merged)}")
    return args


@contextlib.asynccontextmanager
async def launch_chromium(extra_args: Sequence[str] = ()) -> AsyncIterator[Browser]:
    """Headless Debian Chromium (never a downloaded one), closed on exit."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=chromium_args(extra_args)
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def chromium_extra_args() -> Sequence[str]:
    """Chromium's switches; a module that needs others overrides this fixture."""
    return FAKE_CAMERAS


@pytest.fixture
async def browser(chromium_extra_args: Sequence[str]) -> AsyncIterator[Browser]:
    """A headless Chromium for one test."""
    async with launch_chromium(chromium_extra_args) as launched:
        yield launched


# -- pages --------------------------------------------------------------------------------


@dataclass
class Shown:
    """One document the tab showed (after redirects)."""

    url: str
    status: int
    headers: dict[str, str]
    html: str
    redirects: list[tuple[int, dict[str, str]]]
    """Status and headers of each redirect that led here (e.g. a form's 302)."""


@dataclass
class Tab:
    """A page of its own browser context, as one person at one desk uses it."""

    context: BrowserContext
    page: Page
    base_url: str
    shown: list[Shown] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    @classmethod
    async def open(
        cls,
        browser: Browser,
        base_url: str,
        timeout_ms: float = 15_000,
        *,
        size: tuple[int, int] = (1280, 800),
        permissions: Sequence[str] | None = None,
    ) -> Tab:
        """A new context showing ``size`` (CSS pixels); ``permissions`` granted to the
        site (e.g. camera, microphone) when the browser has no fake-UI switch."""
        context = await browser.new_context(
            base_url=base_url,
            locale="zh-CN",
            viewport={"width": size[0], "height": size[1]},
            permissions=list(permissions) if permissions is not None else None,
        )
        context.set_default_timeout(timeout_ms)
        page = await context.new_page()
        tab = cls(context, page, base_url)
        page.on("console", tab._on_console)
        page.on("pageerror", tab._on_page_error)
        return tab

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location.get("url") or self.page.url
            self.console_errors.append(f"{where}: {message.text}")

    def _on_page_error(self, error: Error) -> None:
        self.console_errors.append(f"{self.page.url}: uncaught {error}")

    async def goto(self, path: str) -> Shown:
        """Open ``path`` as if typed into the address bar."""
        response = await self.page.goto(path)
        if response is None:
            raise AssertionError(f"no response for {path}")
        return await self._record(response)

    async def follow(self, action: Callable[[], Awaitable[None]]) -> Shown:
        """Run ``action`` (a click on a link or a submit button) and record the page it
        leads to."""
        async with self.page.expect_navigation() as navigation:
            await action()
        response = await navigation.value
        if response is None:
            raise AssertionError(f"no response after navigating to {self.page.url}")
        return await self._record(response)

    async def _record(self, response: Response) -> Shown:
        redirects: list[tuple[int, dict[str, str]]] = []
        previous = response.request.redirected_from
        while previous is not None:
            before = await previous.response()
            if before is not None:
                redirects.insert(0, (before.status, await before.all_headers()))
            previous = previous.redirected_from
        shown = Shown(
            url=response.url,
            status=response.status,
            headers=await response.all_headers(),
            html=await response.text(),
            redirects=redirects,
        )
        self.shown.append(shown)
        return shown

    async def log_in(self, username: str, password: str) -> Shown:
        """Fill the login form the way a person does and submit it."""
        await self.goto("/login")
        await self.page.get_by_label("用户名").fill(username)
        await self.page.get_by_label("密码").fill(password)
        return await self.follow(self.page.get_by_role("button", name="登录").click)

    async def screenshot(self, name: str) -> Path | None:
        """A full-page PNG into $COREVIEW_SCREENSHOTS, if that is set."""
        folder = os.environ.get("COREVIEW_SCREENSHOTS")
        if not folder:
            return None
        path = Path(folder) / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(path), full_page=True)
        return path

    async def close(self) -> None:
        await self.context.close()
