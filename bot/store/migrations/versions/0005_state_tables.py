"""State in tables, not meta keys: the `meta` key/value table is split into what it held.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

    first-seen:<channel>:<name>      → recipients (channel, name, first_met_at)
    disabled:<channel>:<address>     → disabled_destinations (a "" value meant enabled again: not carried)
    slack-parts-sent:<outbox key>    → deliveries.parts_sent
    admin-notified:<source>          → sources.notified_streak ("" → NULL)
    host-not-before ({host: time})   → host_holds
    unsubscribe-secret, last_cycle   → bot_state (one row)

Anything else in `meta` was written by releases that no longer read it (`configured-addresses`) and is dropped
with the table. The downgrade writes every key back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from bot.store.schema import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIRST_SEEN, DISABLED, PARTS, NOTIFIED = "first-seen:", "disabled:", "slack-parts-sent:", "admin-notified:"
HOSTS, SECRET, LAST_CYCLE = "host-not-before", "unsubscribe-secret", "last_cycle"

meta = sa.table("meta", sa.column("key", sa.String), sa.column("value", sa.Text))
recipients = sa.table("recipients", sa.column("channel", sa.String), sa.column("name", sa.String),
                      sa.column("first_met_at", UTCDateTime))
disabled = sa.table("disabled_destinations", sa.column("channel", sa.String), sa.column("address", sa.String),
                    sa.column("reason", sa.Text), sa.column("disabled_at", UTCDateTime))
host_holds = sa.table("host_holds", sa.column("host", sa.String), sa.column("not_before", UTCDateTime))
bot_state = sa.table("bot_state", sa.column("id", sa.Integer), sa.column("secret", sa.Text),
                     sa.column("last_cycle_at", UTCDateTime))
deliveries = sa.table("deliveries", sa.column("key", sa.String), sa.column("parts_sent", sa.Integer))
sources = sa.table("sources", sa.column("name", sa.String), sa.column("notified_streak", sa.Text))


def _time(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def upgrade() -> None:
    op.create_table("recipients",
                    sa.Column("channel", sa.String(), nullable=False), sa.Column("name", sa.String(), nullable=False),
                    sa.Column("first_met_at", UTCDateTime(), nullable=False),
                    sa.PrimaryKeyConstraint("channel", "name", name="pk_recipients"))
    op.create_table("disabled_destinations",
                    sa.Column("channel", sa.String(), nullable=False),
                    sa.Column("address", sa.String(), nullable=False),
                    sa.Column("reason", sa.Text(), nullable=False),
                    sa.Column("disabled_at", UTCDateTime(), nullable=False),
                    sa.PrimaryKeyConstraint("channel", "address", name="pk_disabled_destinations"))
    op.create_table("host_holds",
                    sa.Column("host", sa.String(), nullable=False),
                    sa.Column("not_before", UTCDateTime(), nullable=False),
                    sa.PrimaryKeyConstraint("host", name="pk_host_holds"))
    op.create_table("bot_state",
                    sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
                    sa.Column("secret", sa.Text(), nullable=True),
                    sa.Column("last_cycle_at", UTCDateTime(), nullable=True),
                    sa.CheckConstraint("id = 1", name="ck_bot_state_one_row"),
                    sa.PrimaryKeyConstraint("id", name="pk_bot_state"))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("parts_sent", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("notified_streak", sa.Text(), nullable=True))
    _carry_over(op.get_bind())
    op.drop_table("meta")


def _carry_over(connection: sa.Connection) -> None:
    """Every meta entry into its new home, in this migration's transaction."""
    now = datetime.now(UTC)
    met, off, holds = [], [], []
    state: dict[str, object] = {}
    for key, value in connection.execute(sa.select(meta.c.key, meta.c.value)):
        channel, _, rest = key.partition(":")[2].partition(":")
        if key.startswith(FIRST_SEEN) and (at := _time(value)) is not None:
            met.append({"channel": channel, "name": rest, "first_met_at": at})
        elif key.startswith(DISABLED) and value:
            off.append({"channel": channel, "address": rest, "reason": value, "disabled_at": now})
        elif key.startswith(PARTS) and value.isdigit():
            connection.execute(sa.update(deliveries).where(deliveries.c.key == key.removeprefix(PARTS))
                               .values(parts_sent=int(value)))
        elif key.startswith(NOTIFIED) and value:
            connection.execute(sa.update(sources).where(sources.c.name == key.removeprefix(NOTIFIED))
                               .values(notified_streak=value))
        elif key == HOSTS:
            saved = json.loads(value or "{}")
            holds += [{"host": host, "not_before": at} for host, iso in saved.items()
                      if (at := _time(str(iso))) is not None and at > now]
        elif key == SECRET:
            state["secret"] = value
        elif key == LAST_CYCLE:
            state["last_cycle_at"] = _time(value)
    for table, rows in ((recipients, met), (disabled, off), (host_holds, holds)):
        if rows:
            connection.execute(sa.insert(table), rows)
    if state:
        connection.execute(sa.insert(bot_state).values(id=1, **state))


def downgrade() -> None:
    op.create_table("meta", sa.Column("key", sa.String(), nullable=False),
                    sa.Column("value", sa.Text(), nullable=False), sa.PrimaryKeyConstraint("key", name="pk_meta"))
    connection = op.get_bind()
    rows = [{"key": f"{FIRST_SEEN}{c}:{n}", "value": at.isoformat()}
            for c, n, at in connection.execute(sa.select(recipients.c.channel, recipients.c.name,
                                                         recipients.c.first_met_at))]
    rows += [{"key": f"{DISABLED}{c}:{a}", "value": reason}
             for c, a, reason in connection.execute(sa.select(disabled.c.channel, disabled.c.address,
                                                              disabled.c.reason))]
    rows += [{"key": PARTS + key, "value": str(parts)} for key, parts in connection.execute(
        sa.select(deliveries.c.key, deliveries.c.parts_sent).where(deliveries.c.parts_sent > 0))]
    rows += [{"key": NOTIFIED + name, "value": streak} for name, streak in connection.execute(
        sa.select(sources.c.name, sources.c.notified_streak).where(sources.c.notified_streak.is_not(None)))]
    holds = {host: at.isoformat() for host, at in connection.execute(sa.select(host_holds.c.host,
                                                                               host_holds.c.not_before))}
    if holds:
        rows.append({"key": HOSTS, "value": json.dumps(holds, sort_keys=True)})
    for secret, last_cycle in connection.execute(sa.select(bot_state.c.secret, bot_state.c.last_cycle_at)):
        rows += [{"key": SECRET, "value": secret}] if secret else []
        rows += [{"key": LAST_CYCLE, "value": last_cycle.isoformat()}] if last_cycle else []
    if rows:
        connection.execute(sa.insert(meta), rows)
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("notified_streak")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("parts_sent")
    for table in ("bot_state", "host_holds", "disabled_destinations", "recipients"):
        op.drop_table(table)
