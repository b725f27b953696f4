"""What readers see, in a real browser: every mail the bot renders and every page it serves, at 800 and 400 px.

Headless Chromium from Debian's packages (`.ci/run` installs it; without it this test is skipped, saying so).
Each page gets a small script that reports, once laid out, whether it scrolls sideways and which text is set
smaller than 11 px; the pages are laid out in 800 and 400 px wide frames of one page, so one browser run checks
them all. Screenshots of each at both widths are kept in `tests/output/browser/` (CI artefacts) to look at.
The mails carry the hostile cases: an unbroken 200-character title, a long URL, many authors, failing sources.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from bot.models import Item, Notice, Reason, ScoredItem, SourceHealth
from bot.outbox.model import Digest, RatingLinks
from bot.render import Renderer
from bot.store import Store
from bot.tokens import RatingSubject, make_token, rating_token
from bot.web import WebServer, make_app

OUTPUT = Path(__file__).parent / "output" / "browser"
WIDTHS = (800, 400)
MIN_FONT_PX = 11
SECRET = b"s" * 32
NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
CHECK = """<script>
window.addEventListener('load', () => {
  const d = document.documentElement, small = [];
  for (const el of document.querySelectorAll('body *')) {
    if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const size = parseFloat(getComputedStyle(el).fontSize);
    if (size < %(min)d) small.push(el.tagName + ' ' + size + 'px: ' + el.textContent.trim().slice(0, 40));
  }
  parent.postMessage(JSON.stringify({page: %(name)s, scroll: d.scrollWidth, client: d.clientWidth, small}), '*');
});
</script>"""
FRAMES = """<!DOCTYPE html><html><body style="margin:0">%(frames)s
<script>
let reported = 0;
const waiting = setInterval(() => {}, 50);  // keeps the browser's virtual clock running until every frame reports
window.addEventListener('message', e => {
  const p = document.createElement('pre'); p.className = 'browser-check'; p.textContent = e.data;
  document.body.appendChild(p);
  if (++reported === %(count)d) clearInterval(waiting);
});</script></body></html>"""
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


@pytest.fixture(scope="module")
def chromium() -> Iterator[str]:
    found = shutil.which("chromium")
    if found is None:
        pytest.skip("no chromium here: `apt-get install chromium` (.ci/run does) to check pages in a browser")
    yield found


def hostile_digest(kind: str = "digest") -> Digest:
    long_word = "Preference" * 20  # no break opportunity: must wrap, not push the page sideways
    items = [ScoredItem(
        item=Item(id=f"arxiv:2611.{i:05d}", url=f"https://arxiv.org/abs/2611.{i:05d}?{'x' * 120}",
                  title=long_word if i == 0 else f"Direct Preference Optimization for agents, part {i}",
                  abstract="We align language models with human preferences using a learned reward model. " * 6,
                  authors=tuple(f"Author Number{j} Longsurname" for j in range(9)),
                  metrics={"upvotes": 120 + i, "comments": 1 + i}),
        profile="rlhf", score=3.0 - i / 10, also=("agents",) if i % 3 == 0 else (),
        reasons=(Reason("direct preference optimization", "title", 1, 2.0),
                 Reason("reward model", "abstract", 2, 1.4), Reason("alignment", "abstract", 1, 0.3, "description"),
                 *([Reason(f"like 3 papers you rated 👍 (e.g. “{long_word[:59]}…”)", "feedback", 3, 0.4,
                           "feedback")] if i == 1 else [])))
        for i in range(12)]
    rate = "https://digest.example.org/rate/" + "r" * 100
    ratings = {s.item.id: RatingLinks("r" * 100, rate + "/up", rate + "/down") for s in items}
    failing = (SourceHealth("hf-daily-with-a-rather-long-name", True, 4, "HTTP 503",
                            datetime(2026, 11, 22, 6, 0, tzinfo=UTC)),)
    return Digest(recipient="ada", channel="email", kind=kind, period_key="2026-11-23", items=tuple(items),
                  generated_at=NOW, total_matched=40, failing_sources=failing,
                  since=datetime(2026, 11, 22, 7, 0, tzinfo=UTC),
                  unsubscribe_url="https://digest.example.org/unsubscribe/" + "t" * 80,
                  page_url="https://digest.example.org/digest/" + "p" * 80, ratings=ratings)


def chrome(chromium: str, tmp_path: Path, *args: str) -> str:
    done = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          check=True, capture_output=True, text=True, timeout=60)
    return done.stdout


async def served_pages(store: Store) -> dict[str, str]:
    """The bot's own pages, fetched from its real server."""
    renderer = Renderer()
    page = renderer.render_email(hostile_digest()).html
    app = make_app(store, SECRET, clock=lambda: NOW + timedelta(days=1), digest_page=lambda key, secret: page)
    token = make_token("ada.lovelace.with.a.long.address@example.org", SECRET, issued=NOW)
    digest_token = make_token("digest:email:ada:2026-11-23", SECRET, issued=NOW, purpose="digest")
    paper = Item(id="arxiv:2611.00001", url="https://arxiv.org/abs/2611.00001", title="Preference" * 20,
                 abstract="", authors=())
    store.save_items("src", [paper], seen_at=NOW)
    rate = rating_token(RatingSubject("email", "ada.lovelace.with.a.long.name", "rlhf-and-preference-learning",
                                      paper.id), SECRET, issued=NOW)
    async with WebServer(app, port=0) as server, httpx.AsyncClient(base_url=server.url) as client:
        return {
            "unsubscribe-confirm": (await client.get(f"/unsubscribe/{token}")).text,
            "unsubscribed": (await client.post(f"/unsubscribe/{token}")).text,
            "resubscribed": (await client.post(f"/resubscribe/{token}")).text,
            "digest-page": (await client.get(f"/digest/{digest_token}")).text,
            "refused-link": (await client.get("/unsubscribe/forged.token")).text,
            "rate-up": (await client.get(f"/rate/{rate}/up")).text,
            "rate-down": (await client.get(f"/rate/{rate}/down")).text,
            "rated": (await client.post(f"/rate/{rate}", data={"rating": "up"})).text,
            "rating-refused": (await client.get(f"/rate/{rate[:-3]}xyz/up")).text,
        }


