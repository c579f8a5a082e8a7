"""The dashboard app is assembled through public APIs only: the guard is a Flask
``before_request`` registered before Dash's own hooks (so it runs first), and the page's
``<html lang>`` comes from Dash's documented ``interpolate_index`` override."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ioc.config import Config

KIOSK = "kiosk-token-for-the-hooks-test-0123456789"


@pytest.fixture(scope="module")
def app(db_url: str, config: Config) -> Iterator[Any]:
    from dashboards.app import create_app
    from ioc.settings import Settings

    app = create_app(
        config, db_url, Settings(secret_key="hooks-test-secret-0123456789abcdef", kiosk_token=KIOSK)
    )
    yield app
    app.server.config["IOC_STATE"].pool.close()


def test_guard_runs_before_every_dash_hook(app: Any) -> None:
    from dashboards import security

    hooks = app.server.before_request_funcs[None]
    assert hooks[0] is security.guard
    assert len(hooks) >= 2  # Dash's own (first-request set-up, pages router) come after it
    client = app.server.test_client()
    # anonymous: refused by the guard before Dash sets anything up or routes the page
    page = client.get("/wall", headers={"Accept": "text/html"})
    assert page.status_code == 302 and page.headers["Location"].startswith("/login")
    layout = client.get("/_dash-layout")
    assert layout.status_code == 401


def test_html_lang_follows_the_language(app: Any) -> None:
    client = app.server.test_client()
    en = client.get(f"/wall?token={KIOSK}&lang=en")
    assert en.status_code == 200
    assert '<html lang="en">' in en.get_data(as_text=True)
    vi = client.get("/wall?lang=vi")  # same client: the kiosk session and the lang cookie
    assert vi.status_code == 200
    assert '<html lang="vi">' in vi.get_data(as_text=True)
    assert "{%lang%}" not in vi.get_data(as_text=True)
