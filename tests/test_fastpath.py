"""The C parts of forwarding (media/_fastpath.c): receiver statistics against aiortc's,
and what its constructors and import refuse."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace
from unittest import mock

from aiortc import rtcrtpreceiver
from aiortc.rtcrtpreceiver import StreamStatistics
from hypothesis import given
from hypothesis import strategies as st

from media import _fastpath

arrivals = st.lists(
    st.tuples(
        st.integers(0, 0xFFFF),  # sequence number
        st.integers(0, 0xFFFFFFFF),  # timestamp
        st.floats(0, 0.2),  # seconds since the previous arrival
    ),
    min_size=1,
    max_size=60,
)


@given(arrivals, st.sampled_from([8000, 48000, 90000]), st.integers(1, 6))
def test_stats_equal_aiortcs_stream_statistics(
    packets: list[tuple[int, int, float]], clockrate: int, read_every: int
) -> None:
    """Packets in any order (wraps, duplicates, reordering, jumps) give the same counts,
    highest sequence number, jitter and loss as aiortc's StreamStatistics, including
    ``fraction_lost``, which starts a new interval each time it is read."""
    theirs, ours = StreamStatistics(clockrate), _fastpath.Stats(clockrate)
    now = 1_800_000_000.0
    for i, (seq, timestamp, delay) in enumerate(packets):
        now += delay
        packet = SimpleNamespace(sequence_number=seq, timestamp=timestamp)
        with mock.patch.object(rtcrtpreceiver.time, "time", return_value=now):
            theirs.add(packet)  # type: ignore[arg-type]
        ours.add(packet, now)
        assert (ours.base_seq, ours.max_seq, ours.cycles, ours.packets_received) == (
            theirs.base_seq,
            theirs.max_seq,
            theirs.cycles,
            theirs.packets_received,
        )
        assert (ours.jitter, ours.packets_expected, ours.packets_lost) == (
            theirs.jitter,
            theirs.packets_expected,
            theirs.packets_lost,
        )
        if i % read_every == 0:
            assert ours.fraction_lost == theirs.fraction_lost


def test_stats_before_any_packet():
    stats = _fastpath.Stats(90000)
    assert (stats.base_seq, stats.max_seq, stats.packets_received, stats.jitter) == (
        None,
        None,
        0,
        0,
    )


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter: a crash there is a failed test, not a dead run."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_constructors_take_no_addresses():
    """Ingest and a Sender's route take a pylibsrtp Session, never raw addresses: what
    once segfaulted (an Ingest built from integers, then called) is a TypeError."""
    done = run_python(
        "from media import _fastpath\n"
        "for args in [(None, 1, 1, {}, print), (None, {}, print), (object(), {}, print)]:\n"
        "    try:\n"
        "        _fastpath.Ingest(*args)(bytes([0x80, 96]) + bytes(30))\n"
        "    except TypeError as error:\n"
        "        print('refused:', error)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("refused:") == 3, done.stdout
    assert "pylibsrtp.Session is needed, not object" in done.stdout


def test_a_libsrtp_declared_otherwise_refuses_the_import():
    """Importing the module checks how pylibsrtp declares the libsrtp functions it calls;
    libsrtp 3's (separate buffers, size_t lengths) makes the import fail, naming them."""
    libsrtp3 = (
        "srtp_err_status_t(*)(struct srtp_ctx_t_ *, const uint8_t *, size_t, uint8_t *, size_t *)"
    )
    done = run_python(
        "import sys, types\n"
        "from pylibsrtp import _binding\n"
        "class FFI:\n"
        "    def typeof(self, thing):\n"
        "        real = _binding.ffi.typeof(thing)\n"
        f"        return types.SimpleNamespace(cname={libsrtp3!r}) if callable(thing) else real\n"
        "    def __getattr__(self, name):\n"
        "        return getattr(_binding.ffi, name)\n"
        "sys.modules['pylibsrtp._binding'] = types.SimpleNamespace(ffi=FFI(), lib=_binding.lib)\n"
        "try:\n"
        "    from media import _fastpath\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    assert done.returncode == 0, done.stderr
    assert "srtp_protect" in done.stdout and "libsrtp 2" in done.stdout, done.stdout
    assert _fastpath.SRTP_SIGNATURE in done.stdout
