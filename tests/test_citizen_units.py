"""Handling units (issue 11, item 3): the members of a report's handling unit see the reporter's
contact on /reports, everyone else sees it masked — decided on the server (the list callback is
replayed as a member of the unit, of another unit, a ward leader and an admin), downloads always
masked, public tracking never; units of users from `ioc users add --unit` and /admin/users,
unknown units refused with a one-line error naming them."""

from __future__ import annotations

import datetime as dt
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from ioc.auth import User
from ioc.citizen.events import Rules, event_from_mapping
from ioc.citizen.store import store_events
from ioc.citizen.units import Revealer, check_units
from ioc.config import Config
from ioc.config.categories import CategoriesFile
from ioc.db import connect
from ioc.errors import UsageError
from ioc.settings import Settings
from ioc.users import add_user, list_users

sys.path.insert(0, str(Path(__file__).resolve().parent / "browser"))
from dash_fixtures import PASSWORD
from dash_seed import add_users

pytestmark = pytest.mark.filterwarnings(
    r"ignore:\s*The dash_table.DataTable will be removed:DeprecationWarning"
)
ORIGIN = {"Origin": "http://localhost"}
PHONES = {
    "A-FLOOD": "0905 111 001",  # flooding in ward a: Ban Chỉ huy PCTT&TKCN (category default)
    "A-ORDER": "0905 111 002",  # urban order in ward a: "UBND <a>" (category default)
    "B-ORDER": "0905 111 003",  # urban order in ward b: "UBND <b>"
    "B-TRAFFIC": "0905 111 004",  # traffic in ward b, unit given by the sender: "CSGT" (alias)
}


def masked(phone: str) -> str:
    return phone[:2] + "*" * (len(phone) - 4) + phone[-2:]


# -- pure: who handles what ------------------------------------------------------------------


def test_revealer_matches_units_by_id_name_alias_and_ward(config: Config) -> None:
    cats = config.report_categories()
    names = {w.code: w.name for w in config.wards}
    a, b = sorted(config.ward_codes)[:2]
    csgt = User("c", "operator", units=frozenset({"csgt"}))
    reveal = Revealer(csgt, cats, names)
    for text in ("Cảnh sát giao thông", "  cảnh sát   GIAO thông ", "CSGT", "csgt"):
        assert reveal(a, text) and reveal(b, text), text
    assert not reveal(a, "Ban Chỉ huy PCTT&TKCN") and not reveal(a, None)
    # a ward's People's Committee: the members granted that ward, for that ward's name only
    ubnd_a = User("u", "ward_leader", wards=frozenset({a}), units=frozenset({"ubnd_phuong"}))
    reveal = Revealer(ubnd_a, cats, names)
    assert reveal(a, f"UBND {names[a]}")
    assert not reveal(a, f"UBND {names[b]}")  # another ward's committee
    assert not reveal(b, f"UBND {names[b]}")  # a ward they may not see
    # no unit: nothing; admins: everything; a ward leader outside their wards: nothing
    assert not Revealer(User("o", "operator"), cats, names).anyone
    admin = Revealer(User("x", "admin"), cats, names)
    assert admin(b, None) and admin(a, "anything")


def test_units_in_config_are_checked(config: Config) -> None:
    raw = config.report_categories().model_dump()
    raw["categories"]["flooding"]["unit"] = "Ban PCTT quận cũ"
    with pytest.raises(ValidationError) as exc:
        CategoriesFile.model_validate(raw)
    assert "categories.flooding.unit: 'Ban PCTT quận cũ' is not a unit" in str(exc.value)
    raw["categories"]["flooding"]["unit"] = "pctt"  # a unit id is fine too
    cats = CategoriesFile.model_validate(raw)
    rules = Rules(cats, Rules.from_config(config).calendar, {"1": "Phường X"})
    assert rules.default_unit("flooding", "1") == "Ban Chỉ huy PCTT&TKCN"
    assert rules.default_unit("urban_order", "1") == "UBND Phường X"
    assert check_units(["pctt", "csgt", "pctt"], cats.units) == ["csgt", "pctt"]
    with pytest.raises(UsageError, match="unknown handling unit 'nope'"):
        check_units(["csgt", "nope"], cats.units)


# -- ioc users add --unit, ioc users list ----------------------------------------------------


def _ioc(args: list[str], db: str, capsys: Any, monkeypatch: Any, stdin: str = "") -> Any:
    """``ioc ARGS`` in this process (as the console script runs it): (exit code, out, err)."""
    from ioc.cli import main

    monkeypatch.setenv("IOC_DATABASE_URL", db)
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(args)
    got = capsys.readouterr()
    return code, got.out, got.err


