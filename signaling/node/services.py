"""The stateful parts of a node, opened together by the app and by the CLI."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from recorder.auditlog import AuditLog
from recorder.clock import Clock
from recorder.keyring import Keyring
from recorder.store import EvidenceStore
from signaling.accounts.accounts import Accounts
from signaling.cases.cases import Cases
from signaling.cases.catalog import Catalog
from signaling.cases.id_search import IdSearches
from signaling.node.secrets import NodeSecrets, load_or_create, node_key_path
from signaling.settings import Settings
from signaling.storage.db import create_engine, migrate
from signaling.storage.reads import Reads

logger = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def make_private(data_dir: Path, database: Path | None) -> None:
    """The data directory holds personal data, secrets and evidence: owner only, whatever
    the umask. A too-open one is tightened (and said so); the SQLite file is created
    0600 before SQLite opens it, and SQLite gives its WAL and SHM files the same mode."""
    data_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    if stat.S_IMODE(data_dir.stat().st_mode) != PRIVATE_DIR:
        logger.warning("data directory %s was open to others: now 0700", data_dir)
        data_dir.chmod(PRIVATE_DIR)
    if database is None:
        return
    os.close(os.open(database, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))
    for path in (database, *(database.with_name(database.name + s) for s in ("-wal", "-shm"))):
        if path.exists() and stat.S_IMODE(path.stat().st_mode) != PRIVATE_FILE:
            path.chmod(PRIVATE_FILE)


@dataclass(frozen=True)
class Services:
    """The app factory puts each field in the app under its key in
    ``signaling.web.appkeys.SERVICE_KEYS``, where a new field needs its typed key."""

    keys: NodeSecrets
    engine: AsyncEngine
    reads: Reads
    audit: AuditLog
    accounts: Accounts
    catalog: Catalog
    cases: Cases
    evidence: EvidenceStore


@contextlib.asynccontextmanager
async def open_services(settings: Settings, clock: Clock) -> AsyncIterator[Services]:
    """Create the data directory and secrets, migrate the schema, build the stores."""
    make_private(settings.data_dir, settings.sqlite_path)
    secrets = load_or_create(settings.data_dir)
    engine = create_engine(settings.sqlalchemy_url)
    reads = Reads(engine, settings.sqlite_path)
    try:
        await migrate(engine)
        keyring = Keyring(engine, clock, node_key_path(settings.data_dir), secrets.node_key)
        audit = AuditLog(engine, clock, keyring, settings.witness_file)
        await audit.register_key()
        catalog = Catalog(engine, audit)
        yield Services(
            keys=secrets,
            engine=engine,
            reads=reads,
            audit=audit,
            accounts=Accounts(engine, reads, clock, settings, audit),
            catalog=catalog,
            cases=Cases(
                engine,
                reads,
                clock,
                audit,
                secrets.id_key,
                settings.case_prefix,
                IdSearches(engine, clock, audit, settings.id_searches_per_hour),
                catalog,
            ),
            evidence=EvidenceStore(settings.data_dir / "evidence"),
        )
    finally:
        reads.close()
        await engine.dispose()
