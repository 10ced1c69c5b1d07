"""Control-plane load for the paired media benchmark: ``--clients`` concurrent clients,
logged in as one clerk, each sending ``GET /api/v1/cases`` as soon as the last answer
came, for ``--seconds``. Runs in its own process (``bench.relay --api-load`` starts it)
and prints one JSON line: requests, answers by status, req/s, p50/p99 ms, and the
monotonic clock at its first request and after its last (the media window it loaded).

    python -m bench.apiload --url http://127.0.0.1:PORT --username U --password P
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import aiohttp

from bench.common import percentile

PATH = "/api/v1/cases"


async def hammer(
    url: str, username: str, password: str, clients: int, seconds: float
) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=clients)
    jar = aiohttp.CookieJar(unsafe=True)  # keep cookies of an IP address (127.0.0.1)
    async with aiohttp.ClientSession(url, connector=connector, cookie_jar=jar) as http:
        async with http.post(
            "/api/v1/auth/login", json={"username": username, "password": password}
        ) as response:
            if response.status != 200:
                raise RuntimeError(f"login: HTTP {response.status}: {await response.text()}")
        took: list[float] = []
        statuses: dict[int, int] = {}
        end = time.monotonic() + seconds

        async def client() -> None:
            while (started := time.monotonic()) < end:
                async with http.get(PATH) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                took.append((time.monotonic() - started) * 1000)

        began = time.monotonic()
        await asyncio.gather(*(client() for _ in range(clients)))
        ended = time.monotonic()
        elapsed = ended - began
    return {
        "began": began,
        "ended": ended,
        "requests": len(took),
        "errors": sum(n for status, n in statuses.items() if status != 200),
        "statuses": {str(k): n for k, n in sorted(statuses.items())},
        "req_per_s": round(len(took) / elapsed, 1),
        "p50_ms": _round(percentile(took, 50)),
        "p99_ms": _round(percentile(took, 99)),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.apiload")
    parser.add_argument("--url", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    figures = asyncio.run(
        hammer(args.url, args.username, args.password, args.clients, args.seconds)
    )
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
