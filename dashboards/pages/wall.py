"""``/wall``: the wall display — dark, large type, rotating views, live, self-recovering.

``?view=map|applications|environment|cameras|alerts|incidents`` pins a view;
``?period=SECONDS`` sets the rotation period; ``?token=KIOSK`` signs in the read-only kiosk
(see security.py). One
``dcc.Interval`` drives everything: the server callback rebuilds the current view; a
clientside callback on the same interval flags a lost connection within seconds and reloads the
page once ``/healthz`` answers again (the server restarted or the network came back).
``?refresh=SECONDS`` (0.5-10, default 5) shortens the refresh interval, for bench/wall_memory.py;
``?reload=SECONDS`` (5 s to 7 days, default 6 h) how long the page runs before it reloads itself.

Memory over weeks of running: the view is sent to the browser only when it differs from what the
browser shows (a signature in ``wall-sig``), so the graphs are not rebuilt on every refresh; and
the page reloads itself every few hours at a view change, which bounds Dash's undo history (see
``_RELOAD``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from typing import Any

import dash
import flask
import pandas as pd
from dash import Input, Output, State, callback, clientside_callback, dcc, html
from plotly.io.json import to_json_plotly

from dashboards import queries
from dashboards.components.common import (
    alert_title,
    cached,
    fault_labels,
    freshness,
    kpi_board,
    latest_kpis,
    require,
    scope_key,
    who,
)
from dashboards.components.figures import (
    GRAPH_CONFIG,
    MAP_CONFIG,
    bars,
    label_points,
    map_px_per_deg,
    on_basemap,
    pick_labelled,
    place_labels,
    short_name,
    ward_labels,
    ward_map,
)
from dashboards.components.layout import kpi_tile, refused
from dashboards.i18n import TZ, fmt_datetime, fmt_num, t, unit_label
from dashboards.kpiview import COLORS, city_value, decimals, ranks, status
from dashboards.rotation import (
    RELOAD_AFTER_S,
    RELOAD_MAX_S,
    VIEWS,
    current_view,
    reload_due,
    valid_config,
)
from dashboards.state import state
from dashboards.wall_incidents import view_incidents
from ioc.auth import User
from ioc.db.rows import frame

dash.register_page(__name__, path="/wall", title="IOC — Wall", order=10)

REFRESH_MS = 5_000
WALL_ALERT_ROWS = 10  # rows of two lines that fit under the title at 16:9
WALL_CAMERA_TILES = 24  # 6 × 4 tiles fit the main column at 16:9
VIEW_TITLES = {
    "map": "map_title",
    "applications": "applications",
    "environment": "env_flood",
    "cameras": "cameras",
    "alerts": "alerts",
    "incidents": "incidents",
}
APP_KPIS = (
    "on_time_rate",
    "overdue_applications",
    "online_share",
    "avg_processing_days",
    "applications_received",
)
CITY_KPIS = (
    "on_time_rate",
    "aqi",
    "flood_risk",
    "traffic_congestion",
    "sensor_uptime",
    "open_alerts",
)


def _seconds(text: str | None, default: float, lo: float, hi: float) -> float:
    try:
        value = float(text) if text else default
    except ValueError:
        return default
    return max(lo, min(hi, value)) if value == value else default  # NaN -> default


def layout(
    view: str | None = None,
    period: str | None = None,
    refresh: str | None = None,
    reload: str | None = None,
    **_: Any,
) -> html.Div:
    user, lang = who()
    if not user.can("wall"):
        return refused(lang)
    period_s = _seconds(period, state().wall_period_s, 0.5, 86_400.0)
    refresh_ms = int(1000 * _seconds(refresh, REFRESH_MS / 1000, 0.5, 10.0))
    reload_s = _seconds(reload, RELOAD_AFTER_S, 5.0, RELOAD_MAX_S)
    pinned = view if view in VIEWS else None
    config = {"view": pinned, "period": period_s, "refresh": refresh_ms / 1000, "reload": reload_s}
    return html.Div(
        className="wall",
        id="wall-root",
        children=[
            dcc.Interval(id="wall-interval", interval=refresh_ms),
            dcc.Store(id="wall-config", data=config),
            dcc.Store(id="wall-reload", data=None),
            html.Span(id="wall-reload-done", hidden=True),
            dcc.Store(id="wall-last", data=None),
            dcc.Store(id="wall-screen", data=None),
            dcc.Store(id="wall-sig", data=None),
            html.Div(
                className="wall-head",
                children=[
                    html.Div(t("app_title", lang), className="wall-title"),
                    html.Div(id="wall-view-name", className="wall-view"),
                    html.Div(id="wall-stale", className="wall-badge ok"),
                    html.Div(id="wall-conn", className="wall-badge ok"),
                    html.Div(id="wall-clock", className="wall-clock"),
                ],
            ),
            html.Div(id="wall-body", className="wall-body", children=_loading(lang)),
        ],
    )


def _loading(lang: str) -> html.Div:
    return html.Div("…", className="muted")


@callback(
    Output("wall-body", "children"),
    Output("wall-view-name", "children"),
    Output("wall-clock", "children"),
    Output("wall-stale", "children"),
    Output("wall-stale", "className"),
    Output("wall-last", "data"),
    Output("wall-sig", "data"),
    Output("wall-reload", "data"),
    Input("wall-interval", "n_intervals"),
    Input("wall-screen", "data"),
    State("wall-config", "data"),
    State("wall-sig", "data"),
)
def refresh(
    n: int | None, screen: Any, config: dict[str, Any] | None, shown: str | None
) -> tuple[Any, ...]:
    user = require("wall")
    _, lang = who()
    now = time.time()
    if not valid_config(config):  # crafted by hand: refuse it (400), do not fail (500)
        flask.abort(
            400,
            "wall-config: view must be a view name; period, refresh and reload numbers of seconds",
        )
    if reload_due(config, n, shown, now):  # the page reloads in place of this view change
        return (*(dash.no_update,) * 7, n)
    view = current_view(config, now)
    scale = 1.0
    if isinstance(screen, (int, float)) and screen > 0:
        scale = max(0.6, min(3.0, float(screen) / 1920.0))
    body: Any = VIEW_BUILDERS[view](user, lang, scale)
    title: Any = t(VIEW_TITLES[view], lang)
    # The browser already shows this very view: send nothing, so that React keeps its
    # components and Plotly its graphs (no remount, no redraw) until something changes.
    sig: Any = body_signature(view, body)
    if sig == shown:
        body, title, sig = dash.no_update, dash.no_update, dash.no_update
    fresh = freshness()
    stamps = [v for v in fresh.values() if v is not None]
    newest = max(stamps) if stamps else None
    age = (dt.datetime.now(dt.UTC) - newest).total_seconds() if newest else None
    if age is None or age > state().stale_after_s:
        since = fmt_datetime(newest, lang) if newest else t("no_data", lang)
        stale = (f"⚠ {t('stale', lang)} ({t('last_update', lang)}: {since})", "wall-badge stale")
    else:
        stale = ("", "wall-badge ok")
    clock = dt.datetime.now(TZ).strftime("%H:%M  %d/%m/%Y" if lang == "vi" else "%H:%M  %Y-%m-%d")
    return body, title, clock, stale[0], stale[1], int(now * 1000), sig, dash.no_update


def body_signature(view: str, body: Any) -> str:
    """What the browser would render: the view and its serialised components (figures too)."""
    text = to_json_plotly(body)
    return f"{view}:{hashlib.sha256(text.encode()).hexdigest()[:32]}"


# Runs in the browser on the same interval, even when the server is unreachable.
_CLIENT = """
    function(n, last, screen) {
        var now = Date.now();
        var width = window.innerWidth;
        var out = ["", "wall-badge ok"];
        if (last && now - last > 15000) {
            var text = document.documentElement.lang === "en" ? "SERVER UNREACHABLE"
                                                               : "MẤT KẾT NỐI MÁY CHỦ";
            out = ["⚠ " + text, "wall-badge down"];
            if (now - last > 30000 && !window.__iocProbe) {
                window.__iocProbe = true;
                fetch("/healthz", {cache: "no-store"}).then(function(r) {
                    if (r.ok) { window.location.reload(); }
                }).catch(function() {}).finally(function() { window.__iocProbe = false; });
            }
        }
        return [out[0], out[1], screen === width ? window.dash_clientside.no_update : width];
    }
