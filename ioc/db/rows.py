"""Typed rows: what a query function hands to the pages.

Each query that pages read row by row declares its row as a frozen dataclass whose fields are
the query's columns, in order, and returns ``list[Row]`` (:func:`fetch`); a change of the SQL
that the row does not follow fails at once with both column lists, not later as a missing
attribute in a page. SQL NULL stays ``None`` (the one notion of missing: :mod:`ioc.missing`);
a field declared ``float`` (or ``float | None``) gets a float where PostgreSQL sends a
``Decimal`` (``numeric``, ``sum()`` of integers). pandas is used only where a figure or an
export needs a frame (:func:`frame`).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import pandas as pd

from ioc.db import Connection

R = TypeVar("R")


_specs: dict[type, tuple[tuple[str, ...], tuple[bool, ...]]] = {}


def _spec(cls: type) -> tuple[tuple[str, ...], tuple[bool, ...]]:
    """The row's field names and, per field, whether it is a float."""
    spec = _specs.get(cls)
    if spec is None:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} is not a dataclass")
        hints = typing.get_type_hints(cls)
        names = tuple(f.name for f in dataclasses.fields(cls))
        spec = _specs[cls] = (names, tuple(hints[n] in (float, float | None) for n in names))
    return spec


def from_tuples(cls: type[R], columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[R]:
    """``rows`` (tuples in ``columns`` order) as ``cls`` instances."""
    names, floats = _spec(cls)
    if tuple(columns) != names:
        raise TypeError(
            f"{cls.__name__}: the query returns columns {list(columns)}, the row has fields "
            f"{list(names)}"
        )
    out: list[R] = []
    for row in rows:
        values = [
            float(v) if f and v is not None and not isinstance(v, float) else v
            for v, f in zip(row, floats, strict=True)
        ]
        out.append(cls(*values))
    return out


def fetch(conn: Connection, cls: type[R], sql: str, params: Any = None) -> list[R]:
    """Run ``sql`` and return its rows as ``cls`` instances."""
    with conn.cursor() as cur:
        cur.execute(sql, params or {})
        columns = [d[0] for d in cur.description or ()]
        return from_tuples(cls, columns, cur.fetchall())


def frame(cls: type, rows: Sequence[Any]) -> pd.DataFrame:
    """``rows`` of ``cls`` as a DataFrame with one column per field (for a figure or an
    export; also when ``rows`` is empty)."""
    names, _ = _spec(cls)
    return pd.DataFrame.from_records(
        [tuple(getattr(r, n) for n in names) for r in rows], columns=list(names)
    )