def test_users_cli_units(fresh_db_url: str, config: Config, capsys: Any, monkeypatch: Any) -> None:
    a = sorted(config.ward_codes)[0]
    monkeypatch.delenv("IOC_REDIS_URL", raising=False)
    root = Path(__file__).resolve().parent.parent
    monkeypatch.setenv("IOC_CONFIG_DIR", str(root / "config"))
    code, out, err = _ioc(
        ["users", "add", "hoa", "--role", "ward_leader", "--ward", a, "--unit", "ubnd_phuong",
         "--unit", "pctt"],
        fresh_db_url, capsys, monkeypatch, "hoa-secret-pass-1\n",
    )  # fmt: skip
    assert code == 0, err
    assert "handling unit(s) pctt, ubnd_phuong" in out
    code, _, err = _ioc(
        ["users", "add", "an", "--role", "analyst"], fresh_db_url, capsys, monkeypatch,
        "analyst-pass-22\n",
    )  # fmt: skip
    assert code == 0, err
    code, _, err = _ioc(
        ["users", "add", "x", "--role", "operator", "--unit", "csgt", "cong_an_xyz"],
        fresh_db_url, capsys, monkeypatch, "operator-pass-22\n",
    )  # fmt: skip
    assert code != 0
    assert err.count("\n") == 1 and "unknown handling unit 'cong_an_xyz'" in err
    code, out, err = _ioc(["users", "list"], fresh_db_url, capsys, monkeypatch)
    assert code == 0, err
    # the contract's five columns unchanged; members of units get a sixth
    assert out.strip().splitlines() == [
        "an\tanalyst\t-\t-\tenabled",
        f"hoa\tward_leader\t{a}\t-\tenabled\tunits=pctt,ubnd_phuong",
    ]


# -- /reports on the server -------------------------------------------------------------------


@pytest.fixture(scope="module")
def site_db(pg_server_url: str, config: Config) -> Iterator[str]:
    """One database for the module's server tests (they change only the analyst's units,
    in the last test)."""
    from conftest import create_database, drop_database, init_schema

    url = create_database(pg_server_url)
    init_schema(url, config)
    yield url
    drop_database(pg_server_url, url)


@pytest.fixture(scope="module")
def site(config: Config, site_db: str, tmp_path_factory: Any) -> dict[str, Any]:
    from dashboards.app import create_app

    fresh_db_url = site_db
    tmp_path = tmp_path_factory.mktemp("units")

    a, b = sorted(config.ward_codes)[:2]  # the seeded ward leader has a
    rules = Rules.from_config(config)
    now = dt.datetime.now(dt.UTC)
    items = [
        ("A-FLOOD", a, "flooding", {}),
        ("A-ORDER", a, "urban_order", {}),
        ("B-ORDER", b, "urban_order", {}),
        ("B-TRAFFIC", b, "traffic", {"unit": "CSGT"}),
    ]
    events = [
        event_from_mapping(
            {"id": rid, "event": "received", "ts": (now - dt.timedelta(hours=2)).isoformat(),
             "category": cat, "summary": f"Phản ánh {rid}", "contact": PHONES[rid], **extra},
            ward,
            rules,
        )
        for rid, ward, cat, extra in items
    ]  # fmt: skip
    conn = connect(fresh_db_url)
    try:
        with conn.cursor() as cur:
            store_events(cur, events, rules, door="api")
        conn.commit()
        add_users(conn, config, PASSWORD)
        known = list(config.report_categories().units)
        for name, role, wards, units in (
            ("pctt_op", "operator", [], ["pctt"]),
            ("csgt_op", "operator", [], ["csgt"]),
            ("ubnd_a", "ward_leader", [a], ["ubnd_phuong"]),
        ):
            add_user(conn, name, PASSWORD, role, wards, units=units, known_units=known)
    finally:
        conn.close()
    settings = Settings(secret_key="s" * 40, var_dir=tmp_path / "var")
    app = create_app(config, fresh_db_url, settings)
    app.server.config["IOC_STATE"].cache.ttl = 0  # users' units read at once
    return {"app": app, "a": a, "b": b, "db": fresh_db_url}


def client_for(site: dict[str, Any], user: str | None) -> Any:
    c = site["app"].server.test_client()
    if user:
        form = {"username": user, "password": PASSWORD, "next": "/"}
        assert c.post("/login", data=form, headers=ORIGIN).status_code == 302
    return c


def list_body(wards: list[str] | None = None) -> dict[str, Any]:
    outs = [("rep-table", "data"), ("rep-table", "selected_rows"), ("rep-count", "children")]
    return {
        "output": ".." + "...".join(f"{x}.{y}" for x, y in outs) + "..",
        "outputs": [{"id": x, "property": y} for x, y in outs],
        "inputs": [
            {"id": "rep-interval", "property": "n_intervals", "value": 1},
            {"id": "rep-ward", "property": "value", "value": wards},
            {"id": "rep-category", "property": "value", "value": None},
            {"id": "rep-status", "property": "value", "value": None},
            {"id": "rep-sla", "property": "value", "value": None},
            {"id": "rep-version", "property": "data", "value": 0},
        ],
        "changedPropIds": ["rep-interval.n_intervals"],
    }