"""
clientside_callback(
    _CLIENT,
    Output("wall-conn", "children"),
    Output("wall-conn", "className"),
    Output("wall-screen", "data"),
    Input("wall-interval", "n_intervals"),
    State("wall-last", "data"),
    State("wall-screen", "data"),
)

# Memory over weeks. Dash's renderer records every change of a callback input made by a
# component (each tick of the interval) in the undo history of its store and never trims it
# (plotly/dash#727; dash-renderer's recordHistory: each ON_PROP_CHANGE whose source is not a
# callback response), about 0.9 KB of heap per tick. Dash has no public way to turn that off, nor
# to refresh a page without such an input: ``dash.Patch`` and ``no_update`` only shape callback
# *outputs* (not recorded), and ``dash_clientside.set_props`` and websocket pushes are recorded
# like a component's change. So the wall reloads its page after ``config["reload"]`` seconds of
# refreshes (6 h by default, counted from the interval's public ``n_intervals``): the server
# callback sets ``wall-reload`` at the tick where the rotation returns to the first view (a
# pinned view: at once) and sends nothing else, and this reloads the page once a fetch of the
# page's URL succeeds (else a later tick tries again: a wall must never be left on a browser's
# error page). The URL keeps the wall's settings (view, period, kiosk token); the new page
# starts with an empty history and comes up on the first view. A reload also frees whatever
# else a browser tab gathers over weeks.
_RELOAD = """
    function(due) {
        if (due && !window.__iocReloading) {  // only if the page loads: never an error page
            window.__iocReloading = true;
            fetch(window.location.href, {cache: "no-store"}).then(function(r) {
                if (r.ok) { window.location.reload(); } else { window.__iocReloading = false; }
            }).catch(function() { window.__iocReloading = false; });
        }
        return window.dash_clientside.no_update;
    }
