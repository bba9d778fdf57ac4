"""Fixtures of the full-stack tests; the machinery is in hft_e2e_support.py."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Test modules run with --import-mode=importlib: make the support module importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hft_e2e_support import PG_URL, Stack

# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(
    scope="session",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def db_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres" and not PG_URL:
        pytest.skip("HFT_TEST_POSTGRES_URL is not set")
    return str(request.param)


@pytest.fixture(scope="module")
def stack(db_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack shared by a module's tests (each test uses its own users)."""
    s = Stack(tmp_path_factory.mktemp(f"stack-{db_kind}"), db_kind)
    try:
        s.start()
        yield s
    finally:
        s.close()


@pytest.fixture
def make_stack(
    db_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Stack]]:
    """Fresh stacks for tests that stop, kill or break processes."""
    made: list[Stack] = []

    def factory(**kwargs: Any) -> Stack:
        s = Stack(tmp_path / f"stack{len(made)}", db_kind, **kwargs)
        made.append(s)
        return s

    yield factory
    rep = getattr(request.node, "rep_call", None)
    for s in made:
        if rep is not None and rep.failed:
            print(s.logs())
        s.close()


@pytest.fixture(autouse=True)
def _show_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for name in ("stack",):
            if name in request.fixturenames:
                s = request.getfixturevalue(name)
                print(s.logs())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    if rep.when == "call":
        item.rep_call = rep  # type: ignore[attr-defined]
    return rep
