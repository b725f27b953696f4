"""Admin notices about the bot itself: a source failing for a while, and its recovery.

A source that fails `bot.failure_threshold` times in a row is reported once per failure streak, and once again
when it works again, to `bot.admin_email` and/or `bot.admin_slack_channel`. Notices go through the outbox like
digests (unique key per source and streak), so a restart or a second process never sends one twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.config import Config
from bot.models import Notice
from bot.outbox.keys import notice_key
from bot.outbox.model import Channel, Kind, Payload, PlannedDelivery
from bot.store import SourceState, Store


def admin_destinations(config: Config) -> list[tuple[Channel, str]]:
    """(channel, address) pairs the admin is reachable at, as configured."""
    found: list[tuple[Channel, str]] = []
    if config.bot.admin_email and config.smtp is not None:
        found.append((Channel.EMAIL, config.bot.admin_email))
    if config.bot.admin_slack_channel and config.slack is not None:
        found.append((Channel.SLACK, config.bot.admin_slack_channel))
    return found


def _failing_notice(state: SourceState, now: datetime) -> Notice:
    since = state.last_success_at.strftime("%Y-%m-%d %H:%M UTC") if state.last_success_at else "never"
    return Notice(kind="source-failing", title=f"Source {state.name} is failing",
                  lines=(f"Source {state.name} failed {state.consecutive_failures} times in a row.",
                         f"Last error: {state.last_error or 'unknown'}",
                         f"Last success: {since}.",
                         "Digests say that this source is failing until it works again; you will be told when "
                         "it does. `digestbot sources` shows every source's health."),
                  generated_at=now)


def _recovered_notice(state: SourceState, now: datetime) -> Notice:
    return Notice(kind="source-recovered", title=f"Source {state.name} works again",
                  lines=(f"Source {state.name} was fetched successfully at {now:%Y-%m-%d %H:%M UTC} "
                         f"({state.last_item_count or 0} items).",),
                  generated_at=now)


def plan_notices(config: Config, store: Store, *, now: datetime,
                 new_message_id: Callable[[], str]) -> tuple[list[PlannedDelivery], dict[str, str | None]]:
    """The admin notices owed now, and the markers that record them as told ({source: streak told, or None});
    the caller writes both in one transaction (`Store.plan(rows, notified=markers)`), so a crash in between can
    neither lose a notice nor send it twice (its key is the same when it is planned again)."""
    destinations = admin_destinations(config)
    if not destinations:
        return [], {}
    planned: list[PlannedDelivery] = []
    markers: dict[str, str | None] = {}
    for source in config.sources:
        if not source.enabled:
            continue
        state = store.get_source_state(source.name)
        reported = state.notified_streak
        if state.consecutive_failures >= config.bot.failure_threshold and not reported:
            streak = state.last_success_at.isoformat() if state.last_success_at else "never"
            notice, key = _failing_notice(state, now), f"source-failing:{source.name}:{streak}"
            markers[source.name] = streak
        elif state.consecutive_failures == 0 and reported:
            notice, key = _recovered_notice(state, now), f"source-recovered:{source.name}:{reported}"
            markers[source.name] = None
        else:
            continue
        planned.extend(notice_rows(destinations, notice, key, now=now, new_message_id=new_message_id))
    return planned, markers


def notice_rows(destinations: list[tuple[Channel, str]], notice: Notice, key: str, *, now: datetime,
                new_message_id: Callable[[], str]) -> list[PlannedDelivery]:
    """Outbox rows for one notice, one per admin destination; `key` makes it once-only."""
    return [PlannedDelivery(key=notice_key(channel, key), kind=Kind.NOTICE, channel=channel, recipient="admin",
                            address=address, period_key=now.strftime("%Y-%m-%dT%H:%M"),
                            payload=Payload(notice=notice),
                            message_id=new_message_id(), covers_until=now)
            for channel, address in destinations]


# What each kind of stuck sending tells the admin: a title ({address} is the destination) and what to do.
DELIVERY_PROBLEMS: dict[str, tuple[str, str]] = {
    "auth-failed": (
        "Email delivery is stopped: the SMTP server refused the login",
        "Digests stay in the outbox and are retried; check [smtp] username and the password variable named by "
        "password_env. `digestbot outbox` lists them."),
    "secret-missing": (
        "Sending is held: a secret is not set in digestbot's environment",
        "Digests and alerts wait in the outbox and go out once the variable is set (restart digestbot after "
        "setting it). `digestbot check-config` lists every missing one."),
    "render-failed": (
        "A delivery to {address} could not be written, and was not sent",
        "It is marked failed; every other delivery goes out as usual. This is a bug in digestbot or in a "
        "template: please report it with the error above. `digestbot outbox` lists it with its ID, and "
        "`digestbot outbox retry ID` sends it once the cause is fixed."),
    "slack-unknown": (
        "A Slack post to {address} may or may not have gone out",
        "It is not posted again on its own: Slack has no idempotency key. Look in the channel; `digestbot outbox` "
        "lists such posts and `digestbot outbox retry ID` posts one. With a bot token that has the "
        "channels:history scope (groups:history for a private channel), digestbot looks for the post itself and "
        "never needs this."),
    "destination-disabled": (
        "Slack destination {address} is disabled",
        "Nothing more is posted there until the config names another channel or webhook, or "
        "`digestbot outbox retry ID` is run for one of its deliveries."),
}


def delivery_problem_notice(kind: str, channel: str, address: str, error: str, now: datetime) -> Notice:
    """A notice that sending itself is stuck (`DELIVERY_PROBLEMS`: the SMTP login failed, a secret is missing, a
    delivery could not be rendered, a Slack post may or may not have gone out, a Slack destination is gone)."""
    title, advice = DELIVERY_PROBLEMS.get(kind, DELIVERY_PROBLEMS["destination-disabled"])
    return Notice(kind=kind, title=title.format(address=address), lines=(f"Error: {error}", advice),
                  generated_at=now)
