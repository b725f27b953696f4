"""👍 / 👎 on a paper, from the links in a digest (email, web page, Slack) and from Slack's buttons.

    GET  /rate/{token}/{up|down}   a page naming the paper and what the rating will change, with a button; it
                                   records nothing (mail scanners and link previews follow every link)
    POST /rate/{token}             records `rating=up|down|clear`; the same rating again is a no-op, a changed one
                                   replaces the old (the token names recipient, paper and profile, signed)
    POST /slack/actions            Slack's interactivity requests (Block Kit buttons), only with a signing secret:
                                   a request whose signature or timestamp does not verify is refused with 401

A rating token can never stand for another recipient or paper: all of it is signed (`bot.tokens.RatingSubject`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import httpx
from aiohttp import web

from bot.safetext import escape_slack
from bot.store import Store
from bot.store.ratings import DISLIKE, LIKE
from bot.tokens import InvalidToken, RatingSubject, read_rating_token
from bot.web.pages import DB, SETTINGS, problem_page, render

log = logging.getLogger(__name__)

CHOICES = {"up": LIKE, "down": DISLIKE, "clear": None}
SLACK_ACTIONS = {"digestbot_rate_up": LIKE, "digestbot_rate_down": DISLIKE}  # the buttons' action_id
SLACK_MAX_SKEW = 300  # seconds: Slack's own advice against replayed requests
SLACK_REPLY_SECONDS = 5.0
REPLIES = web.AppKey("rating replies in flight", set)


def _subject_from(request: web.Request) -> RatingSubject | web.Response:
    settings = request.app[SETTINGS]
    try:
        return read_rating_token(request.match_info["token"], settings.secret, now=settings.clock())
    except InvalidToken as exc:
        log.info("rating %s refused: %s", request.method, exc.reason)
        if exc.reason == "expired":
            return problem_page(410, "This link has expired", "Ratings can be given for three months after a "
                                "digest is sent. A more recent digest has fresh 👍 / 👎 links.")
        return problem_page(400, "This link is not valid", "The rating link is incomplete or was changed. Use the "
                            "👍 or 👎 link in the digest as it is.")


async def _page_context(request: web.Request, subject: RatingSubject) -> dict[str, Any] | web.Response:
    db = request.app[DB]
    try:
        found = await db.run(Store.get_items, [subject.item_id])
        state = await db.run(Store.rating_state, subject.channel, subject.recipient, subject.item_id,
                             subject.profile)
    except Exception:  # the database is down
        log.exception("could not read a rating")
        return problem_page(503, "Please try again", "We could not reach digestbot's records just now. Try the "
                            "link again in a few minutes.", retry_after=300)
    item = found.get(subject.item_id)
    return {"title": item.title if item else subject.item_id, "url": item.url if item else None,
            "profile": subject.profile, "recipient": subject.recipient, "token": request.match_info["token"],
            "current": {LIKE: "up", DISLIKE: "down", None: None}[state.current],
            "likes": state.likes, "dislikes": state.dislikes}


async def rate_page(request: web.Request) -> web.Response:
    choice = request.match_info["choice"]
    if choice not in ("up", "down"):
        return problem_page(404, "Not here", "A rating link ends in /up or /down.")
    subject = _subject_from(request)
    if isinstance(subject, web.Response):
        return subject
    context = await _page_context(request, subject)
    if isinstance(context, web.Response):
        return context
    return render(request, "rate_confirm.html.j2", choice=choice, **context)


async def rate(request: web.Request) -> web.Response:
    subject = _subject_from(request)
    if isinstance(subject, web.Response):
        return subject
    form = await request.post()
    choice = form.get("rating")
    if not isinstance(choice, str) or choice not in CHOICES:
        return problem_page(400, "Choose 👍 or 👎", "Use the buttons on the rating page.")
    db, at = request.app[DB], request.app[SETTINGS].clock()
    try:
        await db.run(Store.rate, subject.channel, subject.recipient, subject.item_id, subject.profile,
                     CHOICES[choice], at=at)
    except Exception:  # the database is down
        log.exception("could not record a rating")
        return problem_page(503, "Please try again", "We could not record this just now. Try again in a few "
                            "minutes.", retry_after=300)
    log.info("rating %s recorded for a %s reader", choice, subject.channel)  # not who: logs get shared
    context = await _page_context(request, subject)
    if isinstance(context, web.Response):
        return context
    return render(request, "rate_done.html.j2", **context)


def slack_signature_ok(secret: bytes, timestamp: str | None, signature: str | None, body: bytes, *,
                       now: float) -> bool:
    """Slack's request signing (v0): HMAC-SHA256 over "v0:<timestamp>:<body>", and a timestamp within five
    minutes, so a captured request cannot be replayed later."""
    if not timestamp or not signature or not timestamp.isdigit() or abs(now - int(timestamp)) > SLACK_MAX_SKEW:
        return False
    expected = "v0=" + hmac.new(secret, b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


async def slack_actions(request: web.Request) -> web.Response:
    """A click on a 👍 / 👎 button in a Slack post: recorded for the channel the post went to (the token says
    which), answered with 200 and no body, as Slack wants within three seconds."""
    settings = request.app[SETTINGS]
    secret = settings.slack_signing_secret
    if secret is None:
        return web.Response(status=404, text="Slack interactivity is not configured here.")
    body = await request.read()
    if not slack_signature_ok(secret, request.headers.get("X-Slack-Request-Timestamp"),
                              request.headers.get("X-Slack-Signature"), body, now=time.time()):
        log.warning("refused a Slack request whose signature does not verify")
        return web.Response(status=401, text="signature does not verify")
    try:
        form = await request.post()
        payload = json.loads(str(form.get("payload", "")))
        actions = payload.get("actions", []) if isinstance(payload, dict) else []
    except ValueError:
        return web.Response(status=400, text="expected a form with a JSON payload")
    for action in actions if isinstance(actions, list) else []:
        rating = SLACK_ACTIONS.get(str(action.get("action_id"))) if isinstance(action, dict) else None
        if rating is None:
            continue
        try:
            subject = read_rating_token(str(action.get("value", "")), settings.secret, now=settings.clock())
        except InvalidToken as exc:
            log.info("Slack rating refused: %s", exc.reason)
            return web.Response(status=400, text=f"rating button refused: {exc.reason}")
        try:
            await request.app[DB].run(Store.rate, subject.channel, subject.recipient, subject.item_id,
                                      subject.profile, rating, at=settings.clock())
        except Exception:
            log.exception("could not record a Slack rating")
            return web.Response(status=503, text="could not record the rating; try again")
        log.info("rating %+d recorded from Slack", rating)
        reply_to = payload.get("response_url")
        if isinstance(reply_to, str) and reply_to.startswith(("https://", "http://")):
            task = asyncio.create_task(_tell_the_clicker(request.app, reply_to, subject, rating))
            request.app[REPLIES].add(task)  # kept until done: a task nobody holds may be collected
            task.add_done_callback(request.app[REPLIES].discard)
    return web.Response(status=200)


async def _tell_the_clicker(app: web.Application, url: str, subject: RatingSubject, rating: int) -> None:
    """A message only the person who clicked sees ("👍 recorded …"), through the `response_url` Slack gave with
    the click (signed with the request, so it is Slack's): without it, a click shows nothing at all."""
    try:
        found = await app[DB].run(Store.get_items, [subject.item_id])
        item = found.get(subject.item_id)
        title = item.title if item else subject.item_id
        title = escape_slack(title if len(title) <= 80 else title[:79] + "…")  # scraped text: mrkdwn-safe
        if rating > 0:
            text = f"👍 Recorded: papers like “{title}” move up in the {subject.profile} digests here."
        else:
            text = f"👎 Recorded: papers like “{title}” move down in the {subject.profile} digests here."
        async with httpx.AsyncClient(timeout=SLACK_REPLY_SECONDS) as client:
            reply = await client.post(url, json={"response_type": "ephemeral", "replace_original": False,
                                                 "text": text})
        if reply.status_code >= 400:
            log.info("Slack did not take the rating's confirmation: HTTP %d", reply.status_code)
    except Exception as exc:  # noqa: BLE001 - the rating is recorded; a lost confirmation is only cosmetic
        log.info("could not confirm a Slack rating to the clicker: %s", exc)


def add_routes(app: web.Application) -> None:
    app[REPLIES] = set()
    app.router.add_get("/rate/{token}/{choice}", rate_page)
    app.router.add_post("/rate/{token}", rate)
    app.router.add_post("/slack/actions", slack_actions)
