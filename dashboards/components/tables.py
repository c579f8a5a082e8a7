"""Layout pieces the list pages share: page heads, filter controls, cards, and the camera
table."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dash import dcc, html

from dashboards.components.common import fault_labels, md_link, ward_options, who
from dashboards.components.layout import frame, numeric_format, refused, table
from dashboards.i18n import fmt_datetime, t
from dashboards.queries import Camera
from ioc.auth import User


def view_page(
    path: str,
    title: str,
    interval_id: str,
    refresh_ms: int,
    body: Callable[[User, str], list[Any]],
    *,
    perm: str = "view",
    version_id: str | None = None,
    download_id: str | None = None,
    updated_id: str | None = None,
) -> html.Div:
    """A page for users with the ``perm`` right (a refusal for others): navigation, its
    refresh interval, the ``title`` (an i18n key) and ``body(user, lang)``.

    ``version_id``: a ``dcc.Store`` (0) that actions bump to refresh the page's data;
    ``download_id``: a ``dcc.Download``; ``updated_id``: a ``Span`` beside the title (in a
    ``page-head`` row) that a callback fills."""
    user, lang = who()
    if not user.can(perm):
        return refused(lang)
    head: list[Any] = [dcc.Interval(id=interval_id, interval=refresh_ms)]
    if version_id:
        head.append(dcc.Store(id=version_id, data=0))
    if download_id:
        head.append(dcc.Download(id=download_id))
    if updated_id:
        title_row = [html.H1(t(title, lang)), html.Span(id=updated_id, className="updated")]
        head.append(html.Div(className="page-head", children=title_row))
    else:
        head.append(html.H1(t(title, lang)))
    return frame(user, path, lang, head + body(user, lang))


def controls(*children: Any, style: dict[str, Any] | None = None) -> html.Div:
    """The row of filters (or buttons) above a page's data."""
    if style is not None:
        return html.Div(className="controls", style=style, children=list(children))
    return html.Div(className="controls", children=list(children))


def labelled(label: str, control: Any, *, width: str | None = None) -> html.Div:
    """A control under its label, for :func:`controls` (at least ``width`` wide)."""
    if width:
        return html.Div([html.Label(label), control], style={"minWidth": width})
    return html.Div([html.Label(label), control])


def dropdown(
    label: str,
    control_id: str,
    options: Sequence[Mapping[str, Any]],
    *,
    width: str | None = None,
    **kwargs: Any,
) -> html.Div:
    """A labelled ``dcc.Dropdown`` for :func:`controls` (``kwargs`` go to the dropdown)."""
    return labelled(
        label, dcc.Dropdown(id=control_id, options=list(options), **kwargs), width=width
    )


def ward_dropdown(
    user: User, lang: str, control_id: str, *, width: str = "320px", **kwargs: Any
) -> html.Div:
    """The wards filter: several of the wards ``user`` may see, none meaning all of them."""
    return dropdown(
        t("wards", lang),
        control_id,
        ward_options(user),
        width=width,
        multi=True,
        placeholder=t("all_wards", lang),
        **kwargs,
    )


def checklist(
    label: str, control_id: str, options: Sequence[Mapping[str, Any]], **kwargs: Any
) -> html.Div:
    """A labelled ``dcc.Checklist`` for :func:`controls` (``kwargs`` go to the checklist)."""
    return labelled(label, dcc.Checklist(id=control_id, options=list(options), **kwargs))


def card(*children: Any, title: str | None = None, body_id: str | None = None) -> html.Div:
    """A white card: an optional ``H2`` title, the children, then an empty ``Div(body_id)``
    that a callback fills."""
    items: list[Any] = [html.H2(title)] if title else []
    items += list(children)
    if body_id:
        items.append(html.Div(id=body_id))
    return html.Div(className="card", children=items)


def cards_2(*cards_: html.Div) -> html.Div:
    """Cards side by side (two columns; one under the other on narrow screens)."""
    return html.Div(className="grid-2", children=list(cards_))


def numeric_column(name: str, col_id: str, lang: str, decimals: int = 1) -> dict[str, Any]:
    """A DataTable column of numbers with ``decimals`` in the language's format."""
    return {"name": name, "id": col_id, "type": "numeric", "format": numeric_format(lang, decimals)}


def camera_table(
    table_id: str,
    cameras: Sequence[Camera],
    lang: str,
    *,
    ward_names: Mapping[str, str] | None = None,
    page_size: int = 10,
    filterable: bool = False,
) -> Any:
    """Cameras with status, open health issues, the last hour's counts and when last seen,
    each linked to its view (``/cameras?camera=ID``); with a ward column when ``ward_names``
    is given. A muted 'no rows' without cameras."""
    if not cameras:
        return html.Div(t("no_rows", lang), className="muted")
    rows = []
    for r in cameras:
        row = {
            # each camera links to its own view: /cameras?camera=ID (status, issues, its ward)
            "camera": md_link(str(r.name or r.camera_id), f"/cameras?camera={r.camera_id}"),
            "id": r.camera_id,
            "status": t(r.status, lang),
            "issues": fault_labels(r.issues, lang),
            "count_1h": r.count_1h,
            "last_seen": fmt_datetime(r.last_seen, lang),
        }
        if ward_names is not None:
            row["ward"] = ward_names.get(r.ward_code or "", r.ward_code or "")
        rows.append(row)
    cols: list[dict[str, Any]] = [
        {"name": t("camera", lang), "id": "camera", "presentation": "markdown"}
    ]
    if ward_names is not None:
        cols.append({"name": t("ward", lang), "id": "ward"})
    cols += [
        {"name": t("status", lang), "id": "status"},
        {"name": t("health", lang), "id": "issues"},
        numeric_column(t("count_1h", lang), "count_1h", lang, 0),
        {"name": t("last_seen", lang), "id": "last_seen"},
    ]
    return table(table_id, rows, cols, page_size=page_size, filterable=filterable)
