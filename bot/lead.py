"""Who may run the scheduling half of a cycle (refresh sources, plan deliveries) when several processes run.

Every process may deliver: outbox claims use `FOR UPDATE SKIP LOCKED` and leases, so senders never collide.
Planning twice is harmless too (outbox keys are unique), so the lead is about not fetching every source once
per process and not racing planners, not about exactly-once; a moment with two leaders costs work, not mail.

PostgreSQL: a session advisory lock held on one dedicated connection for the life of the process. When the
leader dies, its session ends, PostgreSQL drops the lock, and another process takes it on its next tick. The
session asks the server for TCP keepalives, so even a leader whose host vanished is let go within a minute.

SQLite: one digestbot per database file. A second `digestbot run` refuses to start, naming the file and the pid
that holds it: SQLite has one writer at a time, so a second daemon would only double the traffic to every
source and queue on the write lock. `digestbot once` waits (bounded) for another `once` to finish, but refuses
at once while a daemon runs, which is already doing the work. The lock is an `flock` on `<database>.lock`, so
the kernel releases it when the holder dies, however it dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, make_url, text
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from bot.errors import BotError, StoreError

log = logging.getLogger(__name__)

LOCK_NAME = "digestbot-scheduler"
KEEPALIVE_IDLE_S = 10  # the server probes a silent leader after this, every KEEPALIVE_INTERVAL_S, ...
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3  # ... and ends its session (releasing the lock) after this many unanswered probes: ~25 s
CONNECT_TIMEOUT_S = 10
WAIT_POLL_S = 0.2
HOLD_HINT = "Several digestbot processes can share one database only on PostgreSQL."
_APP_NAME = re.compile(r"pid=(?P<pid>\d+) host=(?P<host>\S+)")


class LeadHeldError(BotError):
    """Another digestbot process holds this SQLite database."""

    hint = f"Stop the other digestbot first, or point this one at another `bot.database`. {HOLD_HINT}"


@dataclass(frozen=True, slots=True)
class LeadHolder:
    """Who holds the scheduler lead, as far as we can tell (for messages and `digestbot status`)."""

    pid: int | None = None
    host: str | None = None
    purpose: str | None = None
    since: datetime | None = None
    backend_pid: int | None = None  # PostgreSQL: the holder's server process

    def describe(self) -> str:
        parts = []
        if self.purpose:
            parts.append(f"`digestbot {self.purpose}`")
        if self.pid is not None:
            parts.append(f"pid {self.pid}" + (f" on {self.host}" if self.host else ""))
        if self.since is not None:
            parts.append(f"since {self.since.isoformat(timespec='seconds')}")
        return ", ".join(parts) or "unknown process"


class Leadership:
    """Base and factory: `with Leadership.for_url(url) as lead:` then `lead.try_lead()` once per tick."""

    def __init__(self) -> None:
        self.leading = False

    @staticmethod
    def for_url(database_url: str, *, purpose: str = "run", wait: float = 0.0) -> Leadership:
        """The leadership for this database. On SQLite the file lock is taken here (LeadHeldError if held).

        `purpose` ("run" or "once") is recorded for the message another process shows; `wait` is how long a
        SQLite `once` waits for another `once` to finish (a running daemon is never waited for).
        """
        try:
            url = make_url(database_url)
        except ArgumentError as exc:
            raise StoreError(f"invalid database URL {database_url!r}: {exc}") from exc
        backend = url.get_backend_name()
        if backend == "sqlite":
            database = url.database or ""
            if database in ("", ":memory:"):
                return AlwaysLeader()  # nothing another process could share
            sqlite = SqliteLeadership(Path(database), purpose=purpose)
            sqlite.acquire(wait=wait)
            return sqlite
        if backend in ("postgresql", "postgres"):
            return PgLeadership(database_url, purpose=purpose)
        return AlwaysLeader()

    def try_lead(self) -> bool:
        """True if this process holds the lead now (taking it if it is free). Cheap: call it every tick."""
        raise NotImplementedError

    def release(self) -> None:
        """Give the lead up, so another process can take it on its next tick (e.g. when stopping)."""
        self.leading = False

    def close(self) -> None:
        self.release()

    def holder_info(self) -> LeadHolder | None:
        """Who holds the lead now, or None if nobody does."""
        return None

    def __enter__(self) -> Leadership:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class AlwaysLeader(Leadership):
    """An in-memory database (or a backend with nothing to coordinate): only this process can see it."""

    def try_lead(self) -> bool:
        self.leading = True
        return True

    def holder_info(self) -> LeadHolder | None:
        return LeadHolder(pid=os.getpid(), host=socket.gethostname()) if self.leading else None


class SqliteLeadership(Leadership):
    """An exclusive `flock` on `<database>.lock`, held for the life of the process; the file names the holder."""

    def __init__(self, database: Path, *, purpose: str = "run") -> None:
        super().__init__()
        self.database = database
        self.path = Path(f"{database}.lock")
        self.purpose = purpose
        self._fd: int | None = None

    def acquire(self, *, wait: float = 0.0) -> None:
        """Take the lock, or raise LeadHeldError naming the file and the holder's pid.

        Waits up to `wait` seconds while the holder is a `digestbot once` (it will finish); a `digestbot run`
        holder never lets go by itself, so waiting for it is pointless.
        """
        deadline = time.monotonic() + wait
        while not self._try_lock():
            holder = self.holder_info()
            if (holder is not None and holder.purpose == "run") or time.monotonic() >= deadline:
                who = holder.describe() if holder is not None else "unknown process"
                hint = (f"A running digestbot already does this work; stop it first to run a cycle by hand. {HOLD_HINT}"
                        if self.purpose == "once" else None)
                raise LeadHeldError(f"another digestbot ({who}) is running on {self.database}; "
                                    f"it holds {self.path}", hint=hint)
            time.sleep(WAIT_POLL_S)

    def _try_lock(self) -> bool:
        if self._fd is not None:
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes
        except OSError as exc:
            raise StoreError(f"cannot open the lock file {self.path}: {exc}",
                             hint="Check the path in `bot.database` and its permissions.") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        info = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": self.purpose,
                "since": datetime.now(UTC).isoformat(timespec="seconds")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        except OSError as exc:  # e.g. the disk is full: say so, and hold nothing
            os.close(fd)
            raise StoreError(f"cannot write the lock file {self.path}: {exc.strerror or exc}",
                             hint="Is the disk full? digestbot needs a little room beside its database.") from exc
        self._fd = fd
        return True

    def try_lead(self) -> bool:
        self.leading = self._try_lock()
        return self.leading

    def release(self) -> None:
        fd, self._fd = self._fd, None
        self.leading = False
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # while still locked, so the next holder's note is never wiped
        os.close(fd)  # closing the only descriptor drops the flock

    def holder_info(self) -> LeadHolder | None:
        """The holder named in the lock file, if the lock is held (by this process or another)."""
        if self._fd is None and not self._held_elsewhere():
            return None
        try:
            note: dict[str, Any] = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            note = {}
        since = note.get("since")
        return LeadHolder(pid=note.get("pid"), host=note.get("host"), purpose=note.get("purpose"),
                          since=datetime.fromisoformat(since) if isinstance(since, str) else None)

    def _held_elsewhere(self) -> bool:
        """Probe with a shared lock; a probe can make a starting process refuse for that instant (rare)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