"""
clientside_callback(
    _RELOAD,
    Output("wall-reload-done", "children"),
    Input("wall-reload", "data"),
    prevent_initial_call=True,
)


def _tiles(names: tuple[str, ...], lang: str, *, extra: str = "") -> html.Div:
    kpis = state().kpis
    latest = latest_kpis("day")
    tiles = []
    for name in names:
        kpi = kpis.get(name)
        if kpi is None:
            continue
        value, prev = city_value(latest, name, kpi) if not latest.empty else (None, None)
        tiles.append(kpi_tile(name, kpi, value, prev, lang, extra=extra))
    return html.Div(tiles, className="tiles")


def _map(
    user: User, kpi_name: str, lang: str, scale: float, graph_id: str, period: str = "day"
) -> Any:
    st = state()
    kpi = st.kpis.get(kpi_name)
    latest = latest_kpis(period)
    if latest.empty or kpi is None or (latest["kpi"] == kpi_name).sum() == 0:
        latest = latest_kpis("day")
    ranked = (
        ranks(latest, kpi_name, kpi)
        if kpi is not None and not latest.empty
        else pd.DataFrame({"ward_code": [], "value": [], "rank": []})
    )
    n_ranked = int(ranked["rank"].notna().sum())
    allowed = user.allowed_wards()
    if allowed is not None:  # ranks are among all wards; values only of the granted wards
        ranked = ranked[ranked["ward_code"].isin(allowed)]
    fig = ward_map(
        st.geojson,
        st.ward_names,
        ranked,
        kpi_name,
        kpi,
        lang=lang,
        dark=True,
        height=None,
        n_ranked=n_ranked,
    )
    _wall_map_text(fig, ranked, kpi, scale)
    fig = on_basemap(fig, st.cfg.system.basemap)  # the city's own base map, if configured
    return dcc.Graph(id=graph_id, figure=fig, config=MAP_CONFIG, style={"height": "76vh"})


# a wall has no hover: ward names are written on the map. At 1080p the ones that matter
# (open alert, worst ranked, past red), large enough to read at 4 m; from about 4K every name.
LABEL_PX = 26  # highlighted names at 1920 px wide (scaled with the screen)
ALL_NAMES_PX = 10  # every other name, from ALL_NAMES_SCALE on
ALL_NAMES_SCALE = 1.8
# room kept around each name: place_labels estimates a box from the text length, but the wall's
# names are bold and the map's real scale differs from map_px_per_deg's estimate (without it,
# "Vu Gia" and "Nam Phước" overlapped at 1080p in the demo's screenshots)
LABEL_ROOM = 1.25


def _wall_map_text(fig: dict[str, Any], ranked: Any, kpi: Any, scale: float) -> None:
    """Wall sizes: colour bar and fonts scaled to the screen; ward names on the map."""
    fig["layout"]["font"]["size"] = int(22 * scale)
    fig["layout"]["hoverlabel"] = {"font": {"size": int(22 * scale)}}
    for trace in fig["data"][1:]:
        bar = trace["colorbar"]
        bar["tickfont"]["size"] = int(24 * scale)
        bar["title"]["font"]["size"] = int(24 * scale)
        bar["thickness"] = int(30 * scale)
    user, _lang = who()
    key = ("wall_alerting", scope_key(user))
    open_alerts = cached(
        key, lambda c: queries.alerts(c, wards=scope_key(user), states=("open",), limit=1000)
    )
    alerting = {a.ward_code for a in open_alerts if a.ward_code is not None}
    st = state()
    every = list(st.ward_names) if scale >= ALL_NAMES_SCALE else None
    highlighted, others = pick_labelled(ranked, kpi, alerting, every=every)
    where = label_points(st.geojson)
    texts = {c: short_name(n) for c, n in st.ward_names.items()}
    # the map fills about half the screen's width and three quarters of its height
    ppd = map_px_per_deg(where, 0.5 * 1920 * scale, 0.7 * 1080 * scale)
    boxes: list[tuple[float, float, float, float]] = []
    highlighted = place_labels(
        highlighted,
        texts,
        where,
        size_px=LABEL_PX * scale * LABEL_ROOM,
        px_per_deg=ppd,
        taken=boxes,
    )
    # every other name, smaller where the wards are small and close together
    placed: list[str] = []
    sizes: list[float] = []
    for factor in (1.0, 0.75, 0.55):
        px = ALL_NAMES_PX * scale * factor
        left = [c for c in others if c not in placed]
        got = place_labels(left, texts, where, size_px=px * LABEL_ROOM, px_per_deg=ppd, taken=boxes)
        placed += got
        sizes += [px] * len(got)
    if placed:
        fig["data"].append(ward_labels(placed, st.ward_names, where, size=sizes, name="names"))
    if highlighted:
        fig["data"].append(
            ward_labels(highlighted, st.ward_names, where, size=LABEL_PX * scale, name="flagged")
        )


def _view_map(user: User, lang: str, scale: float) -> list[Any]:
    kpi_name = "on_time_rate" if "on_time_rate" in state().kpis else next(iter(state().kpis), "")
    label = state().kpis[kpi_name].label_vi if kpi_name else ""
    if lang == "en" and kpi_name:
        label = state().kpis[kpi_name].label_en
    return [
        html.Div(
            [html.H2(label), _map(user, kpi_name, lang, scale, "wall-map-graph")],
            className="wall-col wall-main",
        ),
        html.Div(
            [_tiles(CITY_KPIS, lang), *_worst_wards(user, kpi_name, label, lang)],
            className="wall-col wall-side",
        ),
    ]


WALL_WORST_ROWS = 6


def _worst_wards(user: User, kpi_name: str, label: str, lang: str) -> list[Any]:
    """The wards ranked last on the map's KPI (today), worst first, among those the map shows
    the user: name, value, rank among all ranked wards; each row's edge in its status colour."""
    kpi = state().kpis.get(kpi_name)
    board = kpi_board("day").get(kpi_name)
    if kpi is None or not board:
        return []
    names = state().ward_names
    last = sorted(
        ((rank, code, value) for code, (value, rank) in board["wards"].items()),
        reverse=True,
    )
    allowed = user.allowed_wards()  # as the map: the kiosk sees the city's values
    shown = [r for r in last if allowed is None or r[1] in allowed][:WALL_WORST_ROWS]
    if not shown:
        return []
    unit = unit_label(kpi.unit, lang)
    items = [
        html.Li(
            [
                html.Span(names.get(code, code)),
                html.Span(f"{fmt_num(value, decimals(kpi), lang)} {unit}".strip(), className="num"),
                html.Span(f"{t('rank', lang)} {rank}/{board['n_ranked']}", className="num"),
            ],
            style={"borderLeft": f"0.5vw solid {COLORS[status(value, kpi)]}"},
        )
        for rank, code, value in shown
    ]
    return [
        html.H2(f"{t('worst', lang)} · {label}"),
        html.Ul(items, className="wall-list ranked", id="wall-map-worst"),
    ]


