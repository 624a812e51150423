"""Alembic environment: runs on the connection that `monitor.store.migrate` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from monitor.store.database import default_url, make_engine
from monitor.store.tables import metadata


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:  # plain `alembic` commands for developers (e.g. `revision --autogenerate`)
    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or default_url())
    try:
        with engine.begin() as connection:
            run(connection)
    finally:
        engine.dispose()