async def test_every_mail_and_page_fits_800_and_400_px_and_reads(chromium: str, tmp_path: Path) -> None:
    renderer = Renderer()
    with Store.open(f"sqlite:///{tmp_path / 'web.db'}") as store:
        served = await served_pages(store)
    pages = {
        "digest-mail": renderer.render_email(hostile_digest()).html,
        "alert-mail": renderer.render_email(hostile_digest("alert")).html,
        "notice-mail": renderer.render_notice_email(Notice(
            kind="source-failing", title="Source hf-daily has failed 3 times in a row",
            lines=("Error: HTTP 503 from https://huggingface.co/papers?" + "q" * 150,
                   "Digests say so until it recovers."), generated_at=NOW)).html,
        **served,
    }
    OUTPUT.mkdir(parents=True, exist_ok=True)
    reports = []
    for name, body in pages.items():
        checked = tmp_path / f"{name}.html"
        script = CHECK % {"min": MIN_FONT_PX, "name": json.dumps(name)}
        checked.write_text(body.replace("</body>", script + "</body>") if "</body>" in body else body + script,
                           encoding="utf-8")
        (OUTPUT / f"{name}.html").write_text(body, encoding="utf-8")
        frames = [f'<iframe src="{html.escape(checked.as_uri())}" style="width:{width}px;height:600px;border:0;'
                  f'display:block"></iframe>' for width in WIDTHS]
        wrapper = tmp_path / f"{name}-frames.html"  # frames: a window cannot be narrower than 500 px headless
        wrapper.write_text(FRAMES % {"frames": "\n".join(frames), "count": len(frames)}, encoding="utf-8")
        dom = chrome(chromium, tmp_path, "--window-size=820,1300", "--virtual-time-budget=30000", "--dump-dom",
                     wrapper.as_uri())
        found = [json.loads(html.unescape(text)) for text in re.findall(r'<pre class="browser-check">(.*?)</pre>', dom)]
        assert len(found) == len(WIDTHS), f"{name}: {len(found)} of {len(WIDTHS)} frames reported"
        reports += found
        for width in WIDTHS:
            shot = OUTPUT / f"{name}-{width}.png"
            chrome(chromium, tmp_path, f"--window-size={width},1200", f"--screenshot={shot}",
                   (OUTPUT / f"{name}.html").as_uri())
            assert shot.stat().st_size > 1000, shot
    problems = [f"{r['page']} at {r['client']} px: scrolls sideways ({r['scroll']} px wide)"
                for r in reports if r["scroll"] > r["client"] + 1]
    problems += [f"{r['page']} at {r['client']} px: text under {MIN_FONT_PX} px: {r['small'][:3]}"
                 for r in reports if r["small"]]
    assert problems == [], "\n".join(problems)
