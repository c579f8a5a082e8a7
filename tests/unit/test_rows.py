"""Typed rows (ioc.db.rows): a query's columns must be its row's fields, in order; numeric
columns declared float come out as floats; NULL stays None; frames keep their columns."""

from __future__ import annotations

import datetime as dt
import pickle
from dataclasses import dataclass
from decimal import Decimal

import pytest

from dashboards.queries import Alert, Camera
from ioc.citizen.queries import ReportRow
from ioc.db.rows import frame, from_tuples
from ioc.incidents.queries import QueueRow


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    n: int
    share: float | None
    total: float


def test_columns_must_match_the_fields_in_order() -> None:
    with pytest.raises(TypeError, match=r"Row: the query returns columns \['n', 'name'"):
        from_tuples(Row, ["n", "name", "share", "total"], [])
    with pytest.raises(TypeError, match="has fields"):
        from_tuples(Row, ["name", "n", "share"], [])


def test_numeric_becomes_float_and_null_stays_none() -> None:
    (a, b) = from_tuples(
        Row, ["name", "n", "share", "total"], [("a", 3, Decimal("1.5"), 2), ("b", 0, None, 0.5)]
    )
    assert a == Row("a", 3, 1.5, 2.0) and isinstance(a.share, float) and isinstance(a.total, float)
    assert b.share is None and isinstance(b.n, int)


def test_frame_has_the_fields_as_columns_even_when_empty() -> None:
    rows = from_tuples(Row, ["name", "n", "share", "total"], [("a", 3, None, 1)])
    df = frame(Row, rows)
    assert list(df.columns) == ["name", "n", "share", "total"] and df["n"].tolist() == [3]
    assert list(frame(Row, []).columns) == ["name", "n", "share", "total"]


def test_rows_survive_the_shared_caches_pickle() -> None:
    """The dashboard's shared caches (file, Redis) pickle query results."""
    t0 = dt.datetime(2026, 12, 6, 1, 2, tzinfo=dt.UTC)
    rows = [
        Alert(
            1, "r", None, "20194", "warning", "open", "T", 1.0, t0, None, None, None, None, {}, 2, 1
        ),
        Camera("c1", "20194", None, "online", t0, None, 6.0, 16.0, 108.2),
        QueueRow(1, None, "flood", "high", "new", "T", None, t0, None, t0, t0, None, 0, "ok"),
        ReportRow(
            "R-1",
            "20194",
            "hotline",
            "flood",
            None,
            None,
            None,
            "09*****56",
            True,
            "received",
            t0,
            None,
            None,
            None,
            None,
            None,
            None,
            "open",
        ),
    ]
    assert pickle.loads(pickle.dumps(rows)) == rows
