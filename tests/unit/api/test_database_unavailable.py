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


class _ServerError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize("sqlstate", ["08006", "53300", "57P01", "57P03", "3D000", "55000"])
def test_postgres_outage_states(sqlstate: str) -> None:
    error = sa_exc.DBAPIError("connect", {}, Exception("refused"))
    error.__cause__ = _ServerError(sqlstate)
    assert database_unavailable(error)


@pytest.mark.parametrize("sqlstate", ["23505", "42601", "22003"])
def test_postgres_request_errors_are_not_outages(sqlstate: str) -> None:
    error = sa_exc.DBAPIError("INSERT", {}, Exception("bad"))
    error.__cause__ = _ServerError(sqlstate)
    assert not database_unavailable(error)


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