class PgLeadership(Leadership):
    """`pg_try_advisory_lock` on one dedicated autocommit connection, kept open for the life of the process.

    The key is derived from the database's current schema, so deployments (and tests) in separate schemas of
    one database do not share a leader. The connection is opened on the first `try_lead`, not before.
    """

    def __init__(self, database_url: str, *, purpose: str = "run") -> None:
        super().__init__()
        self.purpose = purpose
        self._engine = _lock_engine(database_url, purpose)
        self._connection: Connection | None = None
        self.key: int | None = None
        self._unreachable = False

    def try_lead(self) -> bool:
        try:
            return self._try_lead_once()
        except SQLAlchemyError as exc:
            self._drop(exc)
        try:  # the connection dropped: one fresh connection, one more try
            return self._try_lead_once()
        except SQLAlchemyError as exc:
            self._drop(exc)
            if not self._unreachable:
                log.warning("scheduler lead: cannot reach the database (%s); only delivering until it is back",
                            _first_line(exc))
                self._unreachable = True
            return False

    def _try_lead_once(self) -> bool:
        connection = self._connect()
        self._unreachable = False
        if self.leading and self._holds(connection):
            return True
        if self.leading:  # still connected, yet the lock is gone (someone unlocked our session)
            self.leading = False
            log.warning("scheduler lead lost: the advisory lock is no longer held")
        got = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar())
        if got:
            self.leading = True
            log.info("scheduler lead taken (pid %d)", os.getpid())
        return got

    def _connect(self) -> Connection:
        if self._connection is not None:
            return self._connection
        connection = self._engine.connect()
        try:
            for name, value in (("tcp_keepalives_idle", KEEPALIVE_IDLE_S),
                                ("tcp_keepalives_interval", KEEPALIVE_INTERVAL_S),
                                ("tcp_keepalives_count", KEEPALIVE_COUNT)):
                connection.execute(text("SELECT set_config(:name, :value, false)"),
                                   {"name": name, "value": str(value)})
            row = connection.execute(text("SELECT current_database(), current_schema(), "
                                          "current_setting('search_path')")).one()
        except BaseException:
            connection.close()
            raise
        key = lock_key(row[0], row[1] or row[2])
        if self.key is not None and key != self.key:  # cannot happen with one URL; guard against silent split
            log.warning("scheduler lead key changed from %d to %d", self.key, key)
        self.key = key
        self._connection = connection
        return connection

    def _holds(self, connection: Connection) -> bool:
        classid, objid = _lock_parts(self._require_key())
        query = text("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
                     "AND pid = pg_backend_pid() AND classid::bigint = :classid AND objid::bigint = :objid "
                     "AND objsubid = 1)")
        return bool(connection.execute(query, {"classid": classid, "objid": objid}).scalar())

    def _require_key(self) -> int:
        assert self.key is not None, "key is set on connect"
        return self.key

    def _drop(self, exc: BaseException) -> None:
        """Forget a broken connection; if we led, the server has ended (or will end) our session and lock."""
        if self.leading:
            log.warning("scheduler lead lost: %s", _first_line(exc))
        self.leading = False
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                connection.invalidate()
            with contextlib.suppress(SQLAlchemyError):
                connection.close()

    def release(self) -> None:
        if self.leading and self._connection is not None:
            try:
                self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
                log.info("scheduler lead released")
            except SQLAlchemyError as exc:  # the session is gone, and the lock with it
                self._drop(exc)
        self.leading = False

    def close(self) -> None:
        self.release()
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                connection.close()
        self._engine.dispose()

    def holder_info(self) -> LeadHolder | None:
        """The session holding the lock, from pg_locks and pg_stat_activity (our application_name names it)."""
        try:
            connection = self._connect()
            classid, objid = _lock_parts(self._require_key())
            row = connection.execute(text(
                "SELECT a.pid, a.application_name, a.backend_start, host(a.client_addr) FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.classid::bigint = :classid AND l.objid::bigint = :objid AND l.objsubid = 1 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
                {"classid": classid, "objid": objid}).first()
        except SQLAlchemyError as exc:
            self._drop(exc)
            raise StoreError(f"cannot read the scheduler lead: {_first_line(exc)}") from exc
        if row is None:
            return None
        backend_pid, app_name, since, client = row
        found = _APP_NAME.search(app_name or "")
        purpose = (app_name or "").split(" ")[1] if (app_name or "").startswith("digestbot ") else None
        return LeadHolder(pid=int(found["pid"]) if found else None, host=found["host"] if found else client,
                          purpose=purpose, since=since, backend_pid=backend_pid)


def lock_key(database: str, schema: str) -> int:
    """A signed 64-bit advisory-lock key for this database and schema; the same in every digestbot process."""
    digest = hashlib.sha256(f"{LOCK_NAME}:{database}:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _lock_parts(key: int) -> tuple[int, int]:
    """How pg_locks shows a bigint advisory key: high and low 32 bits as unsigned oids (objsubid = 1)."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


def _lock_engine(database_url: str, purpose: str) -> Engine:
    """A connection factory of its own (no pool): the lock lives on exactly one session we control."""
    url = make_url(database_url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    app_name = f"digestbot {purpose} pid={os.getpid()} host={socket.gethostname()}"[:63]
    connect_args: dict[str, Any] = {"application_name": app_name, "connect_timeout": CONNECT_TIMEOUT_S,
                                    "keepalives": 1, "keepalives_idle": KEEPALIVE_IDLE_S,
                                    "keepalives_interval": KEEPALIVE_INTERVAL_S, "keepalives_count": KEEPALIVE_COUNT}
    try:
        return create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT", connect_args=connect_args)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise StoreError(f"no database driver for {url.drivername!r}: {exc}",
                         hint="Install the extra: pip install 'digestbot[postgres]'.") from exc


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return (str(orig if orig is not None else exc).strip().splitlines() or [type(exc).__name__])[0]
