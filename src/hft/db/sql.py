"""Statement pieces whose best form differs between the supported databases."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Dialect, Table, Text, any_, bindparam
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import TypeDecorator

from hft.db.base import NUMERIC_SCALE, Numeric, UtcDateTime

DIALECTS = ("postgresql", "sqlite")


def in_list(column: ColumnElement[Any], name: str) -> dict[str, ColumnElement[bool]]:
    """`column IN (:name)` for a list bound at execution, per dialect name.

    On PostgreSQL `column = ANY(:name)` with the list sent as one array parameter: one
    SQL text whatever the list's length, so it is compiled once and prepared once per
    connection. SQLite has no arrays and gets an expanding IN, which SQLAlchemy renders
    anew for each execution (about 45 us of CPU more per statement, measured on
    PostgreSQL) and which is a different statement for every list length.
    """
    return {
        "postgresql": column == any_(bindparam(name, type_=ARRAY(column.type))),
        "sqlite": column.in_(bindparam(name, expanding=True)),
    }


_PG_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


class _ArrayLiteral(TypeDecorator[list[Any]]):
    """A list bound as one PostgreSQL array literal (`{a,NULL,b}`) for SQL that casts it
    to the column's array type.

    asyncpg encodes an array parameter element by element in binary, and decimals and
    timestamps are slow at that (about 0.7 and 0.5 us of CPU each): they were most of
    the cost of sending a batch's rows. One text parameter costs next to nothing, and
    the server parses it exactly. Every element first goes through the column type's
    own checks (`_element`), then `_format` writes it in a form that needs no quoting.
    """

    impl = Text
    cache_ok = True
    _element: TypeDecorator[Any]

    @staticmethod
    def _format(value: Any) -> str:
        raise NotImplementedError

    def _text(self, item: Any, dialect: Dialect) -> str:
        """One element, checked by the column type, as the literal writes it."""
        checked = self._element.process_bind_param(item, dialect)
        return "NULL" if checked is None else self._format(checked)

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        parts = []
        # A batch's rows share few distinct values (its commands' timestamps): each is
        # checked and written once.
        written: dict[Any, str] = {}
        for item in value:
            text = written.get(item)
            if text is None:
                text = written[item] = self._text(item, dialect)
            parts.append(text)
        return "{" + ",".join(parts) + "}"


class DecimalArrayText(_ArrayLiteral):
    """Exact decimals (`Numeric`: Decimal or int, finite, at most 18 decimals), written
    in positional notation."""

    cache_ok = True
    _element = Numeric()

    @staticmethod
    def _format(value: Decimal) -> str:
        return format(value, "f")

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        # Distinct values are the rule here, so no memo: hashing a Decimal costs about
        # as much as writing it.
        if value is None:
            return None
        parts = []
        for item in value:
            # The common case, checked from its text (a third of the general route's
            # cost): a finite Decimal with at most NUMERIC_SCALE decimals.
            if type(item) is Decimal and item.is_finite():
                text = format(item, "f")
                dot = text.find(".")
                if dot < 0 or len(text) - dot <= NUMERIC_SCALE + 1:
                    parts.append(text)
                    continue
            # Anything else takes Numeric's checks (None, ints, and every refusal).
            parts.append(self._text(item, dialect))
        return "{" + ",".join(parts) + "}"


class TimestampArrayText(_ArrayLiteral):
    """Timezone-aware timestamps (`UtcDateTime`), written in ISO 8601 with their offset."""

    cache_ok = True
    _element = UtcDateTime()

    @staticmethod
    def _format(value: datetime) -> str:
        return value.isoformat()


_ARRAY_LITERALS: dict[type[Any], type[_ArrayLiteral]] = {
    Numeric: DecimalArrayText,
    UtcDateTime: TimestampArrayText,
}


def pg_unnest(
    table: Table, columns: Sequence[str], alias: str, *, ordinality: str | None = None
) -> tuple[str, list[BindParameter[Any]]]:
    """PostgreSQL rows from one array parameter per column: the SQL
    `unnest(CAST(:alias_c1 AS type1[]), ...) AS alias(c1, ...)` and its bind parameters.

    Row i is position i of every array, so any number of rows is one statement with a
    fixed text (prepared once), and several such row sets can feed the data-modifying
    CTEs of one statement: one round trip where executemany needs one per table. Each
    parameter is typed as an ARRAY of the column's type, so the column type's own bind
    processing (exact-decimal checks, UTC timestamps) runs on every element; decimal and
    timestamp columns are sent as one array literal each (`_ArrayLiteral`). With `ordinality`,
    each row also has its position (from 1) in a column of that name.
    """
    quote = _PG_DIALECT.identifier_preparer.quote
    casts: list[str] = []
    params: list[BindParameter[Any]] = []
    for name in columns:
        column = table.c[name]
        pg_type = column.type.dialect_impl(_PG_DIALECT).compile(dialect=_PG_DIALECT)
        literal = _ARRAY_LITERALS.get(type(column.type))
        array_type = literal() if literal is not None else ARRAY(column.type)
        params.append(bindparam(f"{alias}_{name}", type_=array_type))
        casts.append(f"CAST(:{alias}_{name} AS {pg_type}[])")
    names = [quote(name) for name in columns]
    numbered = ""
    if ordinality is not None:
        # The row's position (from 1) as one more column: rows can be matched by it.
        numbered = " WITH ORDINALITY"
        names.append(quote(ordinality))
    return f"unnest({', '.join(casts)}){numbered} AS {alias}({', '.join(names)})", params


class UnnestRows:
    """The row sets of one PostgreSQL statement made of `pg_unnest` parts: their SQL as
    the statement is written, then, per execution, the array parameters of given rows.

    A row set's columns are (row key, column) pairs, so rows keyed for an executemany
    elsewhere (`b_id` for `id`, say) feed the same statement unchanged.
    """

    def __init__(self) -> None:
        self.binds: list[BindParameter[Any]] = []
        self._columns: dict[str, Sequence[tuple[str, str]]] = {}

    def sql(
        self,
        table: Table,
        columns: Sequence[tuple[str, str]],
        alias: str,
        *,
        ordinality: str | None = None,
    ) -> str:
        """The `pg_unnest` SQL of a row set named `alias`; its parameters join `binds`."""
        sql, params = pg_unnest(table, [c for _, c in columns], alias, ordinality=ordinality)
        self.binds += params
        self._columns[alias] = columns
        return sql

    def params(self, rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
        """The array parameters of each row set's rows (every row set of the statement)."""
        return {
            f"{alias}_{column}": [row[key] for row in rows[alias]]
            for alias, columns in self._columns.items()
            for key, column in columns
        }
