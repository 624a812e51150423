"""The store: SQLModel tables, Alembic migrations, the synchronous Store, the async StoreWriter and its journal."""

from __future__ import annotations

from monitor.store.database import default_url, migrate
from monitor.store.store import Batch, Store, WriteRefused
from monitor.store.writer import StoreWriter, WriterStats, start_journal

__all__ = ["Batch", "Store", "StoreWriter", "WriteRefused", "WriterStats", "default_url", "migrate", "start_journal"]
