"""The control plane under load: coreview's API against a bare aiohttp app, in one run.

    python -m bench.api [--seconds 10] [--rounds 2] [--clients 40]

Two server processes start side by side (on core 0 when the machine has 2+ cores; on the
event loop `coreview serve` uses, uvloop where installed): a
bare aiohttp app answering a constant JSON, and coreview's ``create_app`` on a fresh data
directory with the demo data and a handful of cases. Windows alternate (bare, cases,
healthz, then again for each round): a load process (on the other core) runs
``--clients`` keep-alive HTTP/1.1 connections, each sending its next request as soon as
the last answer is in, for ``--seconds``. ``GET /api/v1/cases`` is sent as the demo clerk
(one login session shared by every connection). Per target: requests per second, p50/p99
latency, the server's CPU time per request, and the rate's ratio to the bare app's. The
last line is a JSON summary. Goal (issue 10): the case list at >= 10 % of the bare app's
rate, p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from coreview.app import create_app
from coreview.simulate import ApiClient
from media.loops import loop_factory
from recorder.clock import SystemClock
from signaling import id_numbers
from signaling.node.demo import seed
from signaling.node.services import open_services
from signaling.node.serving import settle_heap
from signaling.settings import Settings

EXTRA_CASES = 4
"""Cases added to the demo's 2: the list the clerk sees."""
ID_NUMBER = "11010119900307777" + id_numbers.check_digit("11010119900307777")
WARMUP_SECONDS = 0.5
BODY = {"status": "ok", "cases": []}
GOAL_RATIO = 0.10
GOAL_P99_MS = 50.0


def _pin(core: int) -> None:
    """On 2+ cores: servers on core 0, the load on core 1 (else leave it to the OS)."""
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {core})


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- servers (child processes) ------------------------------------------------------------


async def _serve(app: web.Application) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    settle_heap()  # as coreview serve does once started
    port = runner.addresses[0][1]
    print(f"ready {port}", flush=True)
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await runner.cleanup()


def _bare_app() -> web.Application:
    async def constant(_request: web.Request) -> web.Response:
        return web.json_response(BODY)

    app = web.Application()
    app.router.add_get("/", constant)
    return app


async def _coreview(data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir, announced_addresses=("127.0.0.1",))
    async with open_services(settings, SystemClock()) as services:
        await seed(services, data_dir)
    await _serve(create_app(settings))


def server_main(kind: str, data_dir: Path | None) -> None:
    """Both servers on the event loop ``coreview serve`` runs on (media/loops.py)."""
    _pin(0)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        if kind == "bare":
            runner.run(_serve(_bare_app()))
        else:
            assert data_dir is not None
            runner.run(_coreview(data_dir))


# -- load (a child process) ---------------------------------------------------------------


