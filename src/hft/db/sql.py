"""Statement pieces whose best form differs between the supported databases."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY

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
