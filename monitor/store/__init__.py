"""The store: SQLModel tables, their Alembic migrations, the synchronous Store and the async StoreWriter."""

from __future__ import annotations

from monitor.store.database import default_url, migrate
from monitor.store.store import Batch, Store, WriteRefused
from monitor.store.writer import StoreWriter, WriterStats

__all__ = ["Batch", "Store", "StoreWriter", "WriteRefused", "WriterStats", "default_url", "migrate"]
