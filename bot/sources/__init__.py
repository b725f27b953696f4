"""The sources stage: `fetch.Fetcher` gets a `Page`, `parse.parse_page` turns it into `Item`s, `refresh` does both for
every configured source and records the outcome.

Each kind of source is one entry in `kinds.KINDS` (parser, paging rules, quiet days, options). A parser returns []
only when the page itself says it is empty (an arXiv feed on a weekend, a day with no HF papers yet); anything
else that yields nothing is a `ParseError` ("layout changed?"), so an empty digest is never a silently broken
scraper. `paging.fetch_all_pages` fetches and parses every page of a listing up to the source's `max_pages`.

This package's `__init__` imports nothing: `bot.config` reads `kinds` without importing httpx or selectolax.
"""
