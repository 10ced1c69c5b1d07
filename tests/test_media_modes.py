"""Which media path a room forwards on: environment, bench.server flags, bad values."""

from __future__ import annotations

import argparse

import pytest

from bench.server import add_media_path_flags, apply_media_path_flags
from media.room import MediaConfig


def test_defaults_are_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset: media is read off the socket and sent at once."""
    monkeypatch.delenv("COREVIEW_MEDIA_INGEST", raising=False)
    monkeypatch.delenv("COREVIEW_MEDIA_SEND", raising=False)
    config = MediaConfig()
    assert (config.ingest, config.send) == ("fast", "sync")


def test_bench_server_flags_choose_the_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """--ingest/--send set the rooms' modes in the bench server's process; an unknown
    value is refused by the parser."""
    monkeypatch.setenv("COREVIEW_MEDIA_INGEST", "fast")  # restored after the test
    monkeypatch.setenv("COREVIEW_MEDIA_SEND", "sync")
    parser = argparse.ArgumentParser()
    add_media_path_flags(parser)
    apply_media_path_flags(parser.parse_args(["--ingest", "aiortc", "--send", "async"]))
    config = MediaConfig()
    assert (config.ingest, config.send) == ("aiortc", "async")
    with pytest.raises(SystemExit):
        parser.parse_args(["--ingest", "kernel"])


def test_a_bad_mode_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelt environment value or field fails at once, naming it."""
    monkeypatch.setenv("COREVIEW_MEDIA_INGEST", "fastest")
    with pytest.raises(ValueError, match="COREVIEW_MEDIA_INGEST"):
        MediaConfig()
    with pytest.raises(ValueError, match="send 'later'"):
        MediaConfig(ingest="fast", send="later")