def download_body() -> dict[str, Any]:
    return {
        "output": "rep-download.data",
        "outputs": {"id": "rep-download", "property": "data"},
        "inputs": [{"id": "rep-csv", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["rep-csv.n_clicks"],
        "state": [
            {"id": f"rep-{k}", "property": "value", "value": None}
            for k in ("ward", "category", "status", "sla")
        ],
    }


def contacts_seen(site: dict[str, Any], user: str) -> tuple[dict[str, str], str]:
    resp = client_for(site, user).post("/_dash-update-component", json=list_body(), headers=ORIGIN)
    assert resp.status_code == 200, resp.status_code
    raw = resp.get_data(as_text=True)
    rows = json.loads(raw)["response"]["rep-table"]["data"]
    return {r["code"]: r["contact"] for r in rows}, raw


def test_contact_only_for_the_handling_unit(site: dict[str, Any]) -> None:
    full = {rid: phone for rid, phone in PHONES.items()}
    hidden = {rid: masked(phone) for rid, phone in PHONES.items()}
    expected = {
        # the unit of A-FLOOD (category default) sees its contact, no other
        "pctt_op": {**hidden, "A-FLOOD": full["A-FLOOD"]},
        # another unit: the report the sender gave to "CSGT" (an alias of csgt), no other
        "csgt_op": {**hidden, "B-TRAFFIC": full["B-TRAFFIC"]},
        # the People's Committee of ward a: its own ward's urban-order report only
        "ubnd_a": {"A-FLOOD": hidden["A-FLOOD"], "A-ORDER": full["A-ORDER"]},
        # a ward leader of no unit: masked everywhere
        "ward_leader": {"A-FLOOD": hidden["A-FLOOD"], "A-ORDER": hidden["A-ORDER"]},
        "analyst": hidden,
        "admin": full,
    }
    for user, want in expected.items():
        got, raw = contacts_seen(site, user)
        assert got == want, user
        for rid, phone in PHONES.items():  # not anywhere else in the response either
            assert (phone in raw) == (want.get(rid) == phone), (user, rid)


def test_downloads_stay_masked_for_the_unit(site: dict[str, Any]) -> None:
    resp = client_for(site, "pctt_op").post(
        "/_dash-update-component", json=download_body(), headers=ORIGIN
    )
    assert resp.status_code == 200
    content = json.loads(resp.data)["response"]["rep-download"]["data"]["content"]
    assert "A-FLOOD" in content and masked(PHONES["A-FLOOD"]) in content
    assert not any(phone in content for phone in PHONES.values())


def test_tracking_never_shows_the_contact_to_anyone(site: dict[str, Any]) -> None:
    c = client_for(site, "pctt_op")  # signed in as the handling unit: still public data only
    for path in ("/api/v1/track/A-FLOOD", "/track?id=A-FLOOD"):
        resp = c.get(path)
        assert resp.status_code == 200
        assert PHONES["A-FLOOD"] not in resp.get_data(as_text=True)
        assert masked(PHONES["A-FLOOD"]) not in resp.get_data(as_text=True)


def test_admin_page_edits_units(site: dict[str, Any]) -> None:
    admin = client_for(site, "admin")
    page = admin.get("/admin/users").get_data(as_text=True)
    assert "ubnd_phuong" in page and "<datalist id='unit-ids'>" in page
    form = {"action": "set_role", "name": "analyst", "role": "analyst", "wards": "",
            "units": "pctt csgt"}  # fmt: skip
    resp = admin.post("/admin/users", data=form, headers=ORIGIN)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    conn = connect(site["db"])
    try:
        units = {u.name: u.units for u in list_users(conn)}
    finally:
        conn.close()
    assert units["analyst"] == ["csgt", "pctt"]
    got, _ = contacts_seen(site, "analyst")  # the analyst now handles pctt and csgt reports
    assert got["A-FLOOD"] == PHONES["A-FLOOD"] and got["B-TRAFFIC"] == PHONES["B-TRAFFIC"]
    assert got["A-ORDER"] == masked(PHONES["A-ORDER"])
    bad = admin.post("/admin/users", data={**form, "units": "pctt bogus_unit"}, headers=ORIGIN)
    assert bad.status_code == 400 and "unknown handling unit &#x27;bogus_unit&#x27;" in (
        bad.get_data(as_text=True)
    )
    # a form without the field (older page) keeps the units
    del form["units"]
    assert admin.post("/admin/users", data=form, headers=ORIGIN).status_code == 200
    conn = connect(site["db"])
    try:
        assert {u.name: u.units for u in list_users(conn)}["analyst"] == ["csgt", "pctt"]
    finally:
        conn.close()
    # not an admin: refused
    form["units"] = "pctt"
    assert client_for(site, "operator").post(
        "/admin/users", data=form, headers=ORIGIN
    ).status_code in (403, 302)
