"""Rules of the code's shape that a reader should not have to check by hand."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parent.parent / "bot"


def _store_calls_in_coroutines(tree: ast.AST) -> list[tuple[int, str]]:
    """Calls like `store.x(...)`, `self.store.x(...)` or `app.store.x(...)` made in the body of an `async def` (not in
    a sync function nested in it, which may be run in a thread)."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, in_coroutine: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.AsyncFunctionDef):
                visit(child, True)
            elif isinstance(child, ast.FunctionDef | ast.Lambda):
                visit(child, False)
            else:
                if in_coroutine and isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute):
                    owner = child.func.value
                    name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
                    if name in ("store", "_store"):
                        found.append((child.lineno, ast.unparse(child.func)))
                visit(child, in_coroutine)

    visit(tree, False)
    return found


def test_no_coroutine_calls_the_store_on_the_event_loop() -> None:
    """The one rule for the event loop (`bot.store.aio`): async code reaches the database only through
    `AsyncStore.run`, in a worker thread, so a slow database never stalls sends or the web endpoint."""
    offenders = [f"{path.relative_to(BOT.parent)}:{line}: {call}"
                 for path in sorted(BOT.rglob("*.py"))
                 for line, call in _store_calls_in_coroutines(ast.parse(path.read_text(), str(path)))]
    assert offenders == []


def test_the_rule_is_checked_for_real() -> None:
    """The checker itself finds a store call in a coroutine, and leaves one in a nested sync function alone."""
    source = ("async def cycle(self):\n    self.store.plan([])\n    def later():\n        self.store.claim()\n"
              "    await self.db.run(Store.claim)\n")
    assert _store_calls_in_coroutines(ast.parse(source)) == [(2, "self.store.plan")]


def test_a_fuzz_failure_names_the_case_that_reproduces_it() -> None:
    import pytest

    from tests.support.fuzz import fuzz_case

    with pytest.raises(AssertionError) as caught, fuzz_case("edited(7)"):
        raise AssertionError("a config the fuzzer broke")
    assert caught.value.__notes__ == ["fuzz case that reproduces this: edited(7)"]


def test_every_package_ships() -> None:
    """A package missing from pyproject's list works in a checkout and breaks `pip install .` (the Dockerfile)."""
    import tomllib

    listed = set(tomllib.loads((BOT.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(BOT.parent).parts) for init in BOT.rglob("__init__.py")}
    assert found - listed == set()


def test_no_module_is_over_400_lines() -> None:
    sizes = {str(path.relative_to(BOT.parent)): len(path.read_text().splitlines()) for path in BOT.rglob("*.py")}
    assert {path: n for path, n in sizes.items() if n > 400} == {}