async def _connection(
    port: int, request: bytes, until: float, warm_until: float, latencies: list[float]
) -> int:
    """One keep-alive connection sending requests back to back; returns its errors."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    errors = 0
    try:
        while True:
            started = time.perf_counter()
            if started >= until:
                return errors
            writer.write(request)
            status = await reader.readline()
            length = -1
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length < 0:
                raise RuntimeError(f"no Content-Length in the answer: {status!r}")
            await reader.readexactly(length)
            if status.split(b" ", 2)[1] != b"200":
                errors += 1
            elif started >= warm_until:
                latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def _load(port: int, path: str, cookie: str, clients: int, seconds: float) -> dict[str, Any]:
    headers = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    if cookie:
        headers += f"Cookie: {cookie}\r\n"
    request = (headers + "\r\n").encode()
    start = time.perf_counter()
    warm_until, until = start + WARMUP_SECONDS, start + WARMUP_SECONDS + seconds
    latencies: list[float] = []
    errors = await asyncio.gather(
        *(_connection(port, request, until, warm_until, latencies) for _ in range(clients))
    )
    return {"requests": len(latencies), "errors": sum(errors), "latencies": latencies}


def load_main(port: int, path: str, cookie: str, clients: int, seconds: float) -> None:
    _pin(1)
    print(json.dumps(asyncio.run(_load(port, path, cookie, clients, seconds))), flush=True)


# -- the run ------------------------------------------------------------------------------


class Server:
    def __init__(self, kind: str, data_dir: Path | None = None) -> None:
        args = [sys.executable, "-m", "bench.api", "--server", kind]
        if data_dir is not None:
            args += ["--data-dir", str(data_dir)]
        self.process = subprocess.Popen(  # noqa: S603 - our own module
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("ready "):
            raise RuntimeError(f"{kind} server did not start ({line!r})")
        self.port = int(line.split()[1])

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()  # the server stops at EOF
        self.process.wait(timeout=30)


def _window(server: Server, path: str, cookie: str, args: argparse.Namespace) -> dict[str, Any]:
    cpu_before = _cpu_seconds(server.process.pid)
    done = subprocess.run(  # noqa: S603 - our own module
        [
            sys.executable,
            "-m",
            "bench.api",
            "--load",
            f"{server.port}{path}",
            "--cookie",
            cookie,
            "--clients",
            str(args.clients),
            "--seconds",
            str(args.seconds),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=args.seconds + 60,
    )
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    # the warm-up's CPU is counted too: per request, over every request answered
    result["cpu_seconds"] = _cpu_seconds(server.process.pid) - cpu_before
    return result


def _figures(windows: Sequence[dict[str, Any]], seconds: float) -> dict[str, Any]:
    latencies = sorted(x for w in windows for x in w["latencies"])
    requests = len(latencies)
    if requests == 0:
        raise RuntimeError("no request was answered")
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    answered = requests * (1 + WARMUP_SECONDS / seconds)  # about what the CPU served
    return {
        "rps": requests / (seconds * len(windows)),
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
        "errors": sum(w["errors"] for w in windows),
        "cpu_us_per_request": sum(w["cpu_seconds"] for w in windows) / answered * 1e6,
    }


async def _prepare(server: Server, data_dir: Path) -> str:
    """A handful of cases, and the clerk's session cookie for the load."""
    accounts = json.loads((data_dir / "demo-accounts.json").read_text("utf-8"))
    password = next(a["password"] for a in accounts if a["username"] == "chuangkou")
    api = ApiClient(f"http://127.0.0.1:{server.port}")
    try:
        await api.login("chuangkou", password)
        for n in range(EXTRA_CASES):
            await api.post(
                "/api/v1/cases",
                {
                    "matter": "LZ-SCJG-0101",
                    "applicant_name": f"测试{n}",
                    "id_number": ID_NUMBER,
                    "phone": "13800000000",
                },
            )
        return "; ".join(f"{c.key}={c.value}" for c in api.http.cookie_jar)
    finally:
        await api.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        data_dir = Path(tmp) / "data"
        bare, coreview = Server("bare"), Server("coreview", data_dir)
        try:
            cookie = asyncio.run(_prepare(coreview, data_dir))
            targets = {"bare": (bare, "/", ""), "cases": (coreview, "/api/v1/cases", cookie)}
            targets["healthz"] = (coreview, "/healthz", "")
            windows: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
            for _ in range(args.rounds):
                for name, (server, path, sent) in targets.items():
                    windows[name].append(_window(server, path, sent, args))
        finally:
            bare.close()
            coreview.close()
    figures = {name: _figures(w, args.seconds) for name, w in windows.items()}
    for name in ("cases", "healthz"):
        figures[name]["ratio"] = figures[name]["rps"] / figures["bare"]["rps"]
    cases = figures["cases"]
    return {
        **figures,
        "clients": args.clients,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "goal_met": cases["ratio"] >= GOAL_RATIO and cases["p99_ms"] <= GOAL_P99_MS,
    }


def _print(summary: dict[str, Any]) -> None:
    print(f"{'target':<10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU µs/req':>12}{'ratio':>8}")
    for name in ("bare", "cases", "healthz"):
        f = summary[name]
        ratio = f"{f['ratio'] * 100:.1f} %" if "ratio" in f else ""
        print(
            f"{name:<10}{f['rps']:>10.0f}{f['p50_ms']:>9.2f}{f['p99_ms']:>9.2f}"
            f"{f['cpu_us_per_request']:>12.0f}{ratio:>8}"
        )
    print(json.dumps(summary))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per window")
    parser.add_argument("--rounds", type=int, default=2, help="windows per target (alternated)")
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--server", choices=("bare", "coreview"), help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--load", help=argparse.SUPPRESS)  # PORT/PATH
    parser.add_argument("--cookie", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.server:
        server_main(args.server, args.data_dir)
    elif args.load:
        port, _, path = args.load.partition("/")
        load_main(int(port), "/" + path, args.cookie, args.clients, args.seconds)
    else:
        _print(run(args))


if __name__ == "__main__":
    main()
