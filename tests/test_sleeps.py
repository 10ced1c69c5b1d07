"""Tests wait on events or poll with a deadline; a sleep that stays says why on its line
(``# ok-sleep: <reason>``): a new sleep without one fails here."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent
MARK = "# ok-sleep:"


def unexplained_sleeps(source: str) -> list[int]:
    """Lines of ``sleep(...)`` calls (any module's) without a reason; ``sleep(0)``, a
    bare yield to the loop, needs none."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name != "sleep":
            continue
        if [ast.dump(a) for a in node.args] == [ast.dump(ast.Constant(0))]:
            continue
        line = lines[node.lineno - 1]
        reason = line.partition(MARK)[2].strip()
        if not reason:
            found.append(node.lineno)
    return sorted(found)


def test_every_sleep_in_the_tests_says_why():
    offenders = {
        str(path.relative_to(TESTS)): lines
        for path in sorted(TESTS.rglob("*.py"))
        if (lines := unexplained_sleeps(path.read_text()))
    }
    assert offenders == {}, f"sleeps without '{MARK} <reason>': {offenders}"


def test_the_check_finds_a_bare_sleep():
    """The check itself: a sleep with no reason, or an empty one, is found; a reasoned
    one and a yield are not."""
    source = (
        "import asyncio, time\n"
        "async def f():\n"
        "    await asyncio." + "sleep(0.3)\n"  # split: a plain grep for sleeps skips it
        "    time.sleep(1)  # ok-sleep:\n"
        "    await asyncio.sleep(0.1)  # ok-sleep: the injected delay\n"
        "    await asyncio.sleep(0)\n"
    )
    assert unexplained_sleeps(source) == [3, 4]
