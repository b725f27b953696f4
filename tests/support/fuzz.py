"""Every fuzz failure names the one case that reproduces it, whatever it raised."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def fuzz_case(case: str) -> Iterator[None]:
    """Run one generated case; an assertion or any exception leaving it carries a note naming `case` (pytest
    prints it under the error), so the failure can be replayed alone."""
    try:
        yield
    except Exception as exc:
        exc.add_note(f"fuzz case that reproduces this: {case}")
        raise
