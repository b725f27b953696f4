"""Readers' 👍 / 👎, one row per (recipient, paper, profile the paper was shown for): a changed rating replaces the
old one, a withdrawn one is deleted. `Store` has these methods; the learning is `bot.scoring.feedback`'s.

Ratings outlive the items' other uses: they are what a reader taught the bot, so they stay while the recipient
is in the config (an unsubscribe keeps them, in case the reader comes back) and go with `digestbot feedback reset`
or when the recipient is gone from the config (`forget_ratings_except`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, case, delete, func, select, tuple_

from bot.store.bookkeeping import Bookkeeping
from bot.store.engine import chunks, dialect_insert
from bot.store.schema import ratings

LIKE, DISLIKE = 1, -1


@dataclass(frozen=True, slots=True)
class StoredRating:
    """One reader's verdict on one paper as shown for one of their profiles."""

    channel: str
    recipient: str
    item_id: str
    profile: str
    rating: int  # LIKE or DISLIKE
    rated_at: datetime


@dataclass(frozen=True, slots=True)
class RatingCounts:
    """What `digestbot feedback` lists per recipient."""

    channel: str
    recipient: str
    likes: int
    dislikes: int
    last_rated_at: datetime


@dataclass(frozen=True, slots=True)
class RatingState:
    """A paper's rating as the rating page shows it: the current one, and the reader's count for the profile."""

    current: int | None
    likes: int
    dislikes: int


class RatingBook(Bookkeeping):
    """The ratings half of `Store` (see the module docstring)."""

    def rate(self, channel: str, recipient: str, item_id: str, profile: str, rating: int | None, *,
             at: datetime) -> int | None:
        """Record (or with None withdraw) a rating; the same rating again changes nothing, not even its time.
        Returns the rating it replaced, if any: one short transaction, safe to repeat."""
        if rating not in (LIKE, DISLIKE, None):
            raise ValueError(f"a rating is {LIKE}, {DISLIKE} or None, got {rating!r}")
        key = (ratings.c.channel == channel) & (ratings.c.recipient == recipient) & (ratings.c.item_id == item_id) \
            & (ratings.c.profile == profile)
        with self._write() as connection:
            before = connection.execute(select(ratings.c.rating).where(key)).scalar()
            if rating is None:
                connection.execute(delete(ratings).where(key))
            elif before != rating:
                statement = dialect_insert(connection, ratings).values(
                    channel=channel, recipient=recipient, item_id=item_id, profile=profile, rating=rating,
                    rated_at=at)
                connection.execute(statement.on_conflict_do_update(
                    index_elements=["channel", "recipient", "item_id", "profile"],
                    set_={"rating": rating, "rated_at": at}))
        return int(before) if before is not None else None

    def rating_state(self, channel: str, recipient: str, item_id: str, profile: str) -> RatingState:
        """One read for the rating page."""
        mine = (ratings.c.channel == channel) & (ratings.c.recipient == recipient) & (ratings.c.profile == profile)
        with self._read() as connection:
            current = connection.execute(select(ratings.c.rating).where(mine, ratings.c.item_id == item_id)).scalar()
            counts = {int(rating): int(count) for rating, count in connection.execute(
                select(ratings.c.rating, func.count()).where(mine).group_by(ratings.c.rating))}
        return RatingState(int(current) if current is not None else None, int(counts.get(LIKE, 0)),
                           int(counts.get(DISLIKE, 0)))

    def ratings_of(self, channel: str, recipient: str) -> list[StoredRating]:
        """One recipient's ratings, the most recent first."""
        with self._read() as connection:
            rows = connection.execute(select(ratings).where(ratings.c.channel == channel,
                                                            ratings.c.recipient == recipient)
                                      .order_by(ratings.c.rated_at.desc(), ratings.c.item_id))
            return [_rating(row) for row in rows]

    def ratings_for(self, recipients: Collection[tuple[str, str]]) -> dict[tuple[str, str], list[StoredRating]]:
        """{(channel, recipient): its ratings} for these recipients (planning reads them once per pass); recipients
        without any are left out."""
        found: dict[tuple[str, str], list[StoredRating]] = {}
        with self._read() as connection:
            for part in chunks(sorted(set(recipients))):
                query = select(ratings).where(tuple_(ratings.c.channel, ratings.c.recipient).in_(part)) \
                    .order_by(ratings.c.channel, ratings.c.recipient, ratings.c.rated_at, ratings.c.item_id)
                for row in connection.execute(query):
                    found.setdefault((row.channel, row.recipient), []).append(_rating(row))
        return found

    def rating_counts(self) -> list[RatingCounts]:
        """Per recipient with ratings: how many 👍 and 👎, and when the last came."""
        likes = func.sum(case((ratings.c.rating > 0, 1), else_=0))
        query = select(ratings.c.channel, ratings.c.recipient, likes, func.count(), func.max(ratings.c.rated_at)) \
            .group_by(ratings.c.channel, ratings.c.recipient).order_by(ratings.c.channel, ratings.c.recipient)
        with self._read() as connection:
            return [RatingCounts(channel, recipient, int(up or 0), int(total) - int(up or 0), last)
                    for channel, recipient, up, total, last in connection.execute(query)]

    def forget_ratings(self, channel: str, recipient: str) -> int:
        """Delete one recipient's ratings (`digestbot feedback reset`); how many there were."""
        with self._write() as connection:
            result = connection.execute(delete(ratings).where(ratings.c.channel == channel,
                                                              ratings.c.recipient == recipient))
            return int(result.rowcount or 0)

    def forget_ratings_except(self, recipients: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """Delete the ratings of every recipient not among these (the ones the config still names); how many
        went, per recipient."""
        keep = set(recipients)
        with self._read() as connection:  # the primary key's first columns: an index scan, every pass
            found = [(str(c), str(r)) for c, r in connection.execute(
                select(ratings.c.channel, ratings.c.recipient).distinct())]
        gone = {}
        for channel, recipient in found:
            if (channel, recipient) not in keep:
                gone[(channel, recipient)] = self.forget_ratings(channel, recipient)
        return gone


def _rating(row: Row[Any]) -> StoredRating:
    return StoredRating(row.channel, row.recipient, row.item_id, row.profile, int(row.rating), row.rated_at)