def _view_applications(user: User, lang: str, scale: float) -> list[Any]:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    scope = scope_key(user)
    stats = cached(
        ("wall_apps", since.date().isoformat(), scope),
        lambda c: queries.application_stats(c, since=since, group_by="ward_code", wards=scope),
    )
    names = state().ward_names
    if not stats:
        chart: Any = html.Div(t("no_data", lang), className="muted")
    else:
        # the 12 wards with the most overdue (then late), the worst at the top of the bars
        top = sorted(stats, key=lambda g: (g.overdue, g.late), reverse=True)[:12][::-1]
        fig = bars(
            frame(queries.ApplicationStats, top).assign(
                label=[names.get(g.grp, g.grp) for g in top]
            ),
            "label",
            [("overdue", t("overdue", lang), "#d73027"), ("late", t("late", lang), "#f0a202")],
            lang=lang,
            dark=True,
            height=None,
            horizontal=True,
            stacked=True,
        )
        fig.update_layout(
            font={"size": int(18 * scale)}, margin={"l": int(220 * scale), "t": int(40 * scale)}
        )
        # the names' last letters were hidden under the bars (the labels touch the axis)
        fig.update_yaxes(ticksuffix="  ")
        chart = dcc.Graph(
            id="wall-apps-graph",
            figure=fig,
            config=GRAPH_CONFIG,
            style={"height": "76vh"},
        )
    return [
        html.Div([html.H2(t("overdue_list", lang)), chart], className="wall-col wall-main"),
        html.Div([_tiles(APP_KPIS, lang)], className="wall-col wall-side"),
    ]


