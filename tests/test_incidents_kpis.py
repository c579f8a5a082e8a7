"""Incident KPIs on the real PostgreSQL: incidents by state at a period's end (from the trail),
SLA breaches, median working hours to resolve per ward and for the city; in ``ioc export``."""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from ioc.config import Config
from ioc.db import Connection, connect
from ioc.incidents import core, rules, sla
from ioc.kpi.compute import compute_period
from ioc.reports.export import write_export
from ioc.workdays import LOCAL_TZ

ROOT = Path(__file__).resolve().parent.parent
DAY = dt.datetime(2026, 3, 10, tzinfo=LOCAL_TZ)  # a Tuesday
NEXT = DAY + dt.timedelta(days=1)
KPIS = [
    "incidents_open",
    "incidents_new",
    "incidents_assigned",
    "incidents_in_progress",
    "incident_sla_breaches",
    "incident_resolve_hours_median",
]


def at(h: float, day: dt.datetime = DAY) -> dt.datetime:
    return day + dt.timedelta(hours=h)


@pytest.fixture(scope="module")
def world(pg_server_url: str, config: Config) -> Iterator[tuple[str, str, str]]:
    """Two wards' incidents on 10/03/2026 (office hours 7:30-11:30, 13:30-17:00)."""
    from conftest import create_database, drop_database, init_schema

    url = create_database(pg_server_url)
    init_schema(url, config)
    a, b = sorted(config.ward_codes)[:2]
    conn = connect(url)
    who = {"actor": "op", "source": "web"}
    ids: dict[str, int] = {}

    def new(key: str, ward: str, h: float) -> None:
        ids[key] = core.create(
            conn, config, ward_code=ward, category="waste", title=key, now=at(h), **who
        )

    def done(key: str, t: dt.datetime) -> None:
        for step in rules.sop_steps(config, "waste"):
            core.tick_step(
                conn, config, ids[key], step.id, note="n", photo_ref="p.jpg", now=t, **who
            )
        core.resolve(conn, config, ids[key], "ok", now=t, **who)

    # (time, action) in the order they happen; the scheduler's sweep runs every 15 minutes
    # in between (it sees each clock as it was then)
    plan = [
        # a: resolved 08:00 -> 10:00 (2 working hours)
        (at(8), lambda t: new("i1", a, 8)),
        (at(8.5), lambda t: core.assign(conn, config, ids["i1"], a, now=t, **who)),
        (at(9), lambda t: core.start(conn, ids["i1"], now=t, **who)),
        (at(10), lambda t: done("i1", t)),
        # a: 09:00 -> 15:00 (2.5 + 1.5 = 4 working hours), acknowledged by resolving at its
        # response due time (09:00 + 4 h = 15:00): in time
        (at(9), lambda t: new("i2", a, 9)),
        (at(9), lambda t: core.assign(conn, config, ids["i2"], a, now=t, **who)),
        (at(15), lambda t: done("i2", t)),
        # a: 10:00, assigned, never acknowledged on the day (response due 16:00: breached),
        # resolved the next day
        (at(10), lambda t: new("i3", a, 10)),
        (at(10), lambda t: core.assign(conn, config, ids["i3"], a, now=t, **who)),
        (at(10, NEXT), lambda t: done("i3", t)),
        # b: 08:00 -> 15:30, response due 14:00 missed (breached); 3.5 + 2 = 5.5 working hours
        (at(8), lambda t: new("i6", b, 8)),
        (at(8), lambda t: core.assign(conn, config, ids["i6"], b, now=t, **who)),
        (at(15.5), lambda t: done("i6", t)),
        # b: in progress since 11:12 (acknowledged in time)
        (at(11), lambda t: new("i5", b, 11)),
        (at(11), lambda t: core.assign(conn, config, ids["i5"], b, now=t, **who)),
        (at(11.2), lambda t: core.start(conn, ids["i5"], now=t, **who)),
        # b: new at 16:00, never touched (response due the next day 10:30)
        (at(16), lambda t: new("i4", b, 16)),
        # b: rejected within the day
        (at(9), lambda t: new("i7", b, 9)),
        (at(9.5), lambda t: core.reject(conn, ids["i7"], "trùng", now=t, **who)),
    ]
    plan.sort(key=lambda x: x[0])
    try:
        t = at(7)
        for when, action in plan:
            while t <= when:
                sla.sweep(conn, config, now=t)
                t += dt.timedelta(minutes=15)
            action(when)
            conn.commit()
        while t <= at(24, NEXT):
            sla.sweep(conn, config, now=t)
            t += dt.timedelta(minutes=15)
    finally:
        conn.close()
    yield url, a, b
    drop_database(pg_server_url, url)


@pytest.fixture
def conn(world: tuple[str, str, str]) -> Iterator[Connection]:
    c = connect(world[0])
    yield c
    c.close()


def values(
    conn: Connection, config: Config, kpis: list[str]
) -> dict[tuple[str, str], float | None]:
    out = compute_period(
        conn, config, kpis=kpis, period="day", start=DAY, end=NEXT, now=NEXT + dt.timedelta(days=5)
    )
    return {(v.kpi, v.ward_code): v.value for v in out}


