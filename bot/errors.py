"""One exception tree for everything a user can be told about.

    BotError                 base: a message plus a hint the user can act on
     ├── ConfigError         the config file is wrong (carries every problem, each with its key path)
     ├── FetchError          a source could not be fetched (HTTP status, timeout, too large, bad scheme)
     ├── ParseError          a page could not be turned into items (garbage, or "layout changed?")
     ├── StoreError          the database refused (migrations, locked, unreachable)
     │   └── StoreUnreachable   its server did not answer (`digestbot run` waits for it)
     └── DeliveryError       a send failed; its kind says what the outbox does with the row
         ├── Retryable             nothing went out; try later
         │   ├── MaybeSent         it may have gone out: again later, same Message-ID (email)
         │   └── SessionRefused    the batch's session was refused: stop, try later, tell a person
         ├── Permanent             it can never go as it is
         │   ├── AuthFailed        the login was refused: stop, tell a person
         │   └── DestinationGone   the channel or webhook is gone: disable it
         └── UnknownOutcome        it may have gone out, and cannot be sent again blindly (Slack)

`cli.py` is the only place that turns these into a message and an exit code.
"""

from __future__ import annotations

from datetime import datetime


class BotError(Exception):
    """Base of every error digestbot reports to a person."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(BotError):
    """The config is invalid; `problems` lists each as "key.path: what was expected"."""

    hint = "Fix the keys named above; `digestbot check-config` re-checks the file."

    def __init__(self, message: str, *, problems: list[str] | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problems: list[str] = problems or [message]


class FetchError(BotError):
    """A source could not be fetched; the source is marked failing and the run goes on."""

    hint = "Check the source URL in the config; the source is retried on its next refresh."

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None,
                 retry_at: datetime | None = None, held: bool = False, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.retry_after = retry_after  # seconds the site asked us to wait (Retry-After), from when it answered
        self.retry_at = retry_at  # the same as a time, where the site gave one (Retry-After as an HTTP date)
        self.held = held  # nothing was sent: the host asked us earlier to wait (another source's Retry-After)


class ParseError(BotError):
    """A page did not yield items the way its kind promises (garbage, or a changed layout)."""

    hint = "Check that the source `kind` matches the page; if it used to work, the site's layout may have changed."


class StoreError(BotError):
    """The database could not be opened, migrated or written."""

    hint = "Check `bot.database` in the config and that the database is reachable and writable."


class StoreUnreachable(StoreError):
    """The database server did not answer (down, restarting, not yet up): worth waiting for."""

    hint = "Check that the database server is running and `bot.database` points at it."


class DeliveryError(BotError):
    """A send failed; which subclass says what the outbox does with the row (`bot.outbox.deliver.OUTCOMES`).

    The class attributes are what each kind implies: `retry` (a later attempt can succeed), `unknown` (the
    message may have gone out), `stop_batch` (every send of this batch would fail the same way: stop and tell a
    person), `disable_destination` (the destination is gone for good).
    """

    hint = "Check the [smtp] / [slack] settings; the delivery stays in the outbox (`digestbot outbox`)."
    retry = False
    unknown = False
    stop_batch = False
    disable_destination = False

    def __init__(self, message: str, *, retry_after: float | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after  # what the server asked for (Retry-After), when it did


class Retryable(DeliveryError):
    """Nothing was sent and a later attempt can succeed: a connection problem, a 4xx, a 429."""

    retry = True


class MaybeSent(Retryable):
    """The connection broke after the message went out: sent again later with the same Message-ID (email only,
    where a receiving server or client can tell the duplicate)."""

    unknown = True


class SessionRefused(Retryable):
    """The server refused this batch's session (TLS, a temporary login refusal): every send would fail alike, so
    the batch stops, is retried later, and a person is told."""

    stop_batch = True


class Permanent(DeliveryError):
    """This message can never be delivered as it is (rejected, malformed, not configured)."""


class AuthFailed(Permanent):
    """The login was refused: stop the batch and tell a person; nothing is retried until they fix it."""

    stop_batch = True


class DestinationGone(Permanent):
    """The channel or webhook is gone for good: the destination is disabled until a person re-enables it."""

    disable_destination = True


class UnknownOutcome(DeliveryError):
    """A post may or may not have gone out and cannot be sent again blindly (Slack has no idempotency key)."""

    unknown = True
