"""Settings: defaults < TOML file < COREVIEW_* variables < command-line flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from signaling.settings import Settings, SettingsError, load_settings


def test_embedded_defaults():
    """Without file or variables: ./var, SQLite, in-process bus, no ICE servers."""
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.data_dir == Path("var")
    assert settings.sqlalchemy_url == "sqlite+aiosqlite:///var/coreview.sqlite3"
    assert settings.redis_url == ""
    assert settings.ice_servers == ()


def test_layers_override_in_order(tmp_path):
    """The file overrides defaults, the environment the file, flags the environment."""
    config = tmp_path / "coreview.toml"
    config.write_text('port = 9000\nhost = "127.0.0.2"\nice_servers = ["stun:10.0.0.1"]\n')
    environ = {"COREVIEW_PORT": "9100", "COREVIEW_SECURE_COOKIES": "true"}
    settings = load_settings(config, environ, {"port": 9200, "host": None})
    assert settings.port == 9200
    assert settings.host == "127.0.0.2"
    assert settings.secure_cookies is True
    assert settings.ice_servers == ("stun:10.0.0.1",)


def test_config_file_from_environment(tmp_path):
    """COREVIEW_CONFIG names the file when no flag does."""
    config = tmp_path / "c.toml"
    config.write_text('case_prefix = "BH"\n')
    assert load_settings(environ={"COREVIEW_CONFIG": str(config)}).case_prefix == "BH"


@pytest.mark.parametrize(
    ("content", "environ"),
    [
        ("nonsense = 1\n", {}),
        ("", {"COREVIEW_PORT": "eighty"}),
        ("", {"COREVIEW_SECURE_COOKIES": "maybe"}),
    ],
)
def test_bad_values_are_refused(tmp_path, content, environ):
    """An unknown name or a value of the wrong type is an error, not a silent default."""
    config = tmp_path / "c.toml"
    config.write_text(content)
    with pytest.raises(SettingsError):
        load_settings(config, environ)


def test_settings_are_frozen():
    """Settings cannot change after they are built."""
    with pytest.raises(AttributeError):
        Settings().port = 1  # type: ignore[misc]


def test_recording_settings():
    """Recording is on by default with 10 s chunks; both can be set like any setting."""
    assert (Settings().recording, Settings().chunk_seconds) == (True, 10.0)
    settings = load_settings(environ={"COREVIEW_RECORDING": "off", "COREVIEW_CHUNK_SECONDS": "4.5"})
    assert (settings.recording, settings.chunk_seconds) == (False, 4.5)
    with pytest.raises(SettingsError):
        load_settings(environ={"COREVIEW_CHUNK_SECONDS": "ten"})
