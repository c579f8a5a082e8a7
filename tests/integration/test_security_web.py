"""Issue 14, against the dashboard app served in-process on a seeded real database:

* a ward leader's /wall callback, view by view and item by item against an admin's: only the
  leader's wards (city totals as aggregates); the kiosk keeps the whole city;
* every registered Dash callback replayed as a ward leader with another ward's codes: none of
  that ward's data comes back;
* the open redirect after sign-in, the Origin check (scheme, host, port), crafted callback
  bodies (400/403/404, never 500, nothing logged as an error), the Content-Security-Policy,
  /metrics' token only in the header.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from dash_fixtures import wall_body
from dash_seed import add_users, seed

from dashboards.rotation import VIEWS
from ioc.config import Config
from ioc.db import connect
from ioc.settings import Settings

PASSWORD = "security-test-pass-1"
KIOSK_TOKEN = "kiosk-token-for-security-tests-0123"
SECRET_VALUE = 4242.42  # every KPI of the other ward: easy to spot in any output
SECRET_WATER = 987.65
CALLBACK = "/_dash-update-component"
ORIGIN = {"Origin": "http://localhost"}

pytestmark = pytest.mark.filterwarnings(
    r"ignore:\s*The dash_table.DataTable will be removed:DeprecationWarning"
)


@dataclasses.dataclass
class Site:
    app: Any
    cfg: Config
    url: str
    own: str
    other: str
    names: dict[str, str]

    def client(self, user: str | None) -> Any:
        c = self.app.server.test_client()
        if user == "kiosk-token":
            assert c.get(f"/wall?token={KIOSK_TOKEN}").status_code == 200
        elif user is not None:
            r = c.post(
                "/login",
                data={"username": user, "password": PASSWORD, "next": "/"},
                headers=ORIGIN,
            )
            assert r.status_code == 302, r.data[:300]
        return c


def _mark_other_ward(url: str, cfg: Config, own: str, other: str) -> None:
    """Data of the other ward that a leader of the first must never receive."""
    from ioc.incidents import core

    now = dt.datetime.now(dt.UTC)
    conn = connect(url)
    try:
        for ward, title, ago_h in ((other, "SECRETINC", 8), (own, "OWNINC", 7)):
            core.create(
                conn,
                cfg,
                ward_code=ward,
                category="flooding",
                severity="critical",
                title=title,
                actor="operator",
                source="web",
                now=now - dt.timedelta(hours=ago_h),
            )
        with conn.cursor() as cur:
            cur.execute(
                "UPDATE kpi_values SET value = %s WHERE ward_code = %s", (SECRET_VALUE, other)
            )
            cur.execute(
                "INSERT INTO cameras (camera_id, ward_code, name, status, last_seen)"
                " VALUES ('cam-secretcam', %s, 'SECRETCAM', 'offline', now())"
                " ON CONFLICT DO NOTHING",
                (other,),
            )
            cur.execute(
                "INSERT INTO camera_events (camera_id, ward_code, kind, started_at)"
                " VALUES ('cam-secretcam', %s, 'offline', now() - interval '20 minutes')"
                " ON CONFLICT DO NOTHING",
                (other,),
            )
            cur.execute(
                "INSERT INTO alerts (rule_id, subject, ward_code, severity, state, title, value,"
                " opened_at) VALUES ('rule_0', 'secret', %s, 'critical', 'open', 'SECRETALERT',"
                " 99, now())",
                (other,),
            )
            bucket = now.replace(minute=0, second=0, microsecond=0)
            for h in range(1, 4):
                cur.execute(
                    "INSERT INTO readings_hourly (bucket, ward_code, metric, n, sum, avg, min,"
                    " max) VALUES (%s, %s, 'water_level_cm', 60, 0, %s, 0, %s)"
                    " ON CONFLICT (bucket, ward_code, metric) DO UPDATE"
                    " SET avg = EXCLUDED.avg, max = EXCLUDED.max",
                    (bucket - dt.timedelta(hours=h), other, SECRET_WATER, SECRET_WATER),
                )
            for i in range(30):  # overdue applications: tops the wall's overdue bars
                cur.execute(
                    "INSERT INTO applications (id, ward_code, procedure, channel, received_at,"
                    " due_at, status, last_event_at) VALUES (%s, %s, '1.001193', 'online',"
                    " %s, %s, 'received', %s) ON CONFLICT DO NOTHING",
                    (
                        f"SECRETAPP-{i}",
                        other,
                        now - dt.timedelta(days=20),
                        now - dt.timedelta(days=10),
                        now - dt.timedelta(days=20),
                    ),
                )
        conn.commit()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def site(
    pg_server_url: str, config: Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    from db_support import create_schema_database, drop_database

    from dashboards.app import create_app

    url = create_schema_database(pg_server_url, config)
    conn = connect(url)
    try:
        seed(conn, config)
        add_users(conn, config, PASSWORD)
    finally:
        conn.close()
    codes = sorted(config.ward_codes)
    own, other = codes[0], codes[1]  # add_users grants the leader the first ward
    _mark_other_ward(url, config, own, other)
    tmp = tmp_path_factory.mktemp("sec")
    settings = Settings(
        secret_key="s" * 40,
        var_dir=tmp / "var",
        kiosk_token=KIOSK_TOKEN,
        metrics_token="metrics-token-0123456789",
    )
    app = create_app(config, url, settings)
    app.server.config["IOC_STATE"].cache.ttl = 0.0
    try:
        yield Site(app, config, url, own, other, {w.code: w.name for w in config.wards})
    finally:
        app.server.config["IOC_STATE"].pool.close()
        drop_database(pg_server_url, url)


# --- the wall --------------------------------------------------------------------------------


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every Dash component (dict with 'type' and 'props') in a callback's output."""
    if isinstance(node, dict):
        if "type" in node and "props" in node:
            yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _text(node: Any) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, (int, float)):
        return str(node)
    if isinstance(node, list):
        return " | ".join(_text(n) for n in node)
    if isinstance(node, dict) and "props" in node:
        return _text(node["props"].get("children"))
    return ""


