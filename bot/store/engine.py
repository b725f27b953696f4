"""Engine set-up, short transactions and migrations: everything dialect-specific the store needs.

SQLite gets WAL (readers never block the writer), a busy timeout, foreign keys, and `BEGIN IMMEDIATE` for write
transactions: taking the write lock up front means two writers queue on the busy timeout instead of one failing
with "database is locked" when it upgrades a read lock. That is SQLAlchemy's documented pysqlite recipe: turn off
the driver's own BEGIN and emit ours from the `begin` event. PostgreSQL runs the same code.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.schema import Table

from bot.errors import StoreError, StoreUnreachable

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_S = 10.0
# Any constant works; it only has to be the same in every digestbot process sharing one PostgreSQL database.
MIGRATION_LOCK_ID = 0x6469676573740001
_WRITE = "digestbot_write"
CHUNK = 200
T = TypeVar("T")

Insert = postgresql.Insert | sqlite.Insert


def create_store_engine(url: str) -> Engine:
    """An engine for `url`, with the SQLite pragmas and BEGIN handling installed."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"invalid database URL {url!r}: {exc}",
                         hint="Use e.g. sqlite:///data/digestbot.db or postgresql+psycopg://user@host/db.") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")  # the driver digestbot ships with, not psycopg2
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(parsed)
        return create_engine(parsed, pool_pre_ping=True)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise StoreError(f"no database driver for {parsed.drivername!r}: {exc}",
                         hint="For PostgreSQL use postgresql+psycopg://... and install the extra: "
                              "pip install 'digestbot[postgres]'.") from exc


def _sqlite_engine(url: URL) -> Engine:
    if sqlite3.sqlite_version_info < (3, 35):
        raise StoreError(f"SQLite {sqlite3.sqlite_version} is too old", hint="digestbot needs SQLite 3.35 or newer.")
    database = url.database or ""
    kwargs: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_S}}
    if database in ("", ":memory:"):
        # One shared connection, or every checkout would see a different empty database.
        kwargs.update(poolclass=StaticPool, connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False})
    else:
        _create_parent(Path(database))
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _create_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the directory for {path}: {exc}",
                         hint="Check the path in `bot.database` and its permissions.") from exc


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # the driver no longer emits BEGIN; _on_sqlite_begin does
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL, once: the mode is kept in the file, so later connections only read it.

    Switching needs the database to itself, and SQLite answers "database is locked" at once instead of waiting on
    the busy timeout when another connection is switching it too (processes opening a new database together), so
    that answer is retried here until the busy timeout has passed.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.002
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower() or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def _on_sqlite_begin(connection: Connection) -> None:
    write = connection.get_execution_options().get(_WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextmanager
def transaction(engine: Engine, *, write: bool) -> Iterator[Connection]:
    """One short transaction; database errors surface as StoreError so the CLI can report them."""
    try:
        with engine.connect() as connection:
            if write:
                connection.execution_options(**{_WRITE: True})
            with connection.begin():
                yield connection
    except DBAPIError as exc:
        if engine.dialect.name != "sqlite" and isinstance(exc, OperationalError) and (
                exc.connection_invalidated or _cannot_connect(exc)):
            raise StoreUnreachable(f"database unreachable: {_first_line(exc)}") from exc
        raise StoreError(f"database error: {_first_line(exc)}", hint=_hint_for(exc)) from exc


def dialect_insert(connection: Connection, table: Table) -> Insert:
    """The dialect's INSERT, which has `on_conflict_do_nothing` / `on_conflict_do_update`."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def chunks(values: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """Slices small enough to stay under SQLite's and PostgreSQL's bound-parameter limits."""
    for start in range(0, len(values), size):
        yield values[start:start + size]


def migrate(engine: Engine) -> None:
    """Bring the schema to head, serialised across processes (BEGIN IMMEDIATE / an advisory lock)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with transaction(engine, write=True) as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _cannot_connect(exc: DBAPIError) -> bool:
    message = str(exc.orig).lower()
    return any(word in message for word in ("connect", "connection", "server closed", "shutting down",
                                            "starting up", "terminating", "timeout"))


def _first_line(exc: DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)


def _hint_for(exc: DBAPIError) -> str:
    message = str(exc.orig).lower()
    if "locked" in message or "busy" in message:
        return "Another process holds the database; retry, or check for a stuck digestbot process."
    if "connect" in message or "connection" in message:
        return "Check that the database server is running and `bot.database` points at it."
    return StoreError.hint