def _view_environment(user: User, lang: str, scale: float) -> list[Any]:
    scope = scope_key(user)
    env = cached(("wall_env", scope), lambda c: queries.environment(c, wards=scope))
    names = state().ward_names
    items: list[Any] = []
    gauged = [w for w in env if w.water_level_max is not None]
    for r in sorted(gauged, key=lambda w: w.water_level_max or 0.0, reverse=True)[:8]:
        items.append(
            html.Li(
                [
                    html.Span(names.get(r.ward_code, r.ward_code)),
                    html.Span(
                        f"{fmt_num(r.water_level_max, 0, lang)} cm · "
                        f"{fmt_num(r.rain_24h, 1, lang)} mm",
                        className="num",
                    ),
                ]
            )
        )
    lst = (
        html.Ul(items, className="wall-list")
        if items
        else html.Div(t("no_data", lang), className="muted")
    )
    kpi_name = "aqi" if "aqi" in state().kpis else next(iter(state().kpis), "")
    return [
        html.Div(
            [
                html.H2(t("aqi_by_ward", lang)),
                _map(user, kpi_name, lang, scale, "wall-env-map", "hour"),
            ],
            className="wall-col wall-main",
        ),
        html.Div(
            [
                _tiles(("aqi", "flood_risk"), lang),
                html.H2(f"{t('water_level', lang)} · {t('rain_24h', lang)}"),
                lst,
            ],
            className="wall-col wall-side",
        ),
    ]


def _view_cameras(user: User, lang: str, scale: float) -> list[Any]:
    scope = scope_key(user)
    cams = cached(("cameras", scope), lambda c: queries.cameras(c, wards=scope))
    devs = cached(("device_status", scope), lambda c: queries.device_status(c, wards=scope))
    names = state().ward_names
    n_cam = len(cams)
    n_on = sum(c.status == "online" for c in cams)
    n_dev = sum(g.n for g in devs)
    n_dev_on = sum(g.n for g in devs if g.status == "online")
    # one tile per camera: the ones with a problem first, then by ward
    order = sorted(
        cams,
        key=lambda c: (
            c.status == "online" and c.issues is None,
            c.ward_code or "",
            c.camera_id,
        ),
    )
    tiles = [_camera_tile(r, names, lang) for r in order[:WALL_CAMERA_TILES]]
    more = n_cam - len(tiles)
    side = html.Div(
        className="tiles",
        children=[
            _count_tile(t("cameras_online_now", lang), n_on, n_cam, lang, "camera_uptime"),
            _count_tile(t("devices_online_now", lang), n_dev_on, n_dev, lang, "sensor_uptime"),
        ],
    )
    return [
        html.Div(
            [
                html.H2(t("cameras", lang)),
                html.Ul(tiles, className="cam-grid", id="wall-cam-grid")
                if tiles
                else html.Div(t("no_rows", lang), className="muted"),
                html.Div(t("more_cameras", lang, n=more), className="muted") if more > 0 else "",
            ],
            className="wall-col wall-main",
        ),
        html.Div(
            [
                side,
                _tiles(("camera_uptime", "sensor_uptime"), lang, extra=t("uptime_def", lang)),
            ],
            className="wall-col wall-side",
        ),
    ]