def _array(value: Any) -> list[Any]:
    """A figure's array: a list, or Plotly's typed array {"dtype", "bdata"} (base64)."""
    if isinstance(value, dict) and "bdata" in value:
        import numpy as np

        return list(np.frombuffer(base64.b64decode(value["bdata"]), value["dtype"]).tolist())
    return list(value)


@dataclasses.dataclass
class WallView:
    items: list[str]  # the text of each list item
    traces: dict[str, dict[str, float]]  # per figure trace: location/label -> value
    tiles: list[str]  # the text of each KPI tile


def wall_view(client: Any, view: str) -> WallView:
    r = client.post(CALLBACK, json=wall_body(view), headers=ORIGIN)
    assert r.status_code == 200, r.data[:500]
    body = json.loads(r.data)["response"]["wall-body"]["children"]
    items, tiles, traces = [], [], {}
    for comp in _walk(body):
        props = comp["props"]
        if comp["type"] == "Li":
            items.append(_text(comp))
        elif "tile" in str(props.get("className", "")).split():
            tiles.append(_text(comp))
        elif comp["type"] == "Graph":
            for i, tr in enumerate(props["figure"]["data"]):
                if tr.get("name") == "wards":  # the grey outline of every ward: geography
                    continue
                keys = _array(tr.get("locations") or tr.get("y") or [])
                vals = _array(tr.get("z") or tr.get("x") or [])
                traces[f"{props['id']}:{i}"] = dict(zip(map(str, keys), vals, strict=False))
                if tr.get("customdata") and tr.get("locations"):  # the hover: value, rank/n
                    hover = dict(zip(keys, map(tuple, tr["customdata"]), strict=False))
                    traces[f"{props['id']}:{i}:hover"] = hover
    return WallView(items, traces, tiles)


