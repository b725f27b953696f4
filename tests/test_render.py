"""Rendering, judged by what the reader sees: links, titles, reasons, notices, limits and hostile input."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bot.models import Item, Reason, ScoredItem, SourceHealth
from bot.outbox.model import Digest, RatingLinks
from bot.render import (
    HTML_LIMIT,
    SLACK_HEADER_LIMIT,
    SLACK_SECTION_LIMIT,
    Renderer,
    slack_link,
)
from bot.safetext import escape_slack, one_line

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


def scored(i: int, *, title: str | None = None, url: str | None = None, profile: str = "rlhf",
           abstract: str = "We align language models with human preferences using a learned reward model. " * 8,
           ) -> ScoredItem:
    item = Item(id=f"arxiv:2411.{i:05d}", title=title if title is not None else f"Direct Preference Optimization {i}",
                url=url if url is not None else f"https://huggingface.co/papers/2411.{i:05d}", abstract=abstract,
                authors=("Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"),
                metrics={"upvotes": 40 + i, "comments": 2})
    reasons = (Reason("DPO", "title", 1, 2.0), Reason("reward model", "abstract", 1, 1.0))
    return ScoredItem(item=item, profile=profile, score=3.0, reasons=reasons)


def make_digest(n: int = 3, *, kind: str = "digest", total: int | None = None, failing: bool = False,
                items: tuple[ScoredItem, ...] | None = None, channel: str = "email") -> Digest:
    health = (SourceHealth("hf-daily", True, 4, "HTTP 503", datetime(2026, 11, 22, 6, 0, tzinfo=UTC)),
              SourceHealth("arxiv-cl", True, 2, "timeout after 30s"))
    chosen = items if items is not None else tuple(scored(i, profile="rlhf" if i % 2 else "recsys") for i in range(n))
    return Digest(recipient="ada", channel=channel, kind=kind, period_key="2026-11-23", items=chosen,
                  generated_at=NOW, total_matched=total if total is not None else len(chosen),
                  failing_sources=health if failing else (), since=datetime(2026, 11, 22, 7, 0, tzinfo=UTC),
                  unsubscribe_url="https://digest.example.org/unsubscribe/abc",
                  page_url="https://digest.example.org/digest/tok")


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def test_both_parts_carry_every_link_title_and_reason(renderer: Renderer) -> None:
    digest = make_digest(4)
    email = renderer.render_email(digest)
    for part in (email.text, email.html):
        for s in digest.items:
            assert s.item.url in part
            assert s.item.title in part
            assert "DPO" in part and "reward model" in part
            assert "Ada Lovelace, Alan Turing, Grace Hopper et al." in part
        assert "▲ 41" in part
    assert "DPO in title, reward model in abstract" in email.text
    assert email.html.count('href="https://huggingface.co/papers/') == 4
    assert email.subject == "digestbot: 4 new papers for recsys, rlhf — Mon 23 Nov"


def test_snippet_is_short(renderer: Renderer) -> None:
    email = renderer.render_email(make_digest(1))
    snippet = re.search(r"We align.*?…", email.html)
    assert snippet and len(snippet.group(0)) <= 300


def test_failing_sources_notice_in_both_parts(renderer: Renderer) -> None:
    email = renderer.render_email(make_digest(2, failing=True))
    for part in (" ".join(email.text.split()), " ".join(re.sub(r"<[^>]+>", " ", email.html).split())):
        assert "2 sources could not be read: hf-daily (last read Sun 22 Nov 06:00 UTC), arxiv-cl" in part
        assert "HTTP 503" not in part and "timeout" not in part  # the error and its fix are for the admin
        assert "this digest may be incomplete" in part


def test_more_matched_links_to_the_digest_page(renderer: Renderer) -> None:
    email = renderer.render_email(make_digest(3, total=15))
    assert "12 more matched: https://digest.example.org/digest/tok" in email.text
    assert "12 more matched</strong>" in email.html and 'href="https://digest.example.org/digest/tok"' in email.html
    assert email.subject.startswith("digestbot: 15 new papers")


def test_500_items_fit_under_gmail_clipping_with_footer(renderer: Renderer) -> None:
    email = renderer.render_email(make_digest(500))
    assert len(email.html.encode()) < HTML_LIMIT
    shown = email.html.count('href="https://huggingface.co/papers/')
    assert 20 <= shown < 500
    assert f"{500 - shown} more matched" in email.html
    assert email.html.rstrip().endswith("</html>")
    assert 'href="https://digest.example.org/unsubscribe/abc"' in email.html
    assert "Unsubscribe: https://digest.example.org/unsubscribe/abc" in email.text
    assert email.text.count("https://huggingface.co/papers/") == shown  # same items in both parts


def test_hostile_title_gives_a_one_line_capped_subject(renderer: Renderer) -> None:
    alert = make_digest(kind="alert", items=(scored(1, title="x\r\nBcc: a@evil\x00\x1b[31m" + "long " * 60),))
    email = renderer.render_email(alert)
    assert email.subject.startswith("digestbot alert: x Bcc: a@evil")
    assert not re.search(r"[\x00-\x1f\x7f]", email.subject)
    assert len(email.subject) <= 150 and email.subject.endswith("…")


def test_script_title_is_escaped_in_html(renderer: Renderer) -> None:
    email = renderer.render_email(make_digest(items=(scored(1, title="<script>alert(1)</script> & co"),)))
    assert "<script>" not in email.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in email.html
    assert "<script>alert(1)</script> & co" in email.text  # plain text is not HTML


def test_only_http_links_are_links(renderer: Renderer) -> None:
    email = renderer.render_email(make_digest(items=(scored(1, url="javascript:alert(1)"),)))
    assert "javascript:" not in email.html and "javascript:" not in email.text


def test_alert_and_empty_digest(renderer: Renderer) -> None:
    alert = renderer.render_email(make_digest(kind="alert", items=(scored(7),)))
    assert alert.subject == "digestbot alert: Direct Preference Optimization 7"
    assert "instant alerts" in alert.text and "https://huggingface.co/papers/2411.00007" in alert.html
    empty = renderer.render_email(make_digest(0, failing=True))
    assert empty.subject == "digestbot: No new papers — Mon 23 Nov"
    assert "Nothing new matched" in empty.text and "sources could not be read" in empty.html


def test_plain_text_reads_well(renderer: Renderer) -> None:
    text = renderer.render_email(make_digest(items=(scored(1, abstract="Short abstract."),), total=3)).text
    assert text == (
        "3 new papers for rlhf\n"  # counts every match, not only the one shown
        "Mon 23 Nov 2026 · new since Sun 22 Nov 07:00 UTC\n"
        "\n"
        "1. Direct Preference Optimization 1\n"
        "   https://huggingface.co/papers/2411.00001\n"
        "   Ada Lovelace, Alan Turing, Grace Hopper et al. · ▲ 41 · 2 comments\n"
        "   Matched (rlhf): DPO in title, reward model in abstract\n"
        "   Short abstract.\n"
        "\n"
        "2 more matched: https://digest.example.org/digest/tok\n"
        "\n"
        "-- \n"
        "You are receiving this digest because you are subscribed to digestbot with the profile rlhf.\n"
        "View in a browser: https://digest.example.org/digest/tok\n"
        "Unsubscribe: https://digest.example.org/unsubscribe/abc\n"
    )


@pytest.mark.parametrize(("raw", "expected"), [
    ("<!channel> & <https://evil|x>", "&lt;!channel&gt; &amp; &lt;https://evil|x&gt;"),
    ("plain", "plain"),
    ("a &amp; b", "a &amp;amp; b"),
])
def test_escape_slack(raw: str, expected: str) -> None:
    assert escape_slack(raw) == expected


def test_slack_shows_hostile_title_literally(renderer: Renderer) -> None:
    digest = make_digest(items=(scored(1, title="<!channel> & <https://evil|x>"),), channel="slack")
    messages = renderer.render_slack(digest)
    dumped = repr([m.blocks for m in messages]) + " ".join(m.text for m in messages)
    assert "<!channel>" not in dumped and "<https://evil" not in dumped
    item_block = messages[0].blocks[2]["text"]["text"]
    assert item_block.startswith("*<https://huggingface.co/papers/2411.00001|&lt;!channel&gt; &amp; "
                                 "&lt;https://evil|x&gt;>*")


def test_slack_formatting_characters_in_scraped_text_format_nothing(renderer: Renderer) -> None:
    """mrkdwn has no escape: a title with `*`, `_`, `~` or backticks would bold, italicise, strike or code part of
    the post (and break the bold around it). They are shown as look-alikes instead."""
    title = "*Not* _so_ ~fast~: `rm -rf` and a_b*c"
    digest = make_digest(items=(scored(1, title=title),), channel="slack")
    item_block = renderer.render_slack(digest)[0].blocks[2]["text"]["text"]
    shown = item_block.split("|", 1)[1].split(">*", 1)[0]  # the link's label
    assert not set("*_~`") & set(shown), shown
    assert shown == "\u2217Not\u2217 \u02cdso\u02cd \u223cfast\u223c: \u02cbrm -rf\u02cb and a\u02cdb\u2217c"
    assert item_block.startswith("*<") and item_block.count("*") == 2  # only our own bold


def test_slack_link_cannot_be_broken_by_the_url() -> None:
    assert slack_link("https://e.org/a|b>c?x=1&y=2", "t") == "<https://e.org/a%7Cb%3Ec?x=1&amp;y=2|t>"


def test_slack_120_items_split_within_block_kit_limits(renderer: Renderer) -> None:
    long_title = "A " + "very " * 80 + "long title"
    items = tuple(scored(i, title=long_title, profile="rlhf") for i in range(120))
    messages = renderer.render_slack(make_digest(items=items, failing=True, channel="slack"))
    assert len(messages) >= 3
    linked = 0
    for number, message in enumerate(messages, 1):
        assert message.text and f"({number}/{len(messages)})" in message.text
        assert len(message.blocks) <= 50
        for block in message.blocks:
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= SLACK_SECTION_LIMIT
                linked += "https://huggingface.co/papers/" in block["text"]["text"]
            if block["type"] == "header":
                assert len(block["text"]["text"]) <= SLACK_HEADER_LIMIT
    first = messages[0].blocks
    assert first[0]["type"] == "header" and first[0]["text"]["text"] == "digestbot: 120 new papers for rlhf"
    assert any("2 sources could not be read" in b.get("text", {}).get("text", "") for b in first)
    last = messages[-1].blocks[-1]
    assert last["type"] == "context"
    assert f"{120 - linked} more matched" in last["elements"][0]["text"] or linked == 120


def test_one_line_strips_controls() -> None:
    assert one_line("a\r\nb\x00c\u2028d\u202ee\tf") == "a b c de f"
    assert one_line("word " * 50, 20).endswith("…") and len(one_line("word " * 50, 20)) <= 20


def test_default_templates_dir_is_the_repo_templates() -> None:
    renderer = Renderer()
    assert (renderer.templates_dir / "digest.html.j2").is_file()
    assert not (renderer.templates_dir / "probe.j2").exists()


def test_description_words_are_shown_apart_from_keywords(renderer: Renderer) -> None:
    item = scored(1)
    extra = (Reason("policy", "abstract", 2, 0.3, kind="description"),
             Reason("preference", "title", 1, 0.2, kind="description"),
             Reason("everyword", "abstract", 3, 0.02, kind="description"),  # most papers say it: counted, not shown
             Reason("similar to your description", "title+abstract", 1, 1.25, kind="semantic"))
    email = renderer.render_email(make_digest(items=(ScoredItem(item.item, "rlhf", 4.27, item.reasons + extra),)))
    assert ("DPO in title, reward model in abstract; related: policy, preference; close to your description +1.2"
            in " ".join(email.text.split()))
    assert "close to your description +1.2</span>" in email.html and "related: policy, preference</span>" in email.html
    assert "everyword" not in email.html and "everyword" not in email.text
    assert "DPO in title</span>" in email.html and "policy in" not in email.html  # not a keyword chip


def test_followed_author_is_shown_as_by_name() -> None:
    from bot.models import Item, Reason, ScoredItem
    from bot.outbox.model import Digest
    from bot.render import Renderer

    scored = ScoredItem(Item(id="arxiv:1", title="A paper", url="https://arxiv.org/abs/1", authors=("Yann LeCun",)),
                        "people", 3.0, (Reason("Yann LeCun", "authors", 1, 2.0, kind="author"),
                                        Reason("DPO", "title", 1, 1.0)))
    assert scored.explain() == "by Yann LeCun, DPO in title"
    digest = Digest(recipient="ada", channel="email", kind="digest", period_key="2026-11-23", items=(scored,),
                    generated_at=datetime(2026, 11, 23, 7, tzinfo=UTC), total_matched=1)
    rendered = Renderer().render_email(digest)
    assert "by Yann LeCun, DPO in title" in rendered.text
    assert ">by Yann LeCun</span>" in rendered.html and "DPO in title" in rendered.html


def test_one_comment_is_one_comment_and_a_symbol_stays_with_its_number(renderer: Renderer) -> None:
    digest = make_digest(items=(scored(1),))
    item = digest.items[0]
    item.item.metrics["comments"] = 1
    email = renderer.render_email(digest)
    assert "▲ 41 · 1 comment\n" in email.text and "1 comments" not in email.text + email.html
    assert '<span style="white-space:nowrap;">▲ 41</span>' in email.html


def _rated(digest: Digest, **changes: object) -> Digest:
    links = {s.item.id: RatingLinks(f"tok{i}", f"https://digest.example.org/rate/tok{i}/up",
                                    f"https://digest.example.org/rate/tok{i}/down")
             for i, s in enumerate(digest.items)}
    return replace(digest, ratings=links, **changes)  # type: ignore[arg-type]


def test_every_paper_carries_its_rating_links_in_both_parts(renderer: Renderer) -> None:
    mail = renderer.render_email(_rated(make_digest(3)))
    for i in range(3):
        for choice in ("up", "down"):
            link = f"https://digest.example.org/rate/tok{i}/{choice}"
            assert f'href="{link}"' in mail.html and link in mail.text
    assert mail.text.count("More like this: ") == 3 and mail.text.count("Fewer like this: ") == 3
    bare = renderer.render_email(make_digest(3))  # no public_url: no links, and no words about them
    assert "/rate/" not in bare.html + bare.text and "More like this" not in bare.html + bare.text


def test_slack_rating_is_links_or_buttons_and_stays_within_block_kit_limits(renderer: Renderer) -> None:
    items = tuple(scored(i) for i in range(45))
    linked = renderer.render_slack(_rated(make_digest(items=items, channel="slack")))
    sections = [b for m in linked for b in m.blocks if b["type"] == "section" and "/rate/" in b["text"]["text"]]
    assert len(sections) == 45 and all(b["type"] != "actions" for m in linked for b in m.blocks)
    assert "<https://digest.example.org/rate/tok0/up|👍 more like this>" in sections[0]["text"]["text"]
    buttons = renderer.render_slack(_rated(make_digest(items=items, channel="slack"), rate_buttons=True))
    actions = [b for m in buttons for b in m.blocks if b["type"] == "actions"]
    assert len(actions) == 45 and all(len(m.blocks) <= 50 for m in buttons)
    assert [(e["action_id"], e["value"]) for e in actions[0]["elements"]] == [
        ("digestbot_rate_up", "tok0"), ("digestbot_rate_down", "tok0")]
    assert not any("/rate/" in b.get("text", {}).get("text", "") for m in buttons for b in m.blocks)


def test_what_ratings_did_is_a_chip_of_its_own_and_in_the_text(renderer: Renderer) -> None:
    moved = replace(scored(1), reasons=(*scored(1).reasons, Reason(
        "like 2 papers you rated 👍 (e.g. “Reward <b>models</b>”)", "feedback", 2, 0.3, "feedback")))
    mail = renderer.render_email(make_digest(items=(moved,)))
    assert "like 2 papers you rated 👍 (e.g. “Reward &lt;b&gt;models&lt;/b&gt;”)" in mail.html
    assert "related: like" not in mail.html  # not mistaken for a description word
    assert "you rated 👍" in " ".join(mail.text.split())
