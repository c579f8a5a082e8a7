"""``/admin/users``: the user lifecycle of ``ioc users`` for admins, in the browser.

Admins only, checked here on the server for every request (the guard checks too). Adds users,
sets passwords (the policy of ioc.auth), changes roles, wards and handling units, disables,
enables, removes, unlocks (forgets failed sign-ins), and shows the last entries of the audit
log. Every change is made by the same functions as the command line, which end the user's
sessions where the contract says so and write the audit log with the admin's name.
"""

from __future__ import annotations

import html
import json

import flask
from werkzeug.wrappers import Response

from dashboards.i18n import fmt_datetime, lang
from dashboards.security import _page, settings
from dashboards.state import state
from ioc.auth import ROLES, unlock
from ioc.errors import IOCError
from ioc.users import (
    add_user,
    list_users,
    remove_user,
    set_email,
    set_enabled,
    set_password,
    set_role,
)

PATH = "/admin/users"
AUDIT_ROWS = 50

TEXT: dict[str, tuple[str, str]] = {
    "title": ("Quản lý người dùng", "Users"),
    "name": ("Tên đăng nhập", "User name"),
    "role": ("Vai trò", "Role"),
    "wards": ("Phường/xã", "Wards"),
    "email": ("Email", "Email"),
    "state": ("Trạng thái", "State"),
    "enabled": ("Đang hoạt động", "enabled"),
    "disabled": ("Đã khóa", "disabled"),
    "password": ("Mật khẩu", "Password"),
    "add": ("Thêm người dùng", "Add user"),
    "passwd": ("Đặt mật khẩu", "Set password"),
    "disable": ("Khóa", "Disable"),
    "enable": ("Mở khóa", "Enable"),
    "remove": ("Xóa", "Remove"),
    "unlock": ("Bỏ chặn đăng nhập", "Unlock sign-in"),
    "set_role": ("Đổi vai trò", "Change role"),
    "set_email": ("Đổi email", "Change e-mail"),
    "email_hint": ("để trống: không nhận email", "empty: no e-mail"),
    "audit": ("Nhật ký đăng nhập và thay đổi", "Sign-ins and changes"),
    "time": ("Thời gian", "Time"),
    "event": ("Sự kiện", "Event"),
    "actor": ("Người thực hiện", "By"),
    "addr": ("Địa chỉ", "Address"),
    "done": ("Đã thực hiện", "Done"),
    "back": ("Về trang tổng quan", "Back to the overview"),
    "wards_hint": ("mã phường/xã, cách nhau bởi dấu cách", "ward codes, space separated"),
    "units": ("Đơn vị xử lý", "Handling units"),
    "units_hint": ("mã đơn vị, cách nhau bởi dấu cách", "unit ids, space separated"),
}


def _t(key: str) -> str:
    pair = TEXT[key]
    return pair[1] if lang() == "en" else pair[0]


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _admin_name() -> str:
    user = getattr(flask.g, "user", None)
    if user is None or not user.can("admin"):
        flask.abort(403)
    return str(user.name)


def _units() -> dict[str, str]:
    """Handling unit id -> name (categories.yaml ``units``)."""
    cats = state().cfg.categories
    return {k: u.name for k, u in cats.units.items()} if cats is not None else {}