def test_wall_of_a_leader_shows_only_their_wards_item_by_item(site: Site) -> None:
    admin, leader, kiosk = site.client("admin"), site.client("ward_leader"), None
    kiosk = site.client("kiosk-token")
    own_name, other_name = site.names[site.own], site.names[site.other]
    seen_other = set()
    for view in ("map", "applications", "environment", "cameras", "alerts"):
        a, w, k = wall_view(admin, view), wall_view(leader, view), wall_view(kiosk, view)
        # the kiosk keeps the whole city: exactly the admin's wall
        assert (k.items, k.traces, k.tiles) == (a.items, a.traces, a.tiles), view
        # city aggregates stay (the same tiles for both), except the counts of the cameras
        # view, which count the leader's own cameras and devices
        if view != "cameras":
            assert w.tiles == a.tiles, view
        # list items: the leader's are exactly the admin's items of the leader's ward
        # (the admin's lists are cut to the first N, so compare both ways where they can)
        for item in w.items:
            assert other_name not in item and "SECRET" not in item, (view, item)
        admin_own = [i for i in a.items if own_name in i]
        assert admin_own == w.items[: len(admin_own)], view
        if any(other_name in i or "SECRET" in i for i in a.items):
            seen_other.add(view)
        # figures: per trace, the leader's points are the admin's points of the leader's ward
        for key, points in w.traces.items():
            labels = {site.own, own_name}
            assert set(points) <= labels, (view, key, points)
            for p, v in points.items():  # the admin's top N may leave the leader's ward out
                assert a.traces[key].get(p, v) == v, (view, key, p)
            if view == "map":  # every ward is on the admin's map
                assert points == {p: v for p, v in a.traces[key].items() if p in labels}
            if any(p in (site.other, other_name) for p in a.traces[key]):
                seen_other.add(view)
    # the admin saw the other ward's data in these views: the comparison above means something
    assert {"map", "applications", "environment", "cameras", "alerts"} <= seen_other
    # incidents: pins, counts and the oldest overdue are of the leader's wards only (the
    # kiosk's are the admin's: the city's)
    views = {}
    for who, client in (("admin", admin), ("leader", leader), ("kiosk", kiosk)):
        r = client.post(CALLBACK, json=wall_body("incidents"), headers=ORIGIN)
        assert r.status_code == 200, (who, r.data[:300])
        body = json.loads(r.data)["response"]["wall-body"]["children"]
        comps = {c["props"].get("id"): c for c in _walk(body) if c["props"].get("id")}
        pins = [
            text
            for tr in comps["wall-inc-map"]["props"]["figure"]["data"]
            for text in tr.get("text", [])
        ]
        views[who] = (
            _text(comps["wall-inc-open"]),
            _text(comps["wall-inc-breached"]),
            _text(comps.get("wall-inc-oldest")),
            sorted(p.split(" ", 1)[1] for p in pins),
        )
    assert views["kiosk"] == views["admin"]
    assert views["admin"][:2] == ("Sự cố đang mở | 2", "Quá hạn | 2")
    assert views["leader"][:2] == ("Sự cố đang mở | 1", "Quá hạn | 1")
    assert views["leader"][3] == ["OWNINC"] and views["admin"][3] == ["OWNINC", "SECRETINC"]
    assert "OWNINC" in views["leader"][2] and "SECRETINC" not in views["leader"][2]
    assert "SECRETINC" in views["admin"][2]


# --- every callback replayed as a ward leader with another ward's codes ----------------------


def _leaks(text: str, site: Site) -> list[str]:
    """What of the other ward's data a callback response holds (the ward outline aside)."""
    try:
        data = json.loads(text)
    except ValueError:
        data = text

    def strip(node: Any) -> Any:  # geography is no ward's data: every ward's shape and name
        # nor is the wall's signature of what it shows (view:sha256 prefix): its hex digits
        # can spell "987", which the water-level pattern below would take for the other ward's
        if isinstance(node, str) and re.fullmatch(r"[a-z]+:[0-9a-f]{32}", node):
            return None
        if isinstance(node, dict):
            if node.get("name") == "wards" and node.get("type") == "choropleth":
                return None
            return {k: strip(v) for k, v in node.items() if k != "geojson"}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    flat = json.dumps(strip(data), ensure_ascii=False)
    found = [
        needle
        for needle in (
            site.names[site.other],
            "SECRETCAM",
            "cam-secretcam",
            "SECRETALERT",
            "SECRETINC",
            "SECRETAPP",
        )
        if needle in flat
    ]
    for pattern in (
        r"(?<![\d.,])4[.,]?242[.,]4",  # the KPI values, raw or formatted
        r"(?<![\d.,])98[78][.,]?6?",  # the water level, raw or formatted ("988 cm")
        rf"(?<![\d.]){re.escape(site.other)}(?!\d)",
    ):
        if re.search(pattern, flat):
            found.append(pattern)
    return found


