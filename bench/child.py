"""A benchmark's child process spoken to in JSON lines: one request per line on its
stdin, one reply per line (same ``id``) on its stdout; ``{"op": "quit"}`` ends it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

REPO = Path(__file__).resolve().parents[1]
CALL_SECONDS = 30.0
LOG_TAIL_LINES = 30


def proc_cpu(pid: int) -> float:
    """User + system seconds of a process (all threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss(pid: int) -> int:
    """Resident memory of a process, bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class Child:
    """``python -m MODULE ARGS`` as a child: JSON lines over its stdin/stdout, its
    stderr to a log file."""

    def __init__(self, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.process = process
        self.log_path = log_path
        self.name = log_path.stem
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, module: str, args: tuple[str, ...], log_path: Path) -> Child:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                module,
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                cwd=REPO,
                env=env,
                limit=1 << 22,
            )
        return cls(process, log_path)

    def pin(self, cpus: set[int]) -> None:
        """Every thread of the child to ``cpus`` (threads it starts later inherit it)."""
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            with contextlib.suppress(ProcessLookupError):  # a thread that just ended
                os.sched_setaffinity(int(task.name), cpus)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            message = json.loads(line)
            future = self._waiting.pop(message.get("id"), None)
            if future is not None and not future.done():
                future.set_result(message)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(RuntimeError(f"{self.name} exited\n{self.log_tail()}"))

    def log_tail(self) -> str:
        lines = self.log_path.read_text("utf-8", errors="replace").splitlines()
        return "\n".join(lines[-LOG_TAIL_LINES:])

    async def call(self, op: str, limit: float = CALL_SECONDS, **fields: Any) -> Any:
        assert self.process.stdin is not None
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        line = json.dumps({"id": request_id, "op": op, **fields}) + "\n"
        self.process.stdin.write(line.encode())
        await self.process.stdin.drain()
        message = await asyncio.wait_for(future, limit)
        if "error" in message:
            raise RuntimeError(f"{self.name}: {op}: {message['error']}\n{self.log_tail()}")
        message.pop("id")
        return message

    async def cpu(self) -> float:
        return float((await self.call("cpu"))["cpu"])

    async def stop(self) -> None:
        """Ask it to quit; terminate, then kill it (by its PID) if it does not."""
        if self.process.returncode is None:
            try:
                await self.call("quit", limit=10)
                await asyncio.wait_for(self.process.wait(), 10)
            except (TimeoutError, RuntimeError, ConnectionError):
                if self.process.returncode is None:
                    self.process.terminate()
                    try:
                        await asyncio.wait_for(self.process.wait(), 5)
                    except TimeoutError:
                        self.process.kill()
                        await self.process.wait()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


def reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def serve_lines(handle: Handler, max_seconds: float) -> None:
    """The child's side: answer each request line with ``handle`` (concurrently), until
    ``quit``, the end of stdin, or ``max_seconds``. A failed request is answered with
    its error and logged; serving goes on."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 22)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks: set[asyncio.Task[None]] = set()

    async def answer(request: dict[str, Any]) -> None:
        try:
            reply({"id": request.get("id"), **await handle(request)})
        except Exception as exc:  # the measuring process shows it; keep serving
            logger.exception("request %s failed", request.get("op"))
            reply({"id": request.get("id"), "error": f"{type(exc).__name__}: {exc}"})

    try:
        async with asyncio.timeout(max_seconds):
            while line := await reader.readline():
                request = json.loads(line)
                if request.get("op") == "quit":
                    reply({"id": request.get("id")})
                    break
                task = asyncio.create_task(answer(request))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
    except TimeoutError:
        logger.error("%s stopped after %.0f s", sys.argv[0], max_seconds)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
