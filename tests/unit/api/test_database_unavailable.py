"""Which exceptions the backend answers with 503 database_unavailable instead of a 500."""

import pytest
from sqlalchemy import exc as sa_exc

from hft.api.errors import database_unavailable


def _operational(message: str) -> sa_exc.OperationalError:
    return sa_exc.OperationalError("SELECT 1", {}, Exception(message))


@pytest.mark.parametrize(
    "error",
    [
        _operational("database is locked"),
        _operational("connection refused"),
        sa_exc.InterfaceError("SELECT 1", {}, Exception("connection is closed")),
        sa_exc.TimeoutError("QueuePool limit reached"),
        ConnectionRefusedError(111, "Connection refused"),
    ],
)
def test_outages_are_recognised(error: BaseException) -> None:
    assert database_unavailable(error)


def test_outage_found_through_the_cause_chain() -> None:
    outer = RuntimeError("while placing an order")
    outer.__cause__ = _operational("server closed the connection unexpectedly")
    assert database_unavailable(outer)


@pytest.mark.parametrize(
    "error",
    [
        sa_exc.IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed")),
        sa_exc.ProgrammingError("SELEC", {}, Exception("syntax error")),
        ValueError("bad"),
        KeyError("x"),
    ],
)
def test_bugs_are_not_outages(error: BaseException) -> None:
    assert not database_unavailable(error)