def _parse_output(key: str) -> list[tuple[str, str]]:
    parts = key.strip(".").split("...") if key.startswith("..") else [key]
    return [tuple(p.rsplit(".", 1)) for p in parts]  # type: ignore[misc]


def _bodies(key: str, spec: dict[str, Any], other: str) -> Iterator[dict[str, Any]]:
    outs = _parse_output(key)
    base = {
        "output": key,
        "outputs": [{"id": i, "property": p} for i, p in outs]
        if key.startswith("..")
        else {"id": outs[0][0], "property": outs[0][1]},
    }
    values: list[Any] = [
        other,
        [other],
        f"/ward/{other}",
        {"view": "map", "period": 20, "ward": other, "wards": [other]},
        [{"value": other}],
        # and no code at all: a callback must not hand out the city's wards on its own
        # (the old /wall did); the wall's config store for each of its views
        None,
        *({"view": v, "period": 20} for v in VIEWS),
    ]
    for value in values:
        for vary in ("all", "one"):

            def dep(
                d: dict[str, Any], first: bool, v: Any = value, vary: str = vary
            ) -> dict[str, Any]:
                val = v if (vary == "all" or first) else None
                if d["property"] in ("n_intervals", "n_clicks") and not isinstance(val, int):
                    val = 1
                if isinstance(val, dict) and d["property"] != "data":
                    val = None
                return {"id": d["id"], "property": d["property"], "value": val}

            inputs = [dep(d, i == 0) for i, d in enumerate(spec["inputs"])]
            state = [dep(d, True) for d in spec.get("state", [])]
            yield {
                **base,
                "inputs": inputs,
                "state": state,
                "changedPropIds": [f"{d['id']}.{d['property']}" for d in spec["inputs"][:1]],
            }


