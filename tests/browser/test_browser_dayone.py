"""What a user meets on day one, in headless Chromium against ``ioc serve`` on real PostgreSQL:
the admin's system page (failed TimescaleDB jobs, broker state), colours that follow the
target, named alerts, the wall's ward names and camera tiles, device pages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

# ruff: noqa: F811 - pytest fixtures imported from dash_fixtures are used as parameters
from dash_fixtures import (  # noqa: F401 - fixtures used by name
    KIOSK_TOKEN,
    SCREENSHOTS,
    Server,
    browser,
    login,
    make_driver,
    served,
    set_viewport,
    severe_logs,
    wait_for,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(
    pg_server_url: str, config: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("dayone")
    with served(pg_server_url, config, tmp) as srv:
        yield srv


def _has(element_id: str) -> Any:
    return lambda d: bool(d.find_elements("id", element_id))


def _texts(driver: Any, element_id: str) -> str:
    return " ".join(e.text for e in driver.find_elements("id", element_id))


def _sql(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall() if cur.description else []
        conn.commit()
        return rows
    finally:
        conn.close()


def shot(driver: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


_STAND_IN = """
CREATE SCHEMA IF NOT EXISTS timescaledb_information;
CREATE TABLE timescaledb_information.jobs (job_id int, application_name text, proc_name text,
    hypertable_name text);
CREATE TABLE timescaledb_information.job_stats (job_id int, last_run_status text,
    last_run_started_at timestamptz, total_runs bigint, total_failures bigint);
INSERT INTO timescaledb_information.jobs VALUES
    (1000, 'Columnstore Policy [1000]', 'policy_compression', 'readings');
INSERT INTO timescaledb_information.job_stats VALUES
    (1000, 'Failed', now() - interval '5 minutes', 12, 12);
"""


def test_system_page_lists_failed_background_jobs(server: Server, browser: Any) -> None:
    base = server.url
    login(browser, base, "admin")
    browser.get(base + "/system")
    wait_for(browser, _has("system-jobs"), 20)
    assert "PostgreSQL" in browser.find_element("id", "system-jobs").text
    # the TimescaleDB path, its job views stood in on plain PostgreSQL (CI has no TimescaleDB)
    _sql(server.db_url, _STAND_IN)
    _sql(server.db_url, "UPDATE ioc_meta SET value = 'timescaledb' WHERE key = 'storage_mode'")
    try:
        browser.get(base + "/system?lang=en")
        wait_for(browser, _has("system-jobs-table"), 20)
        assert "1 background jobs failed" in browser.find_element("id", "system-jobs").text
        assert "Columnstore Policy [1000]" in browser.find_element("id", "system-jobs-table").text
        shot(browser, "dayone_system_admin")
    finally:
        _sql(server.db_url, "UPDATE ioc_meta SET value = 'postgresql' WHERE key = 'storage_mode'")
        _sql(server.db_url, "DROP SCHEMA timescaledb_information CASCADE")
    # not for anyone else
    login(browser, base, "analyst")
    browser.get(base + "/system")
    wait_for(browser, _has("refused"), 20)
    assert not browser.find_elements("id", "system-jobs")


def test_page_says_data_is_arriving_and_asks_for_the_kpis(server: Server, browser: Any) -> None:
    base, url = server.url, server.db_url
    saved = _sql(url, "SELECT count(*) FROM kpi_values WHERE kpi = 'online_share'")[0][0]
    assert saved > 0
    _sql(url, "CREATE TABLE kpi_saved AS SELECT * FROM kpi_values WHERE kpi = 'online_share'")
    _sql(url, "DELETE FROM kpi_values WHERE kpi = 'online_share'")  # never computed
    try:
        login(browser, base, "admin")
        browser.get(base + "/?lang=en")
        wait_for(browser, _has("ov-arriving-note"), 30)
        note = browser.find_element("id", "ov-arriving-note").text
        assert "Data still arriving" in note and "first time" in note
        # the page asked the scheduler for a run now
        rows = _sql(url, "SELECT reason FROM job_requests WHERE job = 'kpis'")
        assert rows and "online_share" in rows[0][0]
        shot(browser, "dayone_overview_arriving")
        # the demo's back-fill under way: said so on the ward page too
        _sql(url, "INSERT INTO ioc_meta VALUES ('backfill', 'running')")
        ward = server.facts["grants"]["ward_leader"][0]
        login(browser, base, "ward_leader")
        browser.get(base + f"/ward/{ward}?lang=vi")
        wait_for(browser, lambda d: "lịch sử đang được nạp" in _texts(d, "ward-arriving-note"), 30)
        # once it is all there the note goes (within the fast refresh)
        _sql(url, "UPDATE ioc_meta SET value = 'done' WHERE key = 'backfill'")
        _sql(url, "INSERT INTO kpi_values SELECT * FROM kpi_saved")  # the scheduler's run
        _sql(url, "UPDATE job_requests SET served_at = now()")
        wait_for(browser, lambda d: not d.find_elements("id", "ward-arriving-note"), 40)
    finally:
        _sql(url, "INSERT INTO kpi_values SELECT * FROM kpi_saved ON CONFLICT DO NOTHING")
        _sql(url, "DROP TABLE kpi_saved")
        _sql(url, "DELETE FROM ioc_meta WHERE key = 'backfill'")
