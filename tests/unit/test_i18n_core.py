"""The core's one table of report texts (ioc/i18n.py): each key in both languages with the
same placeholders; the dashboards take the shared texts from it."""

from __future__ import annotations

import string

from ioc.i18n import COLUMNS, DEFINITION_COLUMNS, TEXT, columns, tr


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_text_in_both_languages_with_the_same_placeholders() -> None:
    for key, (vi, en) in TEXT.items():
        assert vi.strip() and en.strip(), key
        assert _fields(vi) == _fields(en), key
    for keys in (*COLUMNS.values(), DEFINITION_COLUMNS):
        assert all(k in TEXT for k in keys)


def test_lookup() -> None:
    assert tr("all_wards", "vi", n=94) == "Tất cả 94 phường, xã, đặc khu"
    assert tr("all_wards", "en", n=94) == "All 94 wards and communes"
    assert tr("city", "fr") == "Toàn thành phố"  # anything else: Vietnamese
    assert columns("kpi", "en")[0] == "Period start" and len(columns("metric", "vi")) == 9


def test_dashboards_share_the_city_name() -> None:
    from dashboards.i18n import TEXT as DASH_TEXT

    assert DASH_TEXT["city"] == TEXT["city"]