def test_every_callback_replayed_by_a_leader_with_another_wards_codes(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    leader = site.client("ward_leader")
    leader.get("/")  # Dash registers the pages' callbacks on the first request
    callbacks = dict(site.app.callback_map)
    assert len(callbacks) >= 10 and any("wall-body" in k for k in callbacks)
    answered = {}
    with caplog.at_level(logging.ERROR):
        for key, spec in callbacks.items():
            for body in _bodies(key, spec, site.other):
                r = leader.post(CALLBACK, json=body, headers=ORIGIN)
                assert r.status_code in (200, 204, 400, 403), (key, body, r.status_code)
                answered.setdefault(key, set()).add(r.status_code)
                if r.status_code == 200:
                    leaks = _leaks(r.get_data(as_text=True), site)
                    assert not leaks, (key, body["inputs"], leaks)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # the leader's own data callbacks did answer (so the check above looked at real output)
    assert any(200 in v for k, v in answered.items() if "wall-body" in k)
    # and the same replay as an admin does find the other ward's data (the check can fail)
    admin = site.client("admin")
    found = []
    for key, spec in callbacks.items():
        for body in _bodies(key, spec, site.other):
            r = admin.post(CALLBACK, json=body, headers=ORIGIN)
            if r.status_code == 200:
                found += _leaks(r.get_data(as_text=True), site)
    assert {"SECRETCAM", "SECRETALERT", "SECRETINC", site.names[site.other]} <= set(found)


# --- sign-in redirect, Origin ----------------------------------------------------------------


@pytest.mark.parametrize(
    "nxt",
    ["/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example", "//evil.example",
     "/\\evil.example", "https://evil.example", " //evil.example", "/%09/evil.example"],
)  # fmt: skip
def test_no_open_redirect_after_sign_in(site: Site, nxt: str) -> None:
    c = site.app.server.test_client()
    page = c.get("/login", query_string={"next": nxt})
    assert page.status_code == 200
    assert "evil.example" not in page.get_data(as_text=True)
    r = c.post(
        "/login",
        data={"username": "analyst", "password": PASSWORD, "next": nxt},
        headers=ORIGIN,
    )
    assert r.status_code == 302
    assert r.headers["Location"] == "/", r.headers["Location"]
    # the raw query string of the report: /login?next=/%09/evil.example
    raw = c.get("/login?next=/%09/evil.example")
    assert raw.status_code == 200 and "evil.example" not in raw.get_data(as_text=True)


def test_local_next_still_works(site: Site) -> None:
    c = site.app.server.test_client()
    r = c.get("/applications?days=7&x=1")
    assert r.status_code == 302 and r.headers["Location"].startswith("/login?next=")
    r = c.post(
        "/login",
        data={"username": "analyst", "password": PASSWORD, "next": "/applications?days=7"},
        headers=ORIGIN,
    )
    assert r.headers["Location"] == "/applications?days=7"


def test_origin_must_match_scheme_host_and_port(site: Site) -> None:
    c = site.client("admin")
    body = wall_body("alerts")
    for origin in ("https://localhost", "http://localhost:8443", "http://evil.example", "null",
                   "http://localhost.evil.example"):  # fmt: skip
        r = c.post(CALLBACK, json=body, headers={"Origin": origin})
        assert r.status_code == 403, origin
    assert c.post(CALLBACK, json=body, headers={"Origin": "http://localhost"}).status_code == 200
    assert c.post(CALLBACK, json=body, headers={"Origin": "http://localhost:80"}).status_code == 200
    # behind a proxy the site is reached as IOC_PUBLIC_URL: that origin is accepted
    config = site.app.server.config
    before = config["IOC_SETTINGS"]
    config["IOC_SETTINGS"] = before.model_copy(update={"public_url": "https://ioc.danang.example"})
    try:
        ok = c.post(CALLBACK, json=body, headers={"Origin": "https://ioc.danang.example"})
        assert ok.status_code == 200
        bad = c.post(CALLBACK, json=body, headers={"Origin": "http://ioc.danang.example"})
        assert bad.status_code == 403
    finally:
        config["IOC_SETTINGS"] = before
    # sign-in form posts are checked the same way
    r = site.app.server.test_client().post(
        "/login",
        data={"username": "admin", "password": PASSWORD},
        headers={"Origin": "https://localhost"},
    )
    assert r.status_code == 403


# --- crafted input ---------------------------------------------------------------------------


def _deep(n: int) -> str:
    return "[" * n + "]" * n


def test_crafted_input_is_refused_not_a_server_error(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    admin, leader = site.client("admin"), site.client("analyst")
    alerts_ward = {
        "output": "..alerts-table.data...alerts-table.selected_rows...alerts-count.children..",
        "outputs": [
            {"id": "alerts-table", "property": "data"},
            {"id": "alerts-table", "property": "selected_rows"},
            {"id": "alerts-count", "property": "children"},
        ],
        "inputs": [
            {"id": "alerts-interval", "property": "n_intervals", "value": 1},
            {"id": "alerts-state", "property": "value", "value": ["open"]},
            {"id": "alerts-sev", "property": "value", "value": []},
            {"id": "alerts-ward", "property": "value", "value": None},
            {"id": "alerts-version", "property": "data", "value": 0},
        ],
        "changedPropIds": ["alerts-ward.value"],
    }

    def with_ward(value: Any) -> dict[str, Any]:
        b = json.loads(json.dumps(alerts_ward))
        b["inputs"][3]["value"] = value
        return b

    nested: Any = site.other
    for _ in range(40):
        nested = [nested]
    pages = {
        "output": ".._pages_content.children..._pages_store.data..",
        "outputs": [
            {"id": "_pages_content", "property": "children"},
            {"id": "_pages_store", "property": "data"},
        ],
        "inputs": [
            {"id": "_pages_location", "property": "pathname", "value": "ward/" + site.other},
            {"id": "_pages_location", "property": "search", "value": ""},
        ],
        "changedPropIds": ["_pages_location.pathname"],
    }
    bad_period = wall_body("map")
    bad_period["state"][0]["value"] = {"view": None, "period": "abc"}
    many = dict(wall_body("map"))
    many["outputs"] = [{"id": f"wall-{i}", "property": "children"} for i in range(300_000)]
    cases: list[tuple[str, Any, str | bytes]] = [
        ("wall period not a number", admin, json.dumps(bad_period)),
        ("ward filter nested 40 deep", admin, json.dumps(with_ward(nested))),
        ("ward filter nested 40 deep (leader)", leader, json.dumps(with_ward(nested))),
        ("NUL in a ward filter", admin, json.dumps(with_ward(["2019\x005"]))),
        ("pathname without a /", admin, json.dumps(pages)),
        ("JSON nested 200,000 deep", admin, _deep(200_000)),
        ("300,000 output ids", admin, json.dumps(many)),
        ("not JSON", admin, b"{not json"),
    ]
    with caplog.at_level(logging.WARNING):
        for name, client, data in cases:
            r = client.post(
                CALLBACK,
                data=data,
                headers={**ORIGIN, "Content-Type": "application/json"},
            )
            assert r.status_code in (400, 403, 413), (name, r.status_code, r.data[:300])
        for path in ("/export/job/99999999999999999999999", "/export/report/1" + "0" * 30):
            assert admin.get(path).status_code in (400, 404), path
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage()[:200] for r in errors]


# --- headers, /metrics, /logout --------------------------------------------------------------


def test_pages_carry_a_content_security_policy(site: Site) -> None:
    c = site.client("admin")
    for path in ("/", "/wall", f"/ward/{site.own}", "/login", "/admin/users", "/logout"):
        r = c.get(path)
        assert r.status_code == 200, path
        csp = r.headers.get("Content-Security-Policy", "")
        assert "default-src 'self'" in csp and "object-src 'none'" in csp, path
        assert "'unsafe-eval'" not in csp and "script-src 'self'" in csp, path
        assert "frame-ancestors 'self'" in csp
        # every inline script of the page is allowed by its hash, nothing else inline
        html_text = r.get_data(as_text=True)
        n_inline = sum(
            1
            for attrs, _ in re.findall(r"<script\b([^>]*)>(.*?)</script>", html_text, re.S)
            if "src=" not in attrs and "application/json" not in attrs
        )
        assert csp.count("'sha256-") <= n_inline, path


def test_metrics_token_only_in_the_header(site: Site) -> None:
    c = site.app.server.test_client()
    token = "metrics-token-0123456789"
    assert c.get(f"/metrics?token={token}").status_code == 401
    assert c.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert c.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_overview_map_of_a_leader_ranks_among_every_ward(site: Site) -> None:
    """The overview map's hover gives a leader's ward its rank among all wards (r/n, as the
    admin sees it), not r/1 among the leader's own wards."""
    outs = [
        ("ov-tiles", "children"),
        ("ov-map", "figure"),
        ("ov-ranking", "children"),
        ("ov-best-worst", "children"),
        ("ov-alerts", "children"),
        ("ov-updated", "children"),
    ]
    body = {
        "output": ".." + "...".join(f"{a}.{b}" for a, b in outs) + "..",
        "outputs": [{"id": a, "property": b} for a, b in outs],
        "inputs": [
            {"id": "ov-interval", "property": "n_intervals", "value": 1},
            {"id": "ov-kpi", "property": "value", "value": "on_time_rate"},
        ],
        "changedPropIds": ["ov-kpi.value"],
    }

    def hover(role: str) -> dict[str, tuple[Any, ...]]:
        r = site.client(role).post(CALLBACK, json=body, headers=ORIGIN)
        assert r.status_code == 200, r.data[:300]
        fig = json.loads(r.data)["response"]["ov-map"]["figure"]
        out: dict[str, tuple[Any, ...]] = {}
        for tr in fig["data"]:
            if tr.get("name") == "wards":  # the grey outline of every ward: geography
                continue
            if tr.get("customdata") and tr.get("locations"):
                keys = _array(tr["locations"])
                out.update(zip(keys, map(tuple, tr["customdata"]), strict=False))
        return out

    admin, leader = hover("admin"), hover("ward_leader")
    assert set(leader) == {site.own}
    assert leader[site.own] == admin[site.own]
