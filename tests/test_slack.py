"""Slack against a local server speaking the Web API and webhook shapes: what lands in the channel, and when."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import AsyncIterator

import pytest

from bot.config import SlackSettings
from bot.errors import DeliveryError
from bot.notify.slack import SlackNotifier
from bot.notify.slack_sink import SlackSink
from bot.render import Renderer, SlackMessage
from tests.support.slackapi import ScriptedSlack
from tests.test_render import make_digest, scored

TOKEN = "xoxb-test-secret-token"
MESSAGE = SlackMessage(text="digestbot: 1 new paper", blocks=[{"type": "section",
                                                               "text": {"type": "mrkdwn", "text": "hello"}}])


@pytest.fixture
async def slack() -> AsyncIterator[ScriptedSlack]:
    async with ScriptedSlack() as server:
        yield server


def notifier(server: SlackSink, timeout: float = 30.0) -> SlackNotifier:
    return SlackNotifier(SlackSettings(base_url=server.base_url), token=TOKEN, timeout=timeout)


async def test_post_message_with_blocks_and_no_unfurling(slack: ScriptedSlack) -> None:
    [message] = Renderer().render_slack(make_digest(2, channel="slack"))
    await notifier(slack).post("#papers", message)
    [received] = slack.posts
    assert received.method == "chat.postMessage"
    assert received.headers["authorization"] == f"Bearer {TOKEN}"
    body = received.body
    assert body["channel"] == "#papers" and body["text"] == message.text
    assert body["unfurl_links"] is False and body["unfurl_media"] is False
    assert body["blocks"] == message.blocks and body["blocks"][0]["type"] == "header"


async def test_429_waits_retry_after_then_posts_exactly_once_more(slack: ScriptedSlack) -> None:
    slack.script.extend(["429:1", "ok"])
    started = time.monotonic()
    await notifier(slack).post("#papers", MESSAGE)
    assert time.monotonic() - started >= 0.95
    assert len(slack.requests) == 2 and len(slack.posts) == 1


async def test_429_twice_gives_up_for_the_outbox(slack: ScriptedSlack) -> None:
    slack.script.extend(["429:0", "429:7"])
    with pytest.raises(DeliveryError) as caught:
        await notifier(slack).post("#papers", MESSAGE)
    assert caught.value.retry and caught.value.retry_after == 7
    assert len(slack.requests) == 2 and slack.posts == []


async def test_long_retry_after_is_left_to_the_outbox(slack: ScriptedSlack) -> None:
    slack.script.append("429:120")
    started = time.monotonic()
    with pytest.raises(DeliveryError) as caught:
        await notifier(slack).post("#papers", MESSAGE)
    assert time.monotonic() - started < 5
    assert caught.value.retry and caught.value.retry_after == 120 and len(slack.requests) == 1


@pytest.mark.parametrize("error", ["channel_not_found", "invalid_auth", "not_in_channel", "account_inactive"])
async def test_permanent_errors_disable_the_destination(slack: ScriptedSlack, error: str) -> None:
    slack.script.append(f"error:{error}")
    with pytest.raises(DeliveryError) as caught:
        await notifier(slack).post("#papers", MESSAGE)
    assert caught.value.disable_destination and not caught.value.retry
    assert error in str(caught.value) and len(slack.requests) == 1


@pytest.mark.parametrize(("script", "retry"), [("error:internal_error", True), ("http:500:oops", True),
                                               ("http:503:busy", True), ("error:invalid_blocks", False)])
async def test_other_errors(slack: ScriptedSlack, script: str, retry: bool) -> None:
    slack.script.append(script)
    with pytest.raises(DeliveryError) as caught:
        await notifier(slack).post("#papers", MESSAGE)
    assert caught.value.retry is retry and not caught.value.disable_destination and not caught.value.unknown
    assert len(slack.requests) == 1


async def test_connection_lost_mid_request_is_unknown_and_not_reposted(slack: ScriptedSlack) -> None:
    slack.script.append("drop")
    with pytest.raises(DeliveryError) as caught:
        await notifier(slack).post("#papers", MESSAGE)
    assert caught.value.unknown and not caught.value.retry
    assert len(slack.requests) == 1


async def test_timeout_after_sending_is_unknown(slack: ScriptedSlack) -> None:
    slack.script.append("hang")
    with pytest.raises(DeliveryError) as caught:
        await notifier(slack, timeout=1).post("#papers", MESSAGE)
    assert caught.value.unknown and not caught.value.retry and len(slack.requests) == 1


async def test_unreachable_server_is_retried_later() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = SlackNotifier(SlackSettings(base_url=f"http://127.0.0.1:{port}/api/"), token=TOKEN)
    with pytest.raises(DeliveryError) as caught:
        await client.post("#papers", MESSAGE)
    assert caught.value.retry and not caught.value.unknown
    assert "connect call failed" in str(caught.value).lower() or "refused" in str(caught.value).lower()
    assert "ClientConnectorError" not in str(caught.value)  # words, not a class name


async def test_120_items_arrive_as_several_messages_within_limits(slack: ScriptedSlack) -> None:
    items = tuple(scored(i, title="A " + "long " * 60 + "title") for i in range(120))
    messages = Renderer().render_slack(make_digest(items=items, channel="slack"))
    client = notifier(slack)
    for message in messages:
        await client.post("#papers", message)
    assert len(slack.posts) == len(messages) > 1
    for post in slack.posts:
        assert post.body["text"] and len(post.body["blocks"]) <= 50
        assert all(len(b["text"]["text"]) <= 3000 for b in post.body["blocks"] if b["type"] == "section")


async def test_hostile_title_arrives_escaped(slack: ScriptedSlack) -> None:
    digest = make_digest(items=(scored(1, title="<!channel> & <https://evil|x>"),), kind="alert", channel="slack")
    for message in Renderer().render_slack(digest):
        await notifier(slack).post("#papers", message)
    raw = repr(slack.posts[0].body)
    assert "<!channel>" not in raw and "&lt;!channel&gt; &amp; &lt;https://evil|x&gt;" in raw


async def test_webhook_post(slack: ScriptedSlack) -> None:
    await notifier(slack).post_webhook(slack.webhook_url("T1/B2/secret"), MESSAGE)
    [received] = slack.posts
    assert received.kind == "webhook" and received.hook == "T1/B2/secret"
    assert received.body["blocks"] == MESSAGE.blocks and received.body["text"] == MESSAGE.text
    assert received.body["unfurl_links"] is False


@pytest.mark.parametrize(("script", "disable"), [("http:404:no_service", True), ("http:410:channel_is_archived", True),
                                                 ("http:400:invalid_payload", False)])
async def test_webhook_errors(slack: ScriptedSlack, script: str, disable: bool) -> None:
    slack.script.append(script)
    url = slack.webhook_url("T1/B2/very-secret-hook")
    with pytest.raises(DeliveryError) as caught:
        await notifier(slack).post_webhook(url, MESSAGE)
    assert caught.value.disable_destination is disable and not caught.value.retry
    assert "very-secret-hook" not in str(caught.value)


async def test_webhook_429_then_ok(slack: ScriptedSlack) -> None:
    slack.script.extend(["429:0", "ok"])
    await notifier(slack).post_webhook(slack.webhook_url(), MESSAGE)
    assert len(slack.requests) == 2 and len(slack.posts) == 1


async def test_token_never_logged_or_shown(slack: ScriptedSlack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    slack.script.extend(["ok", "error:invalid_auth", "drop"])
    client = notifier(slack)
    await client.post("#papers", MESSAGE)
    for _ in range(2):
        with pytest.raises(DeliveryError) as caught:
            await client.post("#papers", MESSAGE)
        assert TOKEN not in str(caught.value) + (caught.value.hint or "")
    await client.post_webhook(slack.webhook_url("T1/B2/hook-secret"), MESSAGE)
    assert TOKEN not in caplog.text + repr(client) and "hook-secret" not in caplog.text


async def test_a_missing_token_never_disables_the_channel(slack: ScriptedSlack) -> None:
    """A token not (yet) in the environment is the configuration's problem, not the channel's."""
    client = SlackNotifier(SlackSettings(base_url=slack.base_url), token=None)
    with pytest.raises(DeliveryError) as caught:
        await client.post("#papers", MESSAGE)
    assert caught.value.retry and not caught.value.disable_destination and slack.requests == []
