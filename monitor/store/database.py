"""Engines for SQLite and PostgreSQL, the default URL, private files, Alembic upgrades and one-line error texts."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from monitor.errors import StoreError
from monitor.i18n import literal, said

# The newest migration (the head of monitor/store/migrations/versions; a test holds it to Alembic's): a database
# at it needs no upgrade.
HEAD = "0045"

__all__ = [
    "HEAD",
    "default_url",
    "describe",
    "is_memory",
    "make_engine",
    "mask",
    "migrate",
    "private_dir",
    "private_file",
    "sqlite_path",
    "upgrade",
]

ENV_VAR = "TPMON_DATABASE_URL"
DEFAULT_URL = "sqlite:///./var/tpmon.db"
MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_PRAGMAS = ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=5000", "synchronous=NORMAL")
# Any constant shared by every tpmon instance: serializes concurrent upgrades of one PostgreSQL.
PG_MIGRATION_LOCK = 0x7470_6D6F_6E
# PostgreSQL: a connection attempt gives up after CONNECT_TIMEOUT s; a dead peer is noticed by TCP keepalive
# (idle 10 s, then 3 probes 5 s apart) and unacknowledged data after 15 s; the server itself ends a statement
# after 15 s, a lock wait after 5 s, and a session left idle inside a transaction after 60 s. What none of these
# catch (a peer that accepts and never answers) is ended by the store's own deadlines (`deadlines.Watchdog`).
CONNECT_TIMEOUT = 5
PG_CONNECT_ARGS: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,
}
PG_SESSION = {"statement_timeout": "15s", "lock_timeout": "5s", "idle_in_transaction_session_timeout": "60s"}


def private_dir(path: Path) -> Path:
    """Create the folder `path` (and its parents) readable by its owner only (0700, whatever the umask).

    An existing folder is left as it is: tpmon never loosens, nor tightens behind the operator's back.
    """
    if not path.is_dir():
        if not path.parent.exists():
            private_dir(path.parent)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
            os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    return path


def private_file(path: Path) -> bool:
    """Create `path` empty with mode 0600 (whatever the umask) if it does not exist; True if created."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    except FileExistsError:
        return False
    try:
        os.fchmod(descriptor, stat.S_IRUSR | stat.S_IWUSR)
    finally:
        os.close(descriptor)
    return True


def default_url() -> str:
    """`$TPMON_DATABASE_URL`, else a SQLite file under `./var/` (the folder is created, 0700)."""
    url = os.environ.get(ENV_VAR, "").strip()
    if url:
        return url
    private_dir(Path("var"))
    return DEFAULT_URL


def sqlite_path(url: str | URL) -> Path | None:
    """The file of a SQLite URL (None for another backend or an in-memory database)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or is_memory(parsed):
        return None
    database = parsed.database or ""
    if database.startswith("file:"):  # a URI filename (?uri=true)
        database = database.removeprefix("file:").split("?", 1)[0]
    return Path(database)


def mask(url: str | URL) -> str:
    """The URL with its password hidden, safe to log or show."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


