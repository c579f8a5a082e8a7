"""Camera ingesters on several hosts (``ioc ingest cameras --shared``) split the cameras by
leases in PostgreSQL: every camera analysed by exactly one, a killed host's cameras taken over
within a minute, a camera added to the config picked up without a restart, no count doubled."""

from __future__ import annotations

import collections
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import yaml

from ingest.cameras.leases import Leases, fair_share
from sensors.camera_synth import SceneSpec, SyntheticCamera

ROOT = Path(__file__).resolve().parents[2]
FPS = 10
INTERVAL_S = 2


def query(url: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


def wait_for(pred, timeout: float, step: float = 0.5):  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return None


def test_fair_share() -> None:
    assert [fair_share(12, n) for n in (0, 1, 2, 3, 5, 12, 13)] == [12, 12, 6, 4, 3, 1, 1]


def test_leases_split_and_take_over(fresh_db_url: str) -> None:
    cams = [f"c{i:02d}" for i in range(12)]
    members = [Leases(fresh_db_url, f"h{i}", ttl_s=3.0, every_s=1.0) for i in range(3)]
    try:
        for m in members:  # every member known before the split settles
            m.step([])
        for _ in range(3):
            for m in members:
                plan = m.step(cams)
                m.release(plan.surplus)
        held = [m.held for m in members]
        assert sorted(len(h) for h in held) == [4, 4, 4]
        assert set().union(*held) == set(cams)
        assert sum(len(h) for h in held) == 12  # disjoint
        rows = query(fresh_db_url, "SELECT camera_id, owner FROM camera_leases")
        assert {c: o for c, o in rows} == {c: m.me for m in members for c in m.held}

        # h0 stops renewing (its host died): after the lease ran out, the others take its share
        dead = set(members[0].held)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10:
            for m in members[1:]:
                m.release(m.step(cams).surplus)
            if members[1].held | members[2].held == set(cams):
                break
            time.sleep(0.5)
        took = time.monotonic() - t0
        assert members[1].held | members[2].held == set(cams), took
        assert not members[1].held & members[2].held
        assert 2.0 <= took <= 6.0  # not before the lease (3 s) expired, soon after
        assert dead <= members[1].held | members[2].held
        # the dead one comes back: told its leases are gone
        plan = members[0].step(cams)
        assert sorted(plan.lost) == sorted(dead)
    finally:
        for m in members:
            m.close()


def test_a_camera_is_taken_by_one_of_two_racing(fresh_db_url: str) -> None:
    a = Leases(fresh_db_url, "a", ttl_s=30.0, every_s=5.0)
    b = Leases(fresh_db_url, "b", ttl_s=30.0, every_s=5.0)
    try:
        pa, pb = a.step(["x"]), b.step(["x"])
        assert (pa.start, pb.start) == (["x"], [])
        a.leave()  # a clean stop gives it back at once
        assert b.step(["x"]).start == ["x"]
    finally:
        a.close()
        b.close()


# --------------------------------------------------------------------------- three hosts


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("leases")
    spec = SceneSpec(seed=5, width=320, height=180, fps=FPS, duration_s=6)
    return SyntheticCamera(spec).write(d / "loop.mp4")


def write_cameras(cdir: Path, clip: Path, n: int) -> list[str]:
    ward = yaml.safe_load((cdir / "wards.yaml").read_text(encoding="utf-8"))["wards"][0]["code"]
    ids = [f"cam-{i:02d}" for i in range(n)]
    doc = {
        "defaults": {"analysis_fps": 1, "interval_s": INTERVAL_S, "width": 320},
        "cameras": [
            {
                "id": cam,
                "ward": str(ward),
                "source": str(clip),
                "loop": True,
                "lines": [{"name": "road", "points": [[0.5, 0.3], [0.5, 0.9]]}],
            }
            for cam in ids
        ],
    }
    tmp = cdir / ".cameras.yaml.tmp"
    tmp.write_text(yaml.safe_dump(doc), encoding="utf-8")
    os.replace(tmp, cdir / "cameras.yaml")
    return ids


@pytest.fixture
def hosts(fresh_db_url: str, tmp_path: Path, clip: Path) -> Iterator[dict[str, Any]]:
    cdir = tmp_path / "config"
    shutil.copytree(ROOT / "config", cdir)
    ids = write_cameras(cdir, clip, 12)
    env = dict(os.environ, IOC_DATABASE_URL=fresh_db_url, IOC_CONFIG_DIR=str(cdir))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    for i in range(3):
        log = open(tmp_path / f"host{i}.log", "wb")  # noqa: SIM115 - closed below
        logs.append(log)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "ioc.cli", "ingest", "cameras", "--shared"],
                env=dict(env, IOC_VAR_DIR=str(tmp_path / f"var{i}")),
                cwd=tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        yield {"procs": procs, "ids": ids, "cdir": cdir, "tmp": tmp_path}
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in logs:
            log.close()


