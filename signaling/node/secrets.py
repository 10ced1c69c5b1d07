"""The node's secrets, generated on first start and kept in the data directory (0600)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from recorder.private_files import write_private


@dataclass(frozen=True, repr=False)
class NodeSecrets:
    cookie_key: bytes
    """Signs login-session cookies."""
    jwt_key: bytes
    """Signs short-lived join tokens."""
    id_key: bytes
    """Keys the digest of ID numbers used for exact-match search."""
    node_key: Ed25519PrivateKey
    """Signs audit-log checkpoints (as loaded at start; the keyring follows rotations)."""

    def __repr__(self) -> str:
        return "NodeSecrets(<hidden>)"


def _read_or_create(path: Path, make: bytes) -> bytes:
    """The file's bytes; ``make``, written, if there is none (an existing one is kept)."""
    try:
        write_private(path, make, exclusive=True)
    except FileExistsError:
        return path.read_bytes()
    return make


def node_key_path(data_dir: Path) -> Path:
    """The node's Ed25519 private key (raw); ``coreview keys rotate`` replaces it."""
    return data_dir / "secrets" / "node-ed25519.key"


def load_or_create(data_dir: Path) -> NodeSecrets:
    directory = node_key_path(data_dir).parent
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    new_key = Ed25519PrivateKey.generate().private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    )
    return NodeSecrets(
        cookie_key=_read_or_create(directory / "cookie.key", secrets.token_bytes(32)),
        jwt_key=_read_or_create(directory / "jwt.key", secrets.token_bytes(32)),
        id_key=_read_or_create(directory / "id-digest.key", secrets.token_bytes(32)),
        node_key=Ed25519PrivateKey.from_private_bytes(
            _read_or_create(node_key_path(data_dir), new_key)
        ),
    )