def _camera_tile(r: queries.Camera, names: dict[str, str], lang: str) -> html.Li:
    st = r.status
    kinds = r.issues or ""
    if st == "offline":  # said by the status already: the issue line tells when it was seen
        kinds = ", ".join(k.strip() for k in kinds.split(",") if k.strip() != "offline")
    issue = fault_labels(kinds, lang)
    count = r.count_1h
    cls = "cam-tile " + (
        "cam-offline" if st == "offline" else ("cam-issue" if issue else f"cam-{st}")
    )
    return html.Li(
        className=cls,
        children=[
            html.Div(
                [html.Span("●", className="cam-dot"), html.Span(r.name or r.camera_id)],
                className="cam-name",
            ),
            html.Div(names.get(r.ward_code or "", r.ward_code or ""), className="cam-ward"),
            html.Div(
                [
                    html.Span(t(st, lang), className="cam-status"),
                    html.Span(
                        f"{fmt_num(count, 0, lang)} {t('per_hour', lang)}"
                        if count is not None
                        else "—",
                        className="cam-count",
                    ),
                ],
                className="cam-row",
            ),
            html.Div(
                issue
                or (
                    f"{t('last_seen', lang)} {fmt_datetime(r.last_seen, lang)}"
                    if st != "online"
                    else t("no_issue", lang)
                ),
                className="cam-issue-text",
            ),
        ],
    )


def _count_tile(label: str, n: int, total: int, lang: str, kpi_name: str) -> html.Div:
    """Units online now (each one's latest status), coloured by the matching uptime KPI's
    target with the one status rule (Kpi.status)."""
    share = 100.0 * n / total if total else None
    kpi = state().kpis.get(kpi_name)
    color = COLORS[kpi.status(share) if kpi is not None else "none"]
    return html.Div(
        className="tile",
        style={"borderTopColor": color},
        children=[
            html.Div(label, className="tile-label"),
            html.Div(
                [
                    html.Span(f"{fmt_num(n, 0, lang)}", className="tile-value"),
                    html.Span(f" / {fmt_num(total, 0, lang)}", className="tile-unit"),
                ]
            ),
            html.Div(
                (f"{fmt_num(share, 1, lang)} % · " if share is not None else "")
                + t("online_now_def", lang),
                className="tile-sub",
            ),
        ],
    )


def _view_alerts(user: User, lang: str, scale: float) -> list[Any]:
    found = cached(
        ("wall_alerts_open", scope_key(user)),
        lambda c: queries.alerts(c, wards=scope_key(user), states=("open",), limit=1000),
    )
    names = state().ward_names
    items = [
        html.Li(
            [
                html.Span(t(r.severity, lang)),
                html.Span(alert_title(r.rule_id, r.subject, r.title, lang, r.details, r.value)),
                html.Span(names.get(r.ward_code or "", ""), className="num"),
                html.Span(fmt_datetime(r.opened_at, lang)),
            ],
            className=f"sev-{r.severity}",
        )
        for r in found[:WALL_ALERT_ROWS]  # the most severe and newest that fit
    ]
    return [
        html.Div(
            [
                html.H2(f"{t('open_alerts', lang)} ({fmt_num(len(found), 0, lang)})"),
                html.Ul(items, className="wall-list")
                if items
                else html.Div(t("no_open_alerts", lang), className="muted"),
            ],
            className="wall-col wall-main",
        ),
        html.Div(
            [_tiles(("open_alerts", "flood_risk", "aqi"), lang)], className="wall-col wall-side"
        ),
    ]


VIEW_BUILDERS = {
    "map": _view_map,
    "applications": _view_applications,
    "environment": _view_environment,
    "cameras": _view_cameras,
    "alerts": _view_alerts,
    "incidents": view_incidents,  # dashboards/wall_incidents.py
}