def describe(exc: BaseException, url: str | URL | None = None) -> str:
    """A short single-line text of a database error, without the URL's password."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    password = _password(url) if url is not None else None
    text = _masked(str(cause), password) if password else str(cause)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    message = " ".join(lines[0].split()) if lines else type(cause).__name__
    return message[:300]


def _masked(text: str, password: str) -> str:
    """`text` with `password` (as typed, or percent-encoded as in a URL) replaced by `***` wherever it stands as a
    whole token: never inside a longer run of letters or digits, so that a short password (`p`, `ort`) leaves
    "port 5432" and "Connection refused" whole, while `user:p@host` and `password=p` are masked."""
    forms = sorted({password, quote(password, safe=""), quote_plus(password)}, key=len, reverse=True)
    pattern = "|".join(
        ("(?<!\\w)" if _WORD.match(form[0]) else "") + re.escape(form) + ("(?!\\w)" if _WORD.match(form[-1]) else "")
        for form in forms
    )
    return re.sub(pattern, "***", text)


_WORD = re.compile(r"\w")


def _password(url: str | URL) -> str | None:
    try:
        return make_url(url).password
    except ArgumentError:
        return None


def is_memory(url: URL) -> bool:
    """True for an in-memory SQLite database (one connection shared by every thread)."""
    database = url.database or ""
    return url.get_backend_name() == "sqlite" and (database in ("", ":memory:") or url.query.get("mode") == "memory")


def make_engine(url: str | URL, *, connect_timeout: int = CONNECT_TIMEOUT) -> Engine:
    """An engine for `url`: SQLite tuned (WAL…) via a connect event, its new file created 0600; PostgreSQL with
    connect timeout, TCP keepalive and server-side timeouts (what the URL sets itself wins).

    No `pool_pre_ping`: `Store` pings on checkout itself, under its deadline (`deadlines.Watchdog`), which
    cannot reach a connection attempt: `connect_timeout` (seconds, at least 2 for libpq) bounds those.
    """
    parsed = make_url(url)
    options: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        options["connect_args"] = {"check_same_thread": False}
        if is_memory(parsed):
            options["poolclass"] = StaticPool
        elif (path := sqlite_path(parsed)) is not None and path.parent.is_dir():
            private_file(path)  # sqlite3 would create it 0644; its -wal and -shm files copy its mode
    elif parsed.get_backend_name() == "postgresql":
        options["connect_args"] = _postgres_args(parsed, max(2, connect_timeout))
    engine = create_engine(parsed, **options)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _tune_sqlite)
    return engine


def _postgres_args(url: URL, connect_timeout: int) -> dict[str, Any]:
    args = {key: value for key, value in PG_CONNECT_ARGS.items() if key not in url.query}
    if "connect_timeout" not in url.query:
        args["connect_timeout"] = connect_timeout
    given = url.query.get("options", "")
    given = " ".join(given) if isinstance(given, tuple) else given
    settings = [f"-c {name}={value}" for name, value in PG_SESSION.items() if name not in given]
    if settings:
        args["options"] = " ".join([given, *settings]).strip()  # connect_args override the URL's own options
    return args


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
    finally:
        cursor.close()


def _at_head(engine: Engine) -> bool:
    """Whether the database's schema is already `HEAD`'s (Alembic's version table holds it alone)."""
    with engine.connect() as connection:
        if not connection.dialect.has_table(connection, "alembic_version"):
            return False
        return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars()) == [HEAD]


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the Alembic migrations up to `revision` on `engine`, in one transaction, one process at a time: an
    advisory lock on PostgreSQL, a file lock beside a SQLite file (whose DDL pysqlite does not run in the
    transaction: two first starts would both create the tables).

    A database already at `HEAD` is left as it is without importing Alembic: its 130 modules (≈ 9 MiB) are
    loaded only by a process that migrates."""
    if revision == "head" and _at_head(engine):
        return
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    with _sqlite_migration_lock(engine.url), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SET LOCAL statement_timeout = 0"))  # an index on a big table takes time
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
        _refuse_unknown_revisions(connection, known, engine.url)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _refuse_unknown_revisions(connection: Connection, known: set[str], url: URL) -> None:
    """StoreError (one line) if the schema is at a revision this code does not have: a newer tpmon migrated it,
    and Alembic would only say so with a traceback."""
    if not connection.dialect.has_table(connection, "alembic_version"):
        return
    stored = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    unknown = sorted(version for version in stored if version not in known)
    if unknown:
        raise StoreError(
            said(
                "the database {url} has the schema of a newer tpmon (version {version}; this one knows up to "
                "{head}): run that version of tpmon or a newer one",
                url=mask(url),
                version=literal(", ".join(unknown)),
                head=literal(HEAD),
            )
        )


@contextlib.contextmanager
def _sqlite_migration_lock(url: URL) -> Iterator[None]:
    """Hold `<file>.migrate.lock` (flock, blocking) while a SQLite file is migrated; nothing for other databases."""
    if url.get_backend_name() != "sqlite" or is_memory(url) or (url.database or "").startswith("file:"):
        yield
        return
    path = Path(url.database or "").absolute()
    with open(path.with_name(path.name + ".migrate.lock"), "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        yield


def migrate(url: str) -> None:
    """`alembic upgrade head` on the database at `url`; StoreError (one line) if it fails."""
    try:
        engine = make_engine(url)
    except (ArgumentError, ImportError) as exc:
        raise StoreError(
            said("invalid database URL {url}: {reason}", url=mask(url), reason=literal(describe(exc, url)))
        ) from exc
    try:
        upgrade(engine)
    except SQLAlchemyError as exc:
        cannot = said("cannot migrate the database {url}: {reason}", url=mask(url), reason=literal(describe(exc, url)))
        raise StoreError(cannot) from exc
    finally:
        engine.dispose()
