"""The stateful parts of a node, opened together by the app and by the CLI."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from recorder.auditlog import AuditLog
from recorder.clock import Clock
from recorder.keyring import Keyring
from recorder.store import EvidenceStore
from signaling import keys
from signaling.accounts import Accounts
from signaling.cases import Cases
from signaling.catalog import Catalog
from signaling.db import create_engine, migrate
from signaling.settings import Settings


@dataclass(frozen=True)
class Services:
    keys: keys.NodeSecrets
    engine: AsyncEngine
    audit: AuditLog
    accounts: Accounts
    catalog: Catalog
    cases: Cases
    evidence: EvidenceStore


@contextlib.asynccontextmanager
async def open_services(settings: Settings, clock: Clock) -> AsyncIterator[Services]:
    """Create the data directory and secrets, migrate the schema, build the stores."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    secrets = keys.load_or_create(settings.data_dir)
    engine = create_engine(settings.sqlalchemy_url)
    try:
        await migrate(engine)
        keyring = Keyring(engine, clock, keys.node_key_path(settings.data_dir), secrets.node_key)
        await keyring.register()
        audit = AuditLog(engine, clock, keyring, settings.witness_file)
        yield Services(
            keys=secrets,
            engine=engine,
            audit=audit,
            accounts=Accounts(engine, clock, settings, audit),
            catalog=Catalog(engine, audit),
            cases=Cases(engine, clock, audit, secrets.id_key, settings.case_prefix),
            evidence=EvidenceStore(settings.data_dir / "evidence"),
        )
    finally:
        await engine.dispose()