def owners(url: str) -> dict[str, str]:
    return dict(query(url, "SELECT camera_id, owner FROM camera_leases WHERE expires_at > now()"))


def reported_since(url: str, since: dt.datetime) -> set[str]:
    rows = query(
        url,
        "SELECT DISTINCT camera_id FROM camera_metrics WHERE metric = 'frames_received'"
        " AND ts > %s AND value > 0",
        (since,),
    )
    return {r[0] for r in rows}


@pytest.mark.timeout(300)
def test_three_ingesters_split_twelve_cameras_and_survive_a_kill(
    fresh_db_url: str, hosts: dict[str, Any]
) -> None:
    url, ids, procs = fresh_db_url, hosts["ids"], hosts["procs"]
    start = dt.datetime.now(dt.UTC)

    def split_evenly() -> dict[str, str] | None:
        o = owners(url)
        per = collections.Counter(o.values())
        if set(o) == set(ids) and len(per) == 3 and set(per.values()) == {4}:
            return o
        return None

    split = wait_for(split_evenly, 90)
    assert split, owners(url)
    assert wait_for(lambda: reported_since(url, start) == set(ids), 60), reported_since(url, start)
    for p in procs:
        assert p.poll() is None

    # kill -9 the host of cam-00: its four cameras are reported by the others within 60 s
    victim_instance = split["cam-00"]
    victim = next(p for p in procs if victim_instance.endswith(f":{p.pid}"))
    orphans = {c for c, o in split.items() if o == victim_instance}
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    killed = time.monotonic()
    killed_at = dt.datetime.now(dt.UTC)

    def taken_over() -> bool:
        o = owners(url)
        return (
            set(o) == set(ids)
            and victim_instance not in o.values()
            and orphans <= reported_since(url, killed_at + dt.timedelta(seconds=1))
        )

    assert wait_for(taken_over, 60), (owners(url), reported_since(url, killed_at))
    took = time.monotonic() - killed
    assert took <= 60
    per = collections.Counter(owners(url).values())
    assert sorted(per.values()) == [6, 6]

    # a camera added to the configuration: picked up without a restart
    ids13 = write_cameras(hosts["cdir"], _clip(hosts), 13)
    added = dt.datetime.now(dt.UTC)
    assert wait_for(lambda: "cam-12" in reported_since(url, added), 60), owners(url)
    assert set(owners(url)) == set(ids13)

    # stop the survivors cleanly, then count: no interval of any camera holds more frames
    # than one reader of the clip sees in it (two ingesters on one camera would add theirs)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(timeout=30)
    rows = query(
        url,
        "SELECT camera_id, date_bin(%s * interval '1 second', ts, timestamptz 'epoch') b,"
        " sum(value), count(*) FROM camera_metrics WHERE metric = 'frames_received'"
        " GROUP BY 1, 2",
        (INTERVAL_S,),
    )
    assert rows
    worst = max(rows, key=lambda r: r[2])
    assert worst[2] <= FPS * INTERVAL_S + 1, worst
    # and at least one bucket per camera was a full one (the check can fail)
    full = {r[0] for r in rows if r[2] >= FPS * INTERVAL_S - 1}
    assert full >= set(ids), set(ids) - full
    print(f"\ntake-over after kill -9: {took:.1f} s; cameras {len(ids13)}")


def _clip(hosts: dict[str, Any]) -> Path:
    doc = yaml.safe_load((hosts["cdir"] / "cameras.yaml").read_text(encoding="utf-8"))
    return Path(doc["cameras"][0]["source"])


def test_ingester_stops_its_cameras_when_it_cannot_renew(fresh_db_url: str) -> None:
    """Leases.expired_locally: past ttl - 2 * every without a renewal, a host stops."""
    m = Leases(fresh_db_url, "lonely", ttl_s=3.0, every_s=1.0)
    try:
        m.step(["x"])
        assert m.held == {"x"} and not m.expired_locally()
        assert m.expired_locally(time.monotonic() + 1.5)  # 3 - 2 * 1 = 1 s of grace
    finally:
        m.close()
