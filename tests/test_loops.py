"""The event loop choice (media/loops.py): uvloop by default where installed, the
standard loop on request, a clear error for anything else; `coreview serve` runs on
either."""

from __future__ import annotations

import asyncio
import http.client
import json
import subprocess
from pathlib import Path

import pytest

from media import loops
from tests.live import coreview_command, log_tail, server_env, serving

needs_uvloop = pytest.mark.skipif(not loops.uvloop_available(), reason="uvloop not installed")


def test_the_environment_chooses_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """COREVIEW_LOOP=asyncio gives the standard loop; unset gives uvloop if installed;
    an unknown name is refused with the choices named."""
    monkeypatch.setenv(loops.ENV, "asyncio")
    loop = loops.new_event_loop()
    try:
        assert loops.impl_name(loop) == "asyncio"
    finally:
        loop.close()
    monkeypatch.delenv(loops.ENV)
    assert loops.loop_name() == ("uvloop" if loops.uvloop_available() else "asyncio")
    monkeypatch.setenv(loops.ENV, "trio")
    with pytest.raises(loops.LoopChoiceError, match="auto, asyncio, uvloop"):
        loops.new_event_loop()


@needs_uvloop
def test_uvloop_is_the_default_and_runs_a_coroutine() -> None:
    """With uvloop installed the default loop is uvloop's, and asyncio.Runner drives it."""
    with asyncio.Runner(loop_factory=loops.loop_factory("auto")) as runner:
        assert runner.run(_running_impl()) == "uvloop"


async def _running_impl() -> str:
    await asyncio.sleep(0)
    return loops.impl_name(asyncio.get_running_loop())


def test_uvloop_asked_for_but_missing_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """COREVIEW_LOOP=uvloop without uvloop installed is an error, never a silent fallback."""
    monkeypatch.setattr(loops, "uvloop_available", lambda: False)
    with pytest.raises(loops.LoopChoiceError, match="not installed"):
        loops.loop_name("uvloop")
    assert loops.loop_name("auto") == "asyncio"
    assert set(loops.available()) == {"asyncio"}


@pytest.mark.parametrize("choice", ["asyncio", pytest.param("uvloop", marks=needs_uvloop)])
def test_serve_runs_on_the_chosen_loop(tmp_path: Path, choice: str) -> None:
    """`coreview serve` with COREVIEW_LOOP set logs that loop and answers /healthz."""
    with serving(tmp_path, {loops.ENV: choice}) as (port, log_path):
        assert f"event loop: {choice}" in log_tail(log_path)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            assert (response.status, json.loads(response.read())) == (200, {"status": "ok"})
        finally:
            connection.close()


def test_serve_refuses_an_unknown_loop(tmp_path: Path) -> None:
    """An unknown COREVIEW_LOOP stops `coreview serve` at once with exit 2 and a message."""
    done = subprocess.run(
        [*coreview_command(), "serve", "--data-dir", str(tmp_path / "var"), "--port", "0"],
        env=server_env({loops.ENV: "fastest"}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "配置有误" in done.stderr and "fastest" in done.stderr
