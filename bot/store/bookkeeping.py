"""What the store keeps besides items and the outbox: recipients first met, destinations disabled, hosts' Retry-After
holds, the bot's own state (signing secret, last cycle) and unsubscribes. `Store` has these methods; they live here
with the transactions every part of the store uses, to keep `repo` about the diff and the outbox."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, insert, select, update

from bot.store.engine import chunks, dialect_insert, transaction
from bot.store.schema import bot_state, disabled_destinations, host_holds, recipients, unsubscribes

MAX_ERROR_CHARS = 2000  # an error message kept on a row (sources, deliveries) is cut here


class Bookkeeping:
    """The bookkeeping half of `Store` (see the module docstring)."""

    _engine: Engine

    def _read(self) -> AbstractContextManager[Connection]:
        return transaction(self._engine, write=False)

    def _write(self) -> AbstractContextManager[Connection]:
        return transaction(self._engine, write=True)

    def first_met(self) -> dict[tuple[str, str], datetime]:
        """{(channel, recipient name): when the planner first met it}."""
        with self._read() as connection:
            rows = connection.execute(select(recipients.c.channel, recipients.c.name, recipients.c.first_met_at))
            return {(str(channel), str(name)): at for channel, name, at in rows}

    def record_first_met(self, met: Mapping[tuple[str, str], datetime]) -> None:
        """Record first meetings in one transaction; a recipient met before keeps its first time."""
        if not met:
            return
        with self._write() as connection:
            rows = [{"channel": channel, "name": name, "first_met_at": at} for (channel, name), at in met.items()]
            for part in chunks(rows):
                connection.execute(dialect_insert(connection, recipients).values(part).on_conflict_do_nothing(
                    index_elements=["channel", "name"]))

    def disabled_destinations(self) -> dict[tuple[str, str], str]:
        """{(channel, address): why} for every destination disabled after a permanent error."""
        with self._read() as connection:
            rows = connection.execute(select(disabled_destinations.c.channel, disabled_destinations.c.address,
                                             disabled_destinations.c.reason))
            return {(str(channel), str(address)): str(reason) for channel, address, reason in rows}

    def disable_destination(self, channel: str, address: str, *, reason: str, at: datetime) -> None:
        with self._write() as connection:
            statement = dialect_insert(connection, disabled_destinations).values(
                channel=channel, address=address, reason=_clip(reason), disabled_at=at)
            connection.execute(statement.on_conflict_do_update(index_elements=["channel", "address"],
                                                               set_={"reason": _clip(reason), "disabled_at": at}))

    def enable_destination(self, channel: str, address: str) -> bool:
        """Undo `disable_destination`; whether it was disabled."""
        with self._write() as connection:
            table = disabled_destinations
            result = connection.execute(delete(table).where(table.c.channel == channel, table.c.address == address))
            return bool(result.rowcount)

    def host_holds(self) -> dict[str, datetime]:
        """{host: no request before}: Retry-After holds kept across restarts."""
        with self._read() as connection:
            return {str(host): at for host, at in connection.execute(select(host_holds.c.host,
                                                                            host_holds.c.not_before))}

    def save_host_holds(self, holds: Mapping[str, datetime]) -> None:
        """Replace the stored holds with `holds` (the live ones)."""
        with self._write() as connection:
            connection.execute(delete(host_holds))
            if holds:
                connection.execute(insert(host_holds), [{"host": h, "not_before": at} for h, at in holds.items()])

    def setdefault_secret(self, value: str) -> str:
        """Store `value` as the signing secret unless there is one; return what is stored. Two processes racing
        agree on one value."""
        with self._write() as connection:
            statement = dialect_insert(connection, bot_state).values(id=1, secret=value)
            connection.execute(statement.on_conflict_do_nothing(index_elements=["id"]))
            connection.execute(update(bot_state).where(bot_state.c.id == 1, bot_state.c.secret.is_(None))
                               .values(secret=value))
            return str(connection.execute(select(bot_state.c.secret).where(bot_state.c.id == 1)).scalar_one())

    def secret(self) -> str | None:
        with self._read() as connection:
            value: str | None = connection.execute(select(bot_state.c.secret)).scalar()
            return value

    def last_cycle(self) -> datetime | None:
        """When the last cycle finished (`digestbot status`)."""
        with self._read() as connection:
            at: datetime | None = connection.execute(select(bot_state.c.last_cycle_at)).scalar()
            return at

    def set_last_cycle(self, at: datetime) -> None:
        with self._write() as connection:
            statement = dialect_insert(connection, bot_state).values(id=1, last_cycle_at=at)
            connection.execute(statement.on_conflict_do_update(index_elements=["id"], set_={"last_cycle_at": at}))

    def unsubscribe(self, address: str, *, at: datetime) -> None:
        """Addresses are compared case-insensitively; the first unsubscribe time is kept."""
        with self._write() as connection:
            statement = dialect_insert(connection, unsubscribes)
            statement = statement.values(address=_address(address), unsubscribed_at=at)
            connection.execute(statement.on_conflict_do_nothing(index_elements=["address"]))

    def resubscribe(self, address: str) -> None:
        with self._write() as connection:
            connection.execute(delete(unsubscribes).where(unsubscribes.c.address == _address(address)))

    def is_unsubscribed(self, address: str) -> bool:
        with self._read() as connection:
            query = select(unsubscribes.c.address).where(unsubscribes.c.address == _address(address))
            return connection.execute(query).first() is not None

    def unsubscribed(self) -> set[str]:
        with self._read() as connection:
            return set(connection.execute(select(unsubscribes.c.address)).scalars())


def _address(address: str) -> str:
    return address.strip().lower()


def _clip(error: str) -> str:
    return error.replace("\x00", "")[:MAX_ERROR_CHARS]
