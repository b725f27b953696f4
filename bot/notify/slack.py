"""Slack: post rendered messages with chat.postMessage (bot token) or an incoming webhook.

Slack has no idempotency key, so the rules (RELIABILITY.md) are about never posting twice: slack_sdk's own
retry handlers are switched off; a 429 is waited out (Retry-After, capped) and posted exactly once more; a
connection lost after the request went out is "unknown" and is not re-posted. Errors that will not heal
(`channel_not_found`, `invalid_auth`, webhook 404/410, ...) disable the destination. The token and webhook URLs
are secrets: never logged, never in an error message, never in a repr.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.config import SlackSettings
from bot.errors import DeliveryError, DestinationGone, Permanent, Retryable, UnknownOutcome
from bot.render import SlackMessage
from bot.safetext import one_line

log = logging.getLogger(__name__)
# slack_sdk logs request URLs at DEBUG; a webhook URL is a secret, so its loggers never go below WARNING.
_sdk_log = logging.getLogger(f"{__name__}.sdk")
_sdk_log.setLevel(logging.WARNING)

MAX_RETRY_AFTER = 60.0
DEFAULT_RETRY_AFTER = 5.0
PERMANENT_API_ERRORS = frozenset({
    "channel_not_found", "invalid_auth", "not_in_channel", "account_inactive", "token_revoked", "token_expired",
    "not_authed", "is_archived", "missing_scope", "no_permission", "restricted_action", "team_access_not_granted",
})
PERMANENT_WEBHOOK_STATUSES = frozenset({403, 404, 410})  # invalid_token / no_service / channel_is_archived
MALFORMED_ERRORS = frozenset({"invalid_blocks", "invalid_blocks_format", "msg_too_long", "no_text",
                              "invalid_arguments", "too_many_attachments"})
_HINT = "Check the Slack token/webhook and that the bot is in the channel; the destination stays disabled."

METADATA_EVENT = "digestbot_post"  # message metadata on every post: {"key": outbox key, "part": index}
HISTORY_PAGES = 5  # 1,000 messages back at most when looking for a post
HISTORY_MARGIN = timedelta(minutes=10)  # clocks differ: look back this much before the send began
HISTORY_HINT = ("Give the bot token the channels:history scope (groups:history for a private channel) and "
                "digestbot finds out by itself; until then it is not posted again (`digestbot outbox retry ID`).")
PostTag = tuple[str, int]  # (outbox key, part index)
Sleep = Callable[[float], Awaitable[None]]


class SlackNotifier:
    """One instance per run; it holds no connection between posts (slack_sdk opens one per request)."""

    def __init__(self, settings: SlackSettings, *, token: str | None, timeout: float = 30.0,
                 max_retry_after: float = MAX_RETRY_AFTER, sleep: Sleep = asyncio.sleep) -> None:
        self._settings = settings
        self._timeout = max(1, int(round(timeout)))
        self._max_retry_after = max_retry_after
        self._sleep = sleep
        self._client = AsyncWebClient(token=token, base_url=settings.base_url, timeout=self._timeout,
                                      retry_handlers=[], logger=_sdk_log) if token else None

    def __repr__(self) -> str:
        return f"SlackNotifier(base_url={self._settings.base_url!r}, token={'set' if self._client else 'none'})"

    async def post(self, channel: str, message: SlackMessage, *, tag: PostTag | None = None) -> None:
        """chat.postMessage to `channel`; raises DeliveryError classified for the outbox.

        `tag` (outbox key and part) goes along as message metadata, so that after a crash mid-post `find_posted`
        can tell whether this post went out."""
        client = self._client
        if client is None:
            raise Retryable(f"no Slack token to post to {channel}",  # a config problem: wait
                            hint=f"Set the {self._settings.token_env or 'Slack token'} environment variable.")
        where = f"Slack channel {channel}"
        metadata = ({"event_type": METADATA_EVENT, "event_payload": {"key": tag[0], "part": tag[1]}}
                    if tag is not None else None)

        async def attempt() -> None:
            await client.chat_postMessage(channel=channel, text=message.text, blocks=message.blocks,
                                          unfurl_links=False, unfurl_media=False, metadata=metadata)

        await self._post_twice_at_most(where, attempt)
        log.info("posted %d blocks to %s", len(message.blocks), where)

    async def find_posted(self, channel: str, key: str, *, since: datetime | None) -> set[int]:
        """The parts of outbox row `key` found in the channel's recent history (by the metadata `post` tags them
        with), newest first, at most `HISTORY_PAGES` pages back, from `since` (less a margin) when known.

        Needs the channels:history scope (groups:history for a private channel). Raises DeliveryError: with
        `retry` when Slack could not be asked now, without it when the history cannot be read at all.
        """
        client = self._client
        where = f"Slack channel {channel}"
        if client is None:
            raise Permanent(f"no Slack token to read {where}")
        oldest = f"{(since - HISTORY_MARGIN).timestamp():.6f}" if since is not None else None
        found: set[int] = set()
        cursor: str | None = None
        for _ in range(HISTORY_PAGES):
            try:
                response = await client.conversations_history(channel=channel, include_all_metadata=True,
                                                               limit=200, oldest=oldest, cursor=cursor)
            except SlackApiError as exc:
                error = _api_error(exc.response.data)
                if exc.response.status_code == 429 or error not in PERMANENT_API_ERRORS:
                    raise Retryable(f"cannot read the history of {where} now ({error})",
                                    retry_after=_retry_after(exc.response.headers)) from None
                raise Permanent(f"cannot read the history of {where} ({error}) to tell whether a post went out",
                                hint=HISTORY_HINT) from None
            except (aiohttp.ClientError, TimeoutError, SlackClientError) as exc:
                raise Retryable(f"cannot read the history of {where} now ({_connection_problem(exc)})") from None
            for message in response.get("messages") or ():
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if metadata.get("event_type") == METADATA_EVENT and payload.get("key") == key:
                    found.add(int(payload.get("part", 0)))
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not response.get("has_more") or not cursor:
                break
        return found

    async def post_webhook(self, url: str, message: SlackMessage) -> None:
        """POST to an incoming webhook; the URL (a secret) never appears in logs or errors."""
        where = "Slack webhook"
        client = AsyncWebhookClient(url, timeout=self._timeout, retry_handlers=[], logger=_sdk_log)

        async def attempt() -> None:
            response = await client.send(text=message.text, blocks=message.blocks, unfurl_links=False,
                                         unfurl_media=False)
            if response.status_code != 200:
                raise _WebhookRejected(response.status_code, response.body, response.headers)

        await self._post_twice_at_most(where, attempt, webhook=True)
        log.info("posted %d blocks to %s", len(message.blocks), where)

    async def _post_twice_at_most(self, where: str, attempt: Callable[[], Awaitable[None]], *,
                                  webhook: bool = False) -> None:
        """The one place that decides between waiting, re-posting and giving up."""
        for tries in (1, 2):
            try:
                await attempt()
                return
            except SlackApiError as exc:
                status, error, headers = exc.response.status_code, _api_error(exc.response.data), exc.response.headers
            except _WebhookRejected as exc:
                status, error, headers = exc.status, one_line(exc.body, 100), exc.headers
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                raise Retryable(f"cannot reach {where}: {_connection_problem(exc)}") from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise UnknownOutcome(f"connection to {where} lost mid-request ({_connection_problem(exc)}); the "
                                     "message may or may not have been posted",
                                     hint="Not re-posted automatically: Slack has no idempotency key.") from None
            except SlackClientError as exc:
                raise Retryable(f"{where}: {type(exc).__name__}") from None
            if status == 429:
                wait = _retry_after(headers)
                if tries == 2 or wait > self._max_retry_after:
                    raise Retryable(f"{where} rate-limited (429), retry after {wait:g}s", retry_after=wait)
                log.info("%s rate-limited; waiting %gs before the one re-post", where, wait)
                await self._sleep(wait)
                continue
            raise _classify(where, status, error, webhook=webhook)
        raise AssertionError("unreachable")  # pragma: no cover


class _WebhookRejected(Exception):
    def __init__(self, status: int, body: str, headers: Mapping[str, Any]) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body or "", headers or {}


def _connection_problem(exc: BaseException) -> str:
    """What went wrong with the connection, in words ("connection refused", "timed out"), never its URL (a webhook
    URL is a secret, and some aiohttp errors print theirs)."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "the host name does not resolve"
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, OSError) and os_error.strerror:
        return os_error.strerror[:1].lower() + os_error.strerror[1:]
    if isinstance(exc, aiohttp.ConnectionTimeoutError | aiohttp.ServerTimeoutError | TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    return "connection failed"


def _api_error(data: Any) -> str:
    if isinstance(data, Mapping):
        return one_line(str(data.get("error") or "unknown_error"), 100)
    return "non_json_response"


def _retry_after(headers: Mapping[str, Any]) -> float:
    value = next((v for k, v in (headers or {}).items() if k.lower() == "retry-after"), None)
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    try:
        return max(0.0, float(value)) if value is not None else DEFAULT_RETRY_AFTER
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER


def _classify(where: str, status: int, error: str, *, webhook: bool) -> DeliveryError:
    """Permanent → disable the destination; our own malformed message → no retry; anything else → retry."""
    if error in PERMANENT_API_ERRORS or (webhook and status in PERMANENT_WEBHOOK_STATUSES):
        return DestinationGone(f"{where}: {_describe(status, error, webhook)}; disabling this destination", hint=_HINT)
    if error in MALFORMED_ERRORS or (webhook and status == 400):
        return Permanent(f"{where}: message rejected ({_describe(status, error, webhook)})")
    return Retryable(f"{where}: {_describe(status, error, webhook)}")


def _describe(status: int, error: str, webhook: bool) -> str:
    return f"HTTP {status} {error}".strip() if webhook or status != 200 else error
