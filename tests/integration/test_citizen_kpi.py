"""The citizen-report KPIs (issue 11) on real PostgreSQL, on hand-computed hard cases, and
through `ioc export --kpi`.

reports_on_time_rate follows on_time_rate's rule (KPI-REFERENCE "Citizen reports"): in the
period = received before its end and not ended before its start; on time = resolved (or
rejected) on or before due, or open at the end and not yet due then."""

from __future__ import annotations

import csv
import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ioc.config import Config
from ioc.db import Connection, connect
from ioc.kpi.compute import kpi_env
from ioc.kpi.queries import (
    avg_report_handling_hours,
    reports_on_time_rate,
    reports_overdue,
    reports_received,
)
from ioc.workdays import LOCAL_TZ

ROOT = Path(__file__).resolve().parents[2]
A, B, C = "20195", "20197", "20200"


def L(*args: int) -> dt.datetime:
    """A local time, 4 weeks earlier (the cases are written for December 2026; the export
    needs periods in the past, and the weekdays stay the same: 7/12 is 9/11, a Monday)."""
    return dt.datetime(*args, tzinfo=LOCAL_TZ) - dt.timedelta(days=28)


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Connection]:
    c = connect(fresh_db_url)
    yield c
    c.close()


def add(
    conn: Connection,
    rid: str,
    ward: str,
    received: dt.datetime,
    due: dt.datetime | None,
    resolved: dt.datetime | None = None,
    status: str | None = None,
) -> None:
    status = status or ("resolved" if resolved else "received")
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO reports (id, ward_code, category, status, received_at, due_at,"
            " resolved_at, last_event_at) VALUES (%s, %s, 'flooding', %s, %s, %s, %s, %s)",
            (rid, ward, status, received, due, resolved, resolved or received),
        )
    conn.commit()


# The period: Monday 7/12/2026 00:00 → Saturday 12/12/2026 00:00 (local).
START, END = L(2026, 12, 7), L(2026, 12, 12)


@pytest.fixture
def cases(conn: Connection) -> None:
    # ward A
    add(conn, "a-early", A, L(2026, 12, 7, 8), L(2026, 12, 7, 12), L(2026, 12, 7, 10))  # on time
    add(conn, "a-exact", A, L(2026, 12, 7, 8), L(2026, 12, 7, 12), L(2026, 12, 7, 12))  # = due: on
    add(conn, "a-late", A, L(2026, 12, 7, 8), L(2026, 12, 7, 12), L(2026, 12, 8, 9))  # late
    add(conn, "a-open-ok", A, L(2026, 12, 11, 16), L(2026, 12, 14, 10))  # open, due after END
    add(conn, "a-open-over", A, L(2026, 12, 8, 8), L(2026, 12, 9, 8))  # open, overdue at END
    # rejected late counts as ended late
    add(conn, "a-rej", A, L(2026, 12, 8, 8), L(2026, 12, 8, 9), L(2026, 12, 8, 10), "rejected")
    # received before the period, ended before it: not counted at all
    add(conn, "a-old", A, L(2026, 11, 30, 8), L(2026, 12, 1, 8), L(2026, 11, 30, 9))
    # received before, ended inside: counted (on time)
    add(conn, "a-carry", A, L(2026, 12, 4, 16), L(2026, 12, 7, 10, 30), L(2026, 12, 7, 9))
    # received after the period: not counted
    add(conn, "a-future", A, L(2026, 12, 12, 9), L(2026, 12, 12, 13))
    # ward B: resolved after END, due between END and the resolution → open, not yet due, at END
    add(conn, "b-after", B, L(2026, 12, 11, 15), L(2026, 12, 14, 9), L(2026, 12, 15, 9))
    # ... and one resolved after END but overdue at END
    add(conn, "b-after-over", B, L(2026, 12, 9, 8), L(2026, 12, 10, 8), L(2026, 12, 13, 9))
    # ward C: only a report long ago (ended): no data for rates in the period, 0 received


