"""Settings: embedded defaults, then an optional TOML file, then COREVIEW_* variables,
then command-line flags. Built once, frozen, passed explicitly."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from media.candidates import parse_networks


class SettingsError(ValueError):
    """A setting has a value of the wrong type or an unknown name."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    """Address the HTTP server listens on."""
    port: int = 8080
    """Port the HTTP server listens on."""
    data_dir: Path = Path("var")
    """Directory for the SQLite database, evidence files and the node's secrets."""
    database_url: str = ""
    """SQLAlchemy URL; empty means SQLite (WAL) at ``data_dir/coreview.sqlite3``."""
    redis_url: str = ""
    """Redis URL for the bus; empty means the in-process bus."""
    case_prefix: str = "GX"
    """Prefix of readable case numbers, e.g. ``GX-2026-000123``."""
    session_hours: float = 10.0
    """Lifetime of a login session (a working day)."""
    secure_cookies: bool = False
    """Set the Secure flag on cookies; turn on behind HTTPS (on by itself with TLS)."""
    tls_cert: Path | None = None
    """PEM certificate (chain) to serve HTTPS with; with ``tls_key``. Browsers allow
    cameras only over HTTPS (or on loopback): another PC needs it."""
    tls_key: Path | None = None
    """PEM private key of ``tls_cert``."""
    login_max_failures: int = 5
    """Failed logins of one account from one address, within the window, before that
    address must wait for them to age out (the account stays open elsewhere)."""
    account_slow_after: int = 10
    """Failed logins of one account from anywhere, within the window, after which each
    further attempt on it must wait twice as long as the one before (from 1 s)."""
    login_window_minutes: int = 15
    """Window in which failures are counted."""
    address_max_failures: int = 20
    """Failed logins from one address, within the window, before it is throttled."""
    id_searches_per_hour: int = 10
    """Searches by ID number one user may run within an hour (only clerks and auditors
    may search by it); further ones answer 429 ``too_many_searches``."""
    ice_servers: tuple[str, ...] = ()
    """STUN/TURN URLs offered to peers; empty by default (halls have no internet)."""
    announced_addresses: tuple[str, ...] = ()
    """Addresses the media server announces in ICE (a public or NAT address)."""
    udp_port_min: int = 0
    """Lowest UDP port for media (0: any)."""
    udp_port_max: int = 0
    """Highest UDP port for media (0: any)."""
    ice_allowed_networks: tuple[str, ...] = ()
    """Networks (CIDR) a peer's ICE candidates may always name."""
    ice_denied_networks: tuple[str, ...] = ()
    """Networks (CIDR) a peer's ICE candidates may never name, besides the defaults:
    link-local and cloud metadata, multicast, unspecified, and loopback unless every
    announced address is loopback. The server sends no connectivity check there."""
    queue_timeout_seconds: int = 600
    """A waiting review session nobody accepts times out after this long."""
    reconnect_grace_seconds: int = 60
    """A participant whose connection drops may rejoin within this time."""
    max_still_bytes: int = 30 * 1024 * 1024
    """Largest document still (高拍仪照片) an upload may carry, in bytes."""
    max_still_pixels: int = 50_000_000
    """Largest still in pixels (width × height): a guard against decompression bombs."""
    snapshot_timeout_seconds: float = 5.0
    """A server-side snapshot fails if no keyframe arrives within this long."""
    recording: bool = True
    """Record every published track of every live session (capture chunks and playable
    files in the evidence store)."""
    chunk_seconds: float = 10.0
    """Length of a capture chunk; a video chunk is cut at the next keyframe after it."""
    log_level: str = "INFO"
    """Python logging level name."""
    witness_file: Path | None = None
    """File outside the data directory to which every signed log checkpoint is appended
    (one JSON line, fsynced), so a copy survives a wiped server; empty: none."""
    checkpoint_seconds: float = 60.0
    """While events arrive, a log checkpoint is signed at least this often."""
    time_limit_warn_days: int = 1
    """An open case gets a yellow card (黄牌) when at most this many working days of its
    time limit (办理时限) are left after today; a red card (红牌) once it is past."""
    metrics_token: str = dataclasses.field(default="", repr=False)
    """Bearer token ``GET /metrics`` requires (``Authorization: Bearer …``); never
    logged. With neither this nor ``metrics_addresses`` set, /metrics answers 404."""
    metrics_addresses: tuple[str, ...] = ()
    """Networks (CIDR) whose clients may read /metrics; with a token too, both must hold."""

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise SettingsError("tls_cert 与 tls_key 须同时设置（证书与其私钥）")
        if self.tls:
            object.__setattr__(self, "secure_cookies", True)  # HTTPS: cookies only over it
        if self.witness_file is not None:
            witness = self.witness_file.resolve()
            if witness.is_relative_to(self.data_dir.resolve()):
                raise SettingsError(
                    f"见证文件 witness_file（{self.witness_file}）须位于数据目录"
                    f"（{self.data_dir}）之外，否则清空服务器时会一并丢失"
                )
        for name in ("ice_allowed_networks", "ice_denied_networks"):
            try:
                parse_networks(getattr(self, name))
            except ValueError as exc:
                raise SettingsError(f"setting {name!r}: {exc}") from exc
        try:
            parse_networks(self.metrics_addresses)
        except ValueError as exc:
            raise SettingsError(f"setting 'metrics_addresses': {exc}") from exc
        if self.time_limit_warn_days < 0:
            raise SettingsError("setting 'time_limit_warn_days' must not be negative")
        if self.checkpoint_seconds <= 0:
            raise SettingsError("setting 'checkpoint_seconds' must be positive")

    @property
    def tls(self) -> bool:
        """The server speaks HTTPS."""
        return self.tls_cert is not None

    @property
    def sqlite_path(self) -> Path | None:
        """The embedded database's file, unless ``database_url`` names another."""
        return None if self.database_url else self.data_dir / "coreview.sqlite3"

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.sqlite_path}"


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _coerce(name: str, value: Any) -> Any:
    kind = _FIELDS[name].type
    try:
        if kind == "Path":
            return Path(value)
        if kind == "Path | None":
            return Path(value) if str(value).strip() else None
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            lowered = str(value).strip().lower()
            if lowered not in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
                raise ValueError(value)
            return lowered in {"1", "true", "yes", "on"}
        if kind == "tuple[str, ...]":
            if isinstance(value, str):
                return tuple(part.strip() for part in value.split(",") if part.strip())
            return tuple(str(part) for part in value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"setting {name!r}: bad value {value!r}") from exc


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Defaults < TOML file < ``COREVIEW_<NAME>`` variables < overrides (CLI flags)."""
    values: dict[str, Any] = {}
    env = os.environ if environ is None else environ
    config_path = config_file or (
        Path(env["COREVIEW_CONFIG"]) if "COREVIEW_CONFIG" in env else None
    )
    if config_path is not None:
        with config_path.open("rb") as handle:
            for name, value in tomllib.load(handle).items():
                if name not in _FIELDS:
                    raise SettingsError(f"unknown setting {name!r} in {config_path}")
                values[name] = _coerce(name, value)
    for name in _FIELDS:
        env_value = env.get(f"COREVIEW_{name.upper()}")
        if env_value is not None:
            values[name] = _coerce(name, env_value)
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = _coerce(name, value)
    return Settings(**values)
