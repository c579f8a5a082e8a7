"""/incidents, /incidents/{id} and the wall's incidents view in headless Chromium against
``ioc serve`` on real PostgreSQL; every incident callback replayed as a ward leader with
another ward's ids and codes."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dash_fixtures import (
    KIOSK_TOKEN,
    SCREENSHOTS,
    Server,
    login,
    login_cookie,
    make_driver,
    post_json,
    served,
    set_viewport,
    severe_logs,
    wait_for,
)
from incident_seed import seed_incidents

from ioc.db import connect
from ioc.incidents import core

pytestmark = pytest.mark.browser

ACTION_BUTTONS = (
    "inc-d-assign",
    "inc-d-ack",
    "inc-d-start",
    "inc-d-resolve",
    "inc-d-close",
    "inc-d-reject",
    "inc-d-reopen",
    "inc-d-comment",
    "inc-d-link",
    "inc-d-merge",
    "inc-d-split",
)


@pytest.fixture(scope="module")
def inc_server(
    pg_server_url: str, config: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("inc")
    with served(
        pg_server_url,
        config,
        tmp,
        days=2,
        devices_per_ward=2,
        readings_hours=2,
        hourly_hours=2,
    ) as server:
        own = server.facts["grants"]["ward_leader"][0]
        other = sorted(config.ward_codes)[1]
        conn = connect(server.db_url)
        try:
            server.facts["inc"] = seed_incidents(conn, config, own, other)
        finally:
            conn.close()
        server.facts.update(own=own, other=other)
        yield server


def _has(element_id: str) -> Any:
    return lambda d: bool(d.find_elements("id", element_id))


def _idle(driver: Any) -> bool:
    return bool(
        driver.execute_script(
            "return document.querySelectorAll('[data-dash-is-loading=\"true\"]').length === 0"
        )
    )


def _shot(driver: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    driver.save_screenshot(str(path))
    return path


def _trace_types(driver: Any, graph_id: str) -> list[str]:
    return list(
        driver.execute_script(
            "var g = document.getElementById(arguments[0]);"
            "var p = g && g.querySelector('.js-plotly-plot');"
            "return p && p.data ? p.data.map(t => t.type) : [];",
            graph_id,
        )
    )


def _table_rows(driver: Any) -> int:
    return len(
        driver.find_elements("css selector", "#inc-table tbody tr td[data-dash-column='title']")
    )


# --------------------------------------------------------------------------- pages


def test_queue_and_incident_page_at_1920_and_4k(inc_server: Server) -> None:
    base = inc_server.url
    ids = inc_server.facts["inc"]
    driver = make_driver(size=(1920, 1080))
    try:
        login(driver, base, "operator")
        driver.get(base + "/incidents")
        # the six open incidents of both wards, the most urgent first
        wait_for(driver, lambda d: _table_rows(d) == 6, 30)
        text = driver.find_element("id", "inc-table").text
        for label in ("Quá hạn", "Sắp đến hạn", "Trong hạn"):
            assert label in text, label
        assert "quá " in text and "còn " in text  # countdowns both ways
        assert "Cấp 1" in text  # escalated
        assert "hiện 6 / 6 sự cố" in driver.find_element("id", "inc-count").text
        wait_for(driver, _idle, 10)
        _shot(driver, "incidents_1920x1080.png")
        assert severe_logs(driver) == []
        # the state filter: resolved/closed too -> the closed one shows as met
        driver.find_element("css selector", "#inc-status input[value='closed']").click()
        wait_for(driver, lambda d: _table_rows(d) == 7, 15)
        assert "Xong đúng hạn" in driver.find_element("id", "inc-table").text
        # the SLA filter: only the overdue ones
        driver.find_element("css selector", "#inc-sla input[value='breached']").click()
        wait_for(driver, lambda d: _table_rows(d) == 3, 15)
        # in English
        driver.get(base + "/incidents?lang=en")
        wait_for(driver, lambda d: _table_rows(d) == 6, 30)
        text = driver.find_element("id", "inc-table").text
        assert "Overdue" in text and "Due soon" in text and " left" in text and " late" in text
        assert "Incident queue" in driver.find_element("tag name", "h1").text
        driver.get(base + "/incidents?lang=vi")
        set_viewport(driver, 3840, 2160)
        driver.get(base + "/incidents")
        wait_for(driver, lambda d: _table_rows(d) == 6, 30)
        wait_for(driver, _idle, 10)
        _shot(driver, "incidents_3840x2160.png")
        # one incident: head, SOP with the ticked step, timeline, map, links
        for size, name in (((1920, 1080), "1920x1080"), ((3840, 2160), "3840x2160")):
            set_viewport(driver, *size)
            driver.get(base + f"/incidents/{ids['flood_breached']}")
            wait_for(driver, _has("inc-d-events"), 30)
            wait_for(driver, _has("inc-step-verify"), 30)
            wait_for(driver, lambda d: "Cấp 1" in d.find_element("id", "inc-d-level").text, 20)
            wait_for(driver, _idle, 10)
            head = driver.find_element("id", "inc-d-head").text
            assert "Quá hạn" in head and "Mới" in head
            events = driver.find_element("id", "inc-d-events").text
            assert "chuyển cấp" in events and "quá hạn" in events and "mở sự cố" in events
            fits = "const u = document.getElementById('inc-d-events');"
            assert driver.execute_script(fits + "return u.scrollHeight <= u.clientHeight")
            links = driver.find_element("id", "inc-d-split-sel").text
            assert "Mực nước vượt ngưỡng ngập" in links
            wait_for(driver, lambda d: _trace_types(d, "inc-d-map") == ["choropleth", "scattergeo"])
            wait_for(driver, lambda d: d.find_elements("css selector", "#inc-d-map .point"), 10)
            time.sleep(0.5)
            _shot(driver, f"incident_{name}.png")
        assert severe_logs(driver) == []
    finally:
        driver.quit()


def test_overview_and_ward_page_show_incident_figures(inc_server: Server) -> None:
    base = inc_server.url
    own = inc_server.facts["own"]
    driver = make_driver(size=(1920, 1080))
    try:
        login(driver, base, "operator")
        driver.get(base + "/")
        wait_for(driver, _has("inc-ov-open"), 30)
        assert driver.find_element("id", "inc-ov-open").text.endswith("6")
        assert driver.find_element("id", "inc-ov-breached").text.endswith("3")
        card = driver.find_element("id", "inc-ov-summary").text
        assert "Đèn tín hiệu hỏng" in card  # the oldest overdue, linked
        driver.get(base + f"/ward/{own}")
        wait_for(driver, _has("inc-ward-open"), 30)
        assert driver.find_element("id", "inc-ward-open").text.endswith("4")
        driver.execute_script(
            "document.getElementById('inc-ward-summary').scrollIntoView({block: 'center'})"
        )
        wait_for(driver, _idle, 10)
        _shot(driver, "ward_incidents_1920x1080.png")
        assert severe_logs(driver) == []
    finally:
        driver.quit()


def test_wall_incidents_view_at_1920_and_4k(inc_server: Server) -> None:
    base = inc_server.url
    driver = make_driver(size=(1920, 1080))
    try:
        driver.get(base + f"/wall?token={KIOSK_TOKEN}&view=incidents")
        wait_for(driver, _has("wall-inc-open"), 30)
        wait_for(driver, lambda d: d.find_elements("css selector", "#wall-inc-map .point"), 20)
        time.sleep(1.5)
        assert "6" in driver.find_element("id", "wall-inc-open").text
        assert "3" in driver.find_element("id", "wall-inc-breached").text
        oldest = driver.find_element("id", "wall-inc-oldest").text
        assert "Đèn tín hiệu hỏng" in oldest  # two weeks overdue
        # pins in three SLA colours, breached on top
        traces = driver.execute_script(
            "return document.getElementById('wall-inc-map').querySelector('.js-plotly-plot')"
            ".data.filter(t => t.type === 'scattergeo').map(t => t.marker.color)"
        )
        assert traces == ["#1a9850", "#f0a202", "#d73027"]
        size = driver.execute_script(
            "return parseFloat(getComputedStyle(document.querySelector('.tile-value')).fontSize)"
        )
        assert size >= 40  # readable at 4 m
        _shot(driver, "wall_incidents_1920x1080.png")
        set_viewport(driver, 3840, 2160)
        driver.get(base + "/wall?view=incidents")
        wait_for(driver, _has("wall-inc-open"), 30)
        time.sleep(2.0)
        size4k = driver.execute_script(
            "return parseFloat(getComputedStyle(document.querySelector('.tile-value')).fontSize)"
        )
        assert size4k >= 2 * size - 1
        _shot(driver, "wall_incidents_3840x2160.png")
        assert severe_logs(driver) == []
    finally:
        driver.quit()


def test_operator_works_an_incident_in_the_browser(inc_server: Server) -> None:
    base = inc_server.url
    iid = inc_server.facts["inc"]["flood_ok"]
    driver = make_driver(size=(1600, 1000))
    try:
        login(driver, base, "operator")
        driver.get(base + f"/incidents/{iid}")
        wait_for(driver, _has("inc-step-barrier"), 30)
        # 'barrier' needs a note: refused without one
        btn = "#inc-step-barrier button"
        driver.find_element("css selector", btn).click()
        wait_for(driver, lambda d: "cần ghi chú" in d.find_element("id", "inc-d-msg").text, 40)
        driver.find_element("css selector", "#inc-step-barrier input").send_keys("Rào 2 đầu đường")
        driver.find_element("css selector", btn).click()
        wait_for(
            driver, lambda d: "✔ operator" in d.find_element("id", "inc-step-barrier").text, 40
        )
        # resolving before the SOP is done is refused
        driver.find_element("id", "inc-d-text").send_keys("Đã bơm")
        driver.find_element("id", "inc-d-resolve").click()
        wait_for(driver, lambda d: "Chưa xong" in d.find_element("id", "inc-d-msg").text, 40)
        # a comment lands in the timeline
        driver.find_element("id", "inc-d-comment").click()
        wait_for(driver, lambda d: "“Đã bơm”" in d.find_element("id", "inc-d-events").text, 40)
        assert severe_logs(driver) == []
    finally:
        driver.quit()
    conn = connect(inc_server.db_url)
    try:
        done = core.steps_done(conn, iid)
        assert (
            done["barrier"]["note"] == "Rào 2 đầu đường"
            and done["barrier"]["done_by"] == "operator"
        )
        trail = core.events(conn, iid)
        assert trail[-1]["action"] == "comment" and trail[-1]["source"] == "web"
        inc = core.get(conn, iid)
        assert inc is not None and inc["status"] == "in_progress"
    finally:
        conn.close()


# --------------------------------------------------------------------------- replay


def _body(
    outs: list[tuple[str, str]], inputs: list[Any], state: list[Any], changed: str
) -> dict[str, Any]:
    if len(outs) == 1:
        output = f"{outs[0][0]}.{outs[0][1]}"
    else:
        output = ".." + "...".join(f"{i}.{p}" for i, p in outs) + ".."
    return {
        "output": output,
        "outputs": [{"id": i, "property": p} for i, p in outs]
        if len(outs) > 1
        else {"id": outs[0][0], "property": outs[0][1]},
        "inputs": inputs,
        "state": state,
        "changedPropIds": [changed],
    }


def _v(cid: Any, prop: str, value: Any) -> dict[str, Any]:
    return {"id": cid, "property": prop, "value": value}


def queue_body(wards: list[str] | None) -> dict[str, Any]:
    return _body(
        [("inc-table", "data"), ("inc-count", "children")],
        [
            _v("inc-interval", "n_intervals", 1),
            _v("inc-ward", "value", wards),
            _v("inc-category", "value", None),
            _v(
                "inc-status",
                "value",
                ["new", "assigned", "in_progress", "resolved", "closed", "rejected"],
            ),
            _v("inc-sla", "value", []),
            _v("inc-version", "data", 0),
        ],
        [],
        "inc-ward.value",
    )


def bulk_body(ids: list[int], assignee: str) -> dict[str, Any]:
    return _body(
        [("inc-msg", "children"), ("inc-version", "data")],
        [_v("inc-assign-btn", "n_clicks", 1)],
        [
            _v("inc-table", "selected_row_ids", ids),
            _v("inc-assignee", "value", assignee),
            _v("inc-version", "data", 0),
        ],
        "inc-assign-btn.n_clicks",
    )


def download_body(wards: list[str] | None) -> dict[str, Any]:
    return _body(
        [("inc-download", "data")],
        [_v("inc-download-btn", "n_clicks", 1)],
        [
            _v("inc-ward", "value", wards),
            _v("inc-category", "value", None),
            _v("inc-status", "value", ["new", "assigned", "in_progress"]),
            _v("inc-sla", "value", []),
        ],
        "inc-download-btn.n_clicks",
    )


def detail_body(iid: int) -> dict[str, Any]:
    return _body(
        [
            ("inc-d-head", "children"),
            ("inc-d-timeline", "children"),
            ("inc-d-links", "children"),
            ("inc-d-split-sel", "options"),
            ("inc-d-nearby", "children"),
        ],
        [_v("inc-d-interval", "n_intervals", 1), _v("inc-d-version", "data", 0)],
        [_v("inc-d-id", "data", iid)],
        "inc-d-interval.n_intervals",
    )


def sop_body(iid: int) -> dict[str, Any]:
    return _body(
        [("inc-d-sop", "children")],
        [_v("inc-d-version", "data", 1)],
        [_v("inc-d-id", "data", iid)],
        "inc-d-version.data",
    )


def act_body(
    iid: int,
    trigger: str,
    *,
    text: str = "Lý do thử",
    assignee: str | None = None,
    link_ref: str = "",
    merge_ids: str = "",
    split_sel: list[str] | None = None,
    step: str | None = None,
) -> dict[str, Any]:
    step_id = {"step": step or "verify", "type": "inc-step-btn"}
    text_id = {"step": step or "verify", "type": "inc-step-text"}
    inputs: list[Any] = [_v(b, "n_clicks", 1 if b == trigger else 0) for b in ACTION_BUTTONS]
    inputs.append([_v(step_id, "n_clicks", 1 if step else 0)])
    changed = (
        json.dumps(step_id, sort_keys=True, separators=(",", ":")) + ".n_clicks"
        if step
        else f"{trigger}.n_clicks"
    )
    return _body(
        [("inc-d-msg", "children"), ("inc-d-version", "data")],
        inputs,
        [
            _v("inc-d-id", "data", iid),
            _v("inc-d-version", "data", 0),
            _v("inc-d-text", "value", text),
            _v("inc-d-assignee", "value", assignee),
            _v("inc-d-link-ref", "value", link_ref),
            _v("inc-d-merge-ids", "value", merge_ids),
            _v("inc-d-split-sel", "value", split_sel or []),
            [_v(text_id, "value", "IMG_9.jpg")],
            [_v(text_id, "id", text_id)],
        ],
        changed,
    )


def create_body(ward: str | None, source_ref: str = "") -> dict[str, Any]:
    return _body(
        [("inc-new-msg", "children"), ("inc-new-go", "href")],
        [_v("inc-new-create", "n_clicks", 1)],
        [
            _v("inc-new-ward", "value", ward),
            _v("inc-new-category", "value", "waste"),
            _v("inc-new-severity", "value", "warning"),
            _v("inc-new-title", "value", "Thử tạo"),
            _v("inc-new-text", "value", ""),
            _v("inc-new-from", "value", source_ref),
        ],
        "inc-new-create.n_clicks",
    )


def ward_section_body(code: str) -> dict[str, Any]:
    return _body(
        [("inc-ward-summary", "children")],
        [_v("ward-interval", "n_intervals", 1)],
        [_v("ward-code", "data", code)],
        "ward-interval.n_intervals",
    )


def overview_section_body() -> dict[str, Any]:
    return _body(
        [("inc-ov-summary", "children")],
        [_v("ov-interval", "n_intervals", 1)],
        [],
        "ov-interval.n_intervals",
    )


def router_body(path: str) -> dict[str, Any]:
    return {
        "output": ".._pages_content.children..._pages_store.data..",
        "outputs": [
            {"id": "_pages_content", "property": "children"},
            {"id": "_pages_store", "property": "data"},
        ],
        "inputs": [
            {"id": "_pages_location", "property": "pathname", "value": path},
            {"id": "_pages_location", "property": "search", "value": ""},
        ],
        "changedPropIds": ["_pages_location.pathname"],
    }


def _trail_sizes(db_url: str) -> dict[int, tuple[int, str]]:
    conn = connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT i.id, (SELECT count(*) FROM incident_events e WHERE e.incident_id = i.id),"
                " i.status || ':' || coalesce(i.assignee, '') FROM incidents i"
            )
            return {int(r[0]): (int(r[1]), str(r[2])) for r in cur.fetchall()}
    finally:
        conn.close()


def test_ward_leader_replays_every_incident_callback_with_another_wards_ids(
    inc_server: Server, config: Any
) -> None:
    base = inc_server.url
    cb = base + "/_dash-update-component"
    f = inc_server.facts
    own, other, ids = f["own"], f["other"], f["inc"]
    theirs, mine = ids["other"], ids["flood_ok"]
    leader = login_cookie(base, "ward_leader")
    before = _trail_sizes(inc_server.db_url)

    def call(body: dict[str, Any], cookie: str = leader) -> tuple[int, Any]:
        status, text = post_json(cb, body, cookie, origin=base)
        return status, (json.loads(text) if status == 200 and text else text)

    # the queue: their own wards only; another ward's code is refused by the guard
    status, res = call(queue_body(None))
    assert status == 200
    rows = res["response"]["inc-table"]["data"]
    assert rows and {r["ward"] for r in rows} == {config.ward(own).name}
    assert theirs not in {r["id"] for r in rows}
    assert call(queue_body([other]))[0] == 403
    assert call(queue_body([own]))[0] == 200
    # the CSV download likewise
    assert call(download_body([other]))[0] == 403
    status, res = call(download_body(None))
    assert status == 200
    csv = res["response"]["inc-download"]["data"]["content"]
    assert "Rác tồn đọng chợ Cồn" not in csv and "Núi Thành" in csv
    # bulk assign of another ward's incident: nothing done
    status, res = call(bulk_body([theirs], own))
    assert status == 200 and "0" in json.dumps(res["response"]["inc-msg"], ensure_ascii=False)
    assert call(bulk_body([theirs], other))[0] == 403  # another ward's code in the request
    # one incident's read callbacks: nothing for another ward's id
    for body in (detail_body(theirs), sop_body(theirs)):
        status, res = call(body)
        assert status == 204 or (status == 200 and "Rác tồn đọng" not in json.dumps(res)), res
    status, res = call(detail_body(mine))
    assert status == 200 and "Núi Thành" not in json.dumps(res)  # the title is in the page head
    assert "inc-d-events" in json.dumps(res)
    # every action on another ward's incident: refused, nothing written
    for trigger in ACTION_BUTTONS:
        status, res = call(act_body(theirs, trigger, assignee="pctt"))
        assert status in (200, 204), (trigger, status, res)
        if status == 200:
            assert res["response"]["inc-d-msg"]["children"] in ("Không tìm thấy",), trigger
    status, res = call(act_body(theirs, "", step="verify"))
    assert status in (200, 204)
    # merge another ward's incident into one of theirs, link another ward's alert: refused
    status, res = call(act_body(mine, "inc-d-merge", merge_ids=str(theirs)))
    assert res["response"]["inc-d-msg"]["children"] == "Bạn không có quyền thao tác sự cố này"
    status, res = call(act_body(mine, "inc-d-link", link_ref=str(ids["alert_other"])))
    assert res["response"]["inc-d-msg"]["children"] == "Mục liên kết không hợp lệ"
    # assign their incident to another ward: refused (the code alone trips the guard)
    assert call(act_body(mine, "inc-d-assign", assignee=other))[0] == 403
    # a new incident in another ward, or from another ward's alert
    assert call(create_body(other))[0] == 403
    status, res = call(create_body(None, str(ids["alert_other"])))
    assert res["response"]["inc-new-msg"]["children"] == "Mục liên kết không hợp lệ"
    # the ward page's incident card, and the router, for another ward
    assert call(ward_section_body(other))[0] == 403
    assert call(ward_section_body(own))[0] == 200
    status, res = call(router_body(f"/incidents/{theirs}"))
    assert status == 200 and "inc-not-found" in json.dumps(res)
    status, res = call(router_body(f"/incidents/{mine}"))
    assert status == 200 and "inc-d-id" in json.dumps(res)
    # the overview's card counts their wards only (the city has 6 open)
    status, res = call(overview_section_body())
    assert status == 200
    assert '"inc-ov-open"' in json.dumps(res)
    assert _trail_sizes(inc_server.db_url) == before  # nothing changed anywhere
    # an analyst reads everything and changes nothing
    analyst = login_cookie(base, "analyst")
    status, res = call(queue_body([other]), analyst)
    assert status == 200 and len(res["response"]["inc-table"]["data"]) == 2
    status, res = call(act_body(theirs, "inc-d-ack"), analyst)
    assert res["response"]["inc-d-msg"]["children"] == "Bạn không có quyền thao tác sự cố này"
    status, res = call(bulk_body([theirs], "pctt"), analyst)
    assert res["response"]["inc-msg"]["children"] == "Bạn không có quyền thao tác sự cố này"
    assert _trail_sizes(inc_server.db_url) == before
    # the control: the same action on their own incident goes through
    status, res = call(act_body(mine, "inc-d-comment", text="Đã đến hiện trường"))
    assert res["response"]["inc-d-msg"]["children"] == "Đã lưu"
    after = _trail_sizes(inc_server.db_url)
    assert after[mine][0] == before[mine][0] + 1
    # the kiosk may not reach the pages' callbacks at all
    req = urllib.request.Request(base + f"/wall?token={KIOSK_TOKEN}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        kiosk = next(
            c.split("=", 1)[1].split(";", 1)[0]
            for c in resp.headers.get_all("Set-Cookie") or []
            if c.startswith("ioc_session=")
        )
    assert call(queue_body(None), kiosk)[0] == 403
    assert call(act_body(mine, "inc-d-ack"), kiosk)[0] == 403
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(
            urllib.request.Request(base + "/incidents", headers={"Cookie": f"ioc_session={kiosk}"}),
            timeout=10,
        )
    assert exc.value.code == 403
    exc.value.close()