def frame(fn, conn: Connection, config: Config) -> dict[str, tuple[float, float]]:  # type: ignore[no-untyped-def]
    df = fn(
        conn, wards=[A, B, C], start=START.astimezone(dt.UTC), end=END.astimezone(dt.UTC),
        env=kpi_env(config), params={},
    )  # fmt: skip
    return {r.ward_code: (r.value, r.weight) for r in df.itertuples()}


def test_reports_on_time_rate_by_hand(conn: Connection, config: Config, cases: None) -> None:
    add(conn, "c-old", C, L(2026, 11, 2, 8), L(2026, 11, 2, 12), L(2026, 11, 2, 9))
    got = frame(reports_on_time_rate, conn, config)
    # A counted: early, exact, late, open-ok, open-over, rej, carry = 7; on time: early, exact,
    # open-ok, carry = 4 → 57.14 %
    assert got[A] == (pytest.approx(400 / 7), 7)
    # B: b-after on time (open at END, not yet due), b-after-over overdue → 50 %
    assert got[B] == (50.0, 2)
    assert C not in got  # nothing received or handled in the period: no data, not 0


def test_reports_overdue_received_and_hours(conn: Connection, config: Config, cases: None):
    add(conn, "c-old", C, L(2026, 11, 2, 8), L(2026, 11, 2, 12), L(2026, 11, 2, 9))
    over = frame(reports_overdue, conn, config)
    assert over[A][0] == 1  # a-open-over (a-open-ok not yet due)
    assert over[B][0] == 1  # b-after-over: still open at END, due 10/12
    assert over[C][0] == 0  # a ward with reports, none open: 0, not no data
    rec = frame(reports_received, conn, config)
    # A: early, exact, late, open-ok, open-over, rej = 6 (carry and old before, future after)
    assert rec[A][0] == 6 and rec[B][0] == 2 and rec[C][0] == 0
    hours = frame(avg_report_handling_hours, conn, config)
    # A ended in the period, in working hours (7:30-11:30, 13:30-17:00):
    #   early 8→10 = 2; exact 8→12 = 3.5; late Mon 8 → Tue 9 = 7 + 1.5 = 8.5;
    #   rej 8→10 = 2; carry Fri 16 → Mon 9 = 1 + 1.5 = 2.5  → mean 18.5 / 5 = 3.7
    assert hours[A] == (pytest.approx(3.7), 5)
    assert B not in hours  # both of B's ended after END


def test_export_cli_reports_kpis(fresh_db_url: str, conn: Connection, cases: None, tmp_path: Path):
    out = tmp_path / "r.csv"
    env = dict(os.environ, IOC_DATABASE_URL=fresh_db_url, IOC_CONFIG_DIR=str(ROOT / "config"))
    r = subprocess.run(
        [sys.executable, "-m", "ioc.cli", "export", "--kpi", "reports_on_time_rate",
         "reports_overdue", "reports_received", "avg_report_handling_hours", "--ward", A, B,
         "--from", "2026-11-09", "--to", "2026-11-13", "--every", "week", "--lang", "en",
         "--out", str(out)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=180,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    with out.open(encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    header, data = rows[0], rows[1:]
    col = {name: i for i, name in enumerate(header)}
    kpi_col = next(i for n, i in col.items() if "code" in n.lower() and "kpi" in n.lower())
    ward_col = next(i for n, i in col.items() if "code" in n.lower() and i != kpi_col)
    val_col = next(i for n, i in col.items() if n.lower().startswith("value"))
    got = {(row[kpi_col], row[ward_col]): row[val_col] for row in data}
    # the week 9/11-16/11 (the cases' "7/12-14/12") is measured at its end, Monday 16/11 0:00:
    # A counts a-future too (received Saturday 9:00, due 13:00: overdue then) → 4 of 8 on time
    assert float(got[("reports_on_time_rate", A)]) == pytest.approx(50.0)
    assert float(got[("reports_overdue", A)]) == 2
    assert float(got[("reports_received", B)]) == 2
    assert float(got[("avg_report_handling_hours", A)]) == pytest.approx(3.7)