def page(message: str = "", status: int = 200) -> Response:
    me = _admin_name()
    st = state()
    with st.pool.conn() as conn:
        users = list_users(conn)
        with conn.cursor() as cur:
            cur.execute(
                "SELECT ts, event, user_name, actor, addr, details FROM auth_audit"
                " ORDER BY id DESC LIMIT %s",
                (AUDIT_ROWS,),
            )
            events = cur.fetchall()
    roles = "".join(f"<option value='{r}'>{r}</option>" for r in ROLES)

    def role_options(current: str) -> str:
        return "".join(
            f"<option value='{r}'{' selected' if r == current else ''}>{r}</option>" for r in ROLES
        )

    known = _units()
    unit_list = (
        "<datalist id='unit-ids'>"
        + "".join(f"<option value='{_e(k)}'>{_e(v)}</option>" for k, v in known.items())
        + "</datalist>"
    )

    def action(name: str, act: str, extra: str = "") -> str:
        return (
            f"<form method='post' action='{PATH}' class='inline'>"
            f"<input type='hidden' name='action' value='{act}'>"
            f"<input type='hidden' name='name' value='{_e(name)}'>{extra}"
            f"<button type='submit' id='{act}-{_e(name)}'>{_e(_t(act))}</button></form>"
        )

    rows = []
    for u in users:
        buttons = [
            action(u.name, "enable" if u.disabled else "disable"),
            action(u.name, "unlock"),
            action(
                u.name,
                "passwd",
                "<input type='password' name='password' autocomplete='new-password'"
                f" aria-label='{_e(_t('password'))}' required>",
            ),
            action(
                u.name,
                "set_role",
                f"<select name='role' aria-label='{_e(_t('role'))}'>{role_options(u.role)}"
                "</select>"
                f"<input name='wards' aria-label='{_e(_t('wards'))}'"
                f" value='{_e(' '.join(u.wards))}' placeholder='{_e(_t('wards_hint'))}'>"
                f"<input name='units' aria-label='{_e(_t('units'))}' list='unit-ids'"
                f" value='{_e(' '.join(u.units))}' placeholder='{_e(_t('units_hint'))}'>",
            ),
        ]
        buttons.append(
            action(
                u.name,
                "set_email",
                f"<input name='email' type='email' aria-label='{_e(_t('email'))}'"
                f" value='{_e(u.email or '')}' placeholder='{_e(_t('email_hint'))}'>",
            )
        )
        if u.name != me:
            buttons.append(action(u.name, "remove"))
        rows.append(
            f"<tr id='user-{_e(u.name)}'><td>{_e(u.name)}</td><td>{_e(u.role)}</td>"
            f"<td>{_e(' '.join(u.wards) or '—')}</td><td>{_e(' '.join(u.units) or '—')}</td>"
            f"<td>{_e(u.email or '—')}</td>"
            f"<td>{_e(_t('disabled' if u.disabled else 'enabled'))}</td>"
            f"<td>{''.join(buttons)}</td></tr>"
        )
    audit_rows = "".join(
        f"<tr><td>{_e(fmt_datetime(ts))}</td><td>{_e(ev)}</td><td>{_e(un)}</td>"
        f"<td>{_e(actor)}</td><td>{_e(addr)}</td>"
        f"<td>{_e(json.dumps(details, ensure_ascii=False) if details else '')}</td></tr>"
        for ts, ev, un, actor, addr, details in events
    )
    msg = f"<p class='admin-message' id='admin-message'>{_e(message)}</p>" if message else ""
    body = (
        f"<main class='admin-page'><h1>{_e(_t('title'))}</h1>{msg}"
        f"<p><a href='/'>{_e(_t('back'))}</a></p>"
        f"<table class='admin-users'><thead><tr><th>{_e(_t('name'))}</th>"
        f"<th>{_e(_t('role'))}</th><th>{_e(_t('wards'))}</th><th>{_e(_t('units'))}</th>"
        f"<th>{_e(_t('email'))}</th>"
        f"<th>{_e(_t('state'))}</th><th></th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f"{unit_list}"
        f"<h2>{_e(_t('add'))}</h2>"
        f"<form method='post' action='{PATH}' id='add-user'>"
        "<input type='hidden' name='action' value='add'>"
        f"<label>{_e(_t('name'))} <input name='name' required></label> "
        f"<label>{_e(_t('role'))} <select name='role'>{roles}</select></label> "
        f"<label>{_e(_t('wards'))} <input name='wards' placeholder='{_e(_t('wards_hint'))}'>"
        f"</label> <label>{_e(_t('units'))} <input name='units' list='unit-ids'"
        f" placeholder='{_e(_t('units_hint'))}'></label> "
        f"<label>{_e(_t('email'))} <input name='email' type='email'></label> "
        f"<label>{_e(_t('password'))} <input name='password' type='password'"
        " autocomplete='new-password' required></label> "
        f"<button type='submit' id='add-submit'>{_e(_t('add'))}</button></form>"
        f"<h2>{_e(_t('audit'))}</h2><table class='admin-audit'><thead><tr>"
        f"<th>{_e(_t('time'))}</th><th>{_e(_t('event'))}</th><th>{_e(_t('name'))}</th>"
        f"<th>{_e(_t('actor'))}</th><th>{_e(_t('addr'))}</th><th></th></tr></thead>"
        f"<tbody>{audit_rows}</tbody></table></main>"
    )
    return flask.Response(
        _page(_t("title"), body, body_class="admin-body"), status=status, mimetype="text/html"
    )


def post() -> Response:
    me = _admin_name()
    form = flask.request.form
    act = form.get("action", "")
    name = (form.get("name") or "").strip()
    actor = f"web:{me}"
    st = state()
    redis_url = settings().secret("redis_url")
    wards = (form.get("wards") or "").replace(",", " ").split()
    units = (form.get("units") or "").replace(",", " ").split()
    known_units = list(_units())
    try:
        with st.pool.conn() as conn:
            if act == "add":
                add_user(
                    conn,
                    name,
                    form.get("password") or "",
                    form.get("role") or "",
                    wards,
                    known_wards=st.cfg.ward_codes,
                    email=form.get("email") or None,
                    actor=actor,
                    redis_url=redis_url,
                    units=units,
                    known_units=known_units,
                )
            elif act == "passwd":
                set_password(
                    conn, name, form.get("password") or "", actor=actor, redis_url=redis_url
                )
            elif act in ("disable", "enable"):
                if act == "disable" and name == me:
                    raise IOCError("an admin cannot disable their own account here")
                set_enabled(conn, name, act == "enable", actor=actor, redis_url=redis_url)
            elif act == "remove":
                if name == me:
                    raise IOCError("an admin cannot remove their own account here")
                remove_user(conn, name, actor=actor, redis_url=redis_url)
            elif act == "unlock":
                unlock(conn, name, actor=actor)
            elif act == "set_email":
                set_email(conn, name, (form.get("email") or "").strip() or None, actor=actor)
            elif act == "set_role":
                set_role(
                    conn,
                    name,
                    form.get("role") or "",
                    wards,
                    known_wards=st.cfg.ward_codes,
                    actor=actor,
                    # an older form without the field keeps the user's units
                    units=units if "units" in form else None,
                    known_units=known_units,
                )
            else:
                return page(f"unknown action {act!r}", 400)
    except IOCError as exc:
        return page(str(exc), 400)
    # a new role or wards hold from the next request after the user cache's few seconds
    return page(_t("done"))


def view() -> Response:
    return post() if flask.request.method == "POST" else page()


def register(server: flask.Flask) -> None:
    server.add_url_rule(PATH, "admin_users", view, methods=["GET", "POST"])
