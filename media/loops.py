"""The event loop coreview runs on: uvloop where it is installed (forwarding on it took
0.71-0.87x the standard loop's CPU in the same runs: docs/benchmarks.md), the standard
asyncio loop otherwise or when asked for.

``COREVIEW_LOOP`` chooses: ``asyncio`` (the standard loop), ``uvloop`` (required: an
error if it is not installed), unset or ``auto`` (uvloop if importable, else asyncio).
``coreview serve`` and the benchmarks build their loops here; tests run the media tests
under both (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Callable

ENV = "COREVIEW_LOOP"
CHOICES = ("auto", "asyncio", "uvloop")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


class LoopChoiceError(ValueError):
    """An event loop was asked for that is unknown or not installed."""


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def loop_name(choice: str | None = None) -> str:
    """The loop ``choice`` (default: ``$COREVIEW_LOOP``, else auto) resolves to."""
    wanted = (choice if choice is not None else os.environ.get(ENV, "")).strip() or "auto"
    if wanted not in CHOICES:
        raise LoopChoiceError(f"{ENV}: unknown event loop {wanted!r} (one of {', '.join(CHOICES)})")
    if wanted == "auto":
        return "uvloop" if uvloop_available() else "asyncio"
    if wanted == "uvloop" and not uvloop_available():
        raise LoopChoiceError(f"{ENV}=uvloop, but uvloop is not installed")
    return wanted


def _uvloop() -> asyncio.AbstractEventLoop:
    import uvloop

    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


FACTORIES: dict[str, LoopFactory] = {"asyncio": asyncio.new_event_loop, "uvloop": _uvloop}


def loop_factory(choice: str | None = None) -> LoopFactory:
    """For ``asyncio.Runner(loop_factory=…)``."""
    return FACTORIES[loop_name(choice)]


def new_event_loop(choice: str | None = None) -> asyncio.AbstractEventLoop:
    return loop_factory(choice)()


def available() -> dict[str, LoopFactory]:
    """The loops this interpreter can run, by name."""
    return {name: f for name, f in FACTORIES.items() if name != "uvloop" or uvloop_available()}


def impl_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: the implementation of ``loop``."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
