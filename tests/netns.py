"""A network namespace of a test's own, with loopback and one veth address that is not
loopback (as a hall PC's LAN address is), so a test can open the service "from another
PC" while no packet can leave this machine.

The namespace is held by a ``cat`` process started under ``unshare --net`` (it lives
until its stdin closes); commands run inside it through ``nsenter``. Needs root (or
CAP_SYS_ADMIN); ``available()`` says whether this machine allows it.

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.live import stop_process

LAN_ADDRESS = "10.77.0.1"
SETUP_SECONDS = 10.0


def available() -> bool:
    """unshare, nsenter and ip exist and may make a namespace here."""
    if not all(shutil.which(tool) for tool in ("unshare", "nsenter", "ip")):
        return False
    probe = subprocess.run(
        ["unshare", "--net", "--", "ip", "link", "set", "lo", "up"],
        capture_output=True,
        timeout=SETUP_SECONDS,
        check=False,
    )
    return probe.returncode == 0


@dataclass(frozen=True)
class Namespace:
    holder: int
    """PID of the process that holds the namespace."""
    address: str
    """The non-loopback address (on a veth pair inside the namespace)."""

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["nsenter", f"--net=/proc/{self.holder}/ns/net", "--", *argv]

    def wrapper(self, folder: Path, executable: str) -> Path:
        """A script that runs ``executable`` inside the namespace with its arguments
        (for a launcher that takes an executable path, such as Playwright)."""
        script = folder / f"{Path(executable).name}-in-netns"
        script.write_text(f'#!/bin/sh\nexec {" ".join(self.command([executable]))} "$@"\n')
        script.chmod(0o700)
        return script


@contextlib.contextmanager
def network_namespace(address: str = LAN_ADDRESS) -> Iterator[Namespace]:
    """A fresh namespace with ``lo`` up and ``address`` on a veth pair; gone on exit."""
    setup = (
        "ip link set lo up && ip link add v0 type veth peer name v1 && "
        f"ip addr add {address}/24 dev v0 && ip link set v1 up && ip link set v0 up && "
        "echo ready && exec cat"
    )
    holder = subprocess.Popen(
        ["unshare", "--net", "--", "sh", "-c", setup],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        ready = holder.stdout.readline()  # the shell answers at once, or exits
        if ready.strip() != b"ready":
            holder.wait(timeout=SETUP_SECONDS)
            error = holder.stderr.read().decode() if holder.stderr else ""
            raise RuntimeError(f"network namespace not set up: {error}")
        yield Namespace(holder.pid, address)
    finally:
        if holder.stdin is not None:
            holder.stdin.close()  # cat ends, the namespace with it
        stop_process(holder)
        for pipe in (holder.stdout, holder.stderr):
            if pipe is not None:
                pipe.close()