def test_incidents_by_state_at_the_end_of_the_day(
    conn: Connection, config: Config, world: tuple[str, str, str]
) -> None:
    _, a, b = world
    v = values(conn, config, KPIS[:4])
    assert v[("incidents_open", a)] == 1  # i3, resolved only the next day
    assert v[("incidents_assigned", a)] == 1
    assert v[("incidents_new", a)] == 0 and v[("incidents_in_progress", a)] == 0
    assert v[("incidents_open", b)] == 2  # the untouched one and the one in progress
    assert v[("incidents_new", b)] == 1 and v[("incidents_in_progress", b)] == 1
    other = sorted(config.ward_codes)[2]
    assert v[("incidents_open", other)] == 0  # IOC's own records: a true 0
    assert v[("incidents_open", "city")] == 3
    # the next day: i3 resolved
    nxt = compute_period(
        conn,
        config,
        kpis=["incidents_open"],
        period="day",
        start=NEXT,
        end=NEXT + dt.timedelta(days=1),
        wards=[a],
        city=False,
    )
    assert [x.value for x in nxt] == [0]


def test_sla_breaches_and_median_time_to_resolve(
    conn: Connection, config: Config, world: tuple[str, str, str]
) -> None:
    _, a, b = world
    v = values(conn, config, ["incident_sla_breaches", "incident_resolve_hours_median"])
    # waste: 4 working hours to respond, 24 to resolve. Response clocks due on the day:
    # a: i1 (ack 09:00, started), i2 (resolved 15:00 = ack; due 09:00+4 = 15:00: met),
    # i3 due 10:00+4 h = 15:30, never acknowledged on the day -> breached;
    # b: i6 due 08:00+4 = 13:30 (resolved 15:30) -> breached; i5 acknowledged at 11:12 (due
    # 16:30, met); 16:00 one due the next day 10:30 (not this day); i7 rejected.
    assert v[("incident_sla_breaches", a)] == 1
    assert v[("incident_sla_breaches", b)] == 1
    assert v[("incident_sla_breaches", "city")] == 2
    # median working hours: a: [2, 4] -> 3; b: [5.5] -> 5.5; city: [2, 4, 5.5] -> 4
    assert v[("incident_resolve_hours_median", a)] == pytest.approx(3.0)
    assert v[("incident_resolve_hours_median", b)] == pytest.approx(5.5)
    assert v[("incident_resolve_hours_median", "city")] == pytest.approx(4.0)
    other = sorted(config.ward_codes)[2]
    assert v[("incident_resolve_hours_median", other)] is None  # nothing resolved: no data


def test_incident_kpis_in_ioc_export(
    conn: Connection, config: Config, world: tuple[str, str, str], tmp_path: Path
) -> None:
    url, a, b = world
    buf = io.BytesIO()
    n = write_export(
        conn,
        config,
        kpis=["incidents_open", "incident_resolve_hours_median"],
        wards=[a, b],
        start=DAY,
        end=DAY,
        every="day",
        fmt="csv",
        out=buf,
        lang="en",
    )
    assert n == 4
    df = pd.read_csv(io.BytesIO(buf.getvalue()), dtype={"Ward code": str})
    got = {(r["Ward code"], r["KPI code"]): r["Value"] for _, r in df.iterrows()}
    assert got[(a, "incidents_open")] == 1 and got[(b, "incident_resolve_hours_median")] == 5.5
    assert set(df["Unit"]) == {"sự cố", "giờ SLA"}  # as kpis.yaml writes them
    # the command line, with the city
    out = tmp_path / "inc.csv"
    env = dict(os.environ, IOC_DATABASE_URL=url, IOC_CONFIG_DIR=str(ROOT / "config"))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "ioc.cli",
            "export",
            "--kpi",
            "incident_sla_breaches",
            "--from",
            "2026-03-10",
            "--to",
            "2026-03-10",
            "--every",
            "day",
            "--format",
            "csv",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    df = pd.read_csv(out, dtype={"Mã phường/xã": str, "Ward code": str})
    assert len(df) == 95  # 94 wards and the city
    assert df.iloc[:, 5].sum() == 4  # the wards' 2 and the city's 2


def test_median_time_to_resolve_runs_on_each_incidents_own_clock(
    pg_server_url: str, config: Config
) -> None:
    """A critical flood (incidents.yaml: clock continuous) handled on a Saturday night counts
    its 3 hours; a waste incident over the same hours counts 0 (no office hours then)."""
    from conftest import create_database, drop_database, init_schema

    url = create_database(pg_server_url)
    try:
        init_schema(url, config)
        assert rules.settings(config).sla_for("flooding", "critical").clock == "continuous"
        a, b = sorted(config.ward_codes)[:2]
        sat = dt.datetime(2026, 3, 14, tzinfo=LOCAL_TZ)  # a Saturday
        who = {"actor": "op", "source": "web"}
        conn = connect(url)
        try:
            for ward, category, severity in ((a, "flooding", "critical"), (b, "waste", "warning")):
                i = core.create(
                    conn, config, ward_code=ward, category=category, severity=severity,
                    title=category, now=at(20, sat), **who,
                )  # fmt: skip
                core.assign(conn, config, i, ward, now=at(20.5, sat), **who)
                for step in rules.sop_steps(config, category):
                    core.tick_step(
                        conn, config, i, step.id, note="n", photo_ref="p.jpg", now=at(22, sat),
                        **who,
                    )  # fmt: skip
                core.resolve(conn, config, i, "ok", now=at(23, sat), **who)
                conn.commit()
            out = compute_period(
                conn, config, kpis=["incident_resolve_hours_median"], period="day", start=sat,
                end=sat + dt.timedelta(days=1), now=sat + dt.timedelta(days=3),
            )  # fmt: skip
        finally:
            conn.close()
        v = {x.ward_code: x.value for x in out}
        assert v[a] == pytest.approx(3.0)
        assert v[b] == pytest.approx(0.0)
        assert v["city"] == pytest.approx(1.5)
    finally:
        drop_database(pg_server_url, url)
