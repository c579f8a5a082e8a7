"""The incidents API for field systems (the wards' staff apps, the simulator's ward staff):
``Authorization: Bearer TOKEN`` of scope ``incidents`` (see ioc/incidents/tokens.py).

- ``GET /api/v1/incidents?ward=CODE&status=open`` → ``{"incidents": [...]}``: the open
  incidents (or those of ``status``), each with its clocks and its SOP steps (done or not);
- ``POST /api/v1/incidents`` with ``{"report": "CODE", "actor": "name", "ward": "CODE"}``
  (``ward`` optional: then the report must be of that ward): the report taken up as an
  incident (ioc.incidents.core.open_from_report) → 201 ``{"id", "status", "outcome":
  "opened"}``, or 200 with ``"outcome": "merged"`` (an open incident of the same problem took
  it) or ``"exists"`` (taken up before: a retry opens nothing); 404 for an unknown report;
- ``POST /api/v1/incidents/{id}/actions`` with ``{"action": ..., "actor": "name", ...}``:
  ``acknowledge``, ``assign`` (``assignee``), ``start``, ``step`` (``step``, ``note``,
  ``photo_ref``), ``comment`` (``text``), ``resolve`` (``text``), ``reject`` (``text``),
  ``close`` (the operations centre checked the result) →
  200 ``{"id", "status"}``; 400 ``{"error": "field: ..."}`` naming the bad field; 409 when the
  incident's state does not allow it; 404 for an unknown id; 401 without a valid token.
  Safe to repeat with an ``Idempotency-Key`` header (per token, kept 7 days,
  ioc.incidents.idempotency): a repeat answers the first answer with ``Idempotent-Replayed:
  true`` and does nothing; another request under the same key → 422; a bad key → 400.

Every change goes through ioc.incidents.core with source ``api`` and actor ``TOKEN/actor``.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import flask
from werkzeug.wrappers import Response

from dashboards.state import state
from ioc.db import Connection
from ioc.incidents import core, idempotency, rules
from ioc.incidents.tokens import SCOPE, check_staff_token

MAX_BODY = 64 * 1024
ACTIONS = ("acknowledge", "assign", "start", "step", "comment", "resolve", "reject", "close")


def _raw(text: str, status: int, **headers: str) -> Response:
    resp = flask.Response(text, status=status, mimetype="application/json")
    for k, v in headers.items():
        resp.headers[k] = v
    return resp


def _json(body: Any, status: int = 200, **headers: str) -> Response:
    return _raw(json.dumps(body, ensure_ascii=False, default=str), status, **headers)


def _token() -> str | Response:
    auth = flask.request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or not auth[7:].strip():
        return _json({"error": "Authorization: a Bearer token is required"}, 401,
                     **{"WWW-Authenticate": 'Bearer realm="ioc"'})  # fmt: skip
    name = state().pool.run(lambda conn: check_staff_token(conn, auth[7:].strip()))
    if name is None:
        return _json(
            {"error": f"Authorization: invalid or revoked token (scope {SCOPE})"},
            401,
            **{"WWW-Authenticate": 'Bearer realm="ioc", error="invalid_token"'},
        )
    return name


def list_incidents() -> Response:
    name = _token()
    if isinstance(name, Response):
        return name
    cfg = state().cfg
    args = flask.request.args
    ward = args.get("ward")
    if ward is not None and ward not in cfg.ward_codes:
        return _json({"error": f"ward: unknown ward {ward!r}"}, 400)
    status = args.get("status", "open")
    statuses = list(core.OPEN) if status == "open" else [status]
    if any(s not in core.STATUSES for s in statuses):
        return _json({"error": f"status: one of open, {', '.join(core.STATUSES)}"}, 400)
    try:
        limit = min(1000, max(1, int(args.get("limit", "500"))))
    except ValueError:
        return _json({"error": "limit: not a number"}, 400)
    with state().pool.conn() as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT {core.COLUMNS} FROM incidents WHERE status = ANY(%s::text[])"
            " AND (%s::text IS NULL OR ward_code = %s) ORDER BY due_at, id LIMIT %s",
            (statuses, ward, ward, limit),
        )
        incs = [dict(zip(core._NAMES, r, strict=True)) for r in cur.fetchall()]
        cur.execute(
            "SELECT incident_id, step_id FROM incident_steps WHERE incident_id = ANY(%s::bigint[])",
            ([i["id"] for i in incs],),
        )
        done: dict[int, set[str]] = {}
        for iid, step in cur.fetchall():
            done.setdefault(int(iid), set()).add(step)
    out = []
    for i in incs:
        out.append(
            {
                "id": i["id"],
                "ward": i["ward_code"],
                "category": i["category"],
                "severity": i["severity"],
                "status": i["status"],
                "title": i["title"],
                "assignee": i["assignee"],
                "opened_at": i["opened_at"],
                "acknowledged_at": i["acknowledged_at"],
                "response_due_at": i["response_due_at"],
                "due_at": i["due_at"],
                "resolved_at": i["resolved_at"],
                "steps": [
                    {"id": s.id, "needs": s.needs, "done": s.id in done.get(i["id"], set())}
                    for s in rules.sop_steps(cfg, i["category"])
                ],
            }
        )
    return _json({"incidents": out})


def _body() -> dict[str, Any] | Response:
    raw = flask.request.get_data(cache=False)
    if len(raw) > MAX_BODY:
        return _json({"error": f"body: larger than {MAX_BODY} bytes"}, 413)
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return _json({"error": f"body: not valid JSON ({str(exc)[:80]})"}, 400)
    if not isinstance(body, dict):
        return _json({"error": "body: a JSON object is needed"}, 400)
    return body


def create_incident() -> Response:
    """``POST /api/v1/incidents``: a citizen report taken up as an incident (or joined to the
    open incident of the same problem)."""
    name = _token()
    if isinstance(name, Response):
        return name
    body = _body()
    if isinstance(body, Response):
        return body
    for key in ("report", "actor", "ward"):
        if key in body and body[key] is not None and not isinstance(body[key], str):
            return _json({"error": f"{key}: a string is needed"}, 400)
    report = str(body.get("report") or "").strip()
    if not report:
        return _json({"error": "report: the report's code is required"}, 400)
    actor = str(body.get("actor") or "").strip()[:64]
    if not actor:
        return _json({"error": "actor: who does it is required"}, 400)
    cfg = state().cfg
    ward = body.get("ward")
    if ward is not None and ward not in cfg.ward_codes:
        return _json({"error": f"ward: unknown ward {str(ward)[:20]!r}"}, 400)
    now = dt.datetime.now(dt.UTC)

    def take_up(conn: Connection) -> tuple[int, str, dict[str, Any] | None]:
        iid, outcome = core.open_from_report(
            conn, cfg, report, actor=f"{name}/{actor}", source="api", ward_code=ward, now=now
        )
        return iid, outcome, core.get(conn, iid)

    try:  # done again if the database connection is lost: a retry opens nothing
        iid, outcome, inc = state().pool.run(take_up)
    except core.IncidentError as exc:
        if exc.code == "not_found":
            return _json({"error": f"report: {exc}"}, 404)
        if exc.code == "bad_ward":
            return _json({"error": f"ward: {exc}"}, 400)
        return _json({"error": f"state: {exc}", "code": exc.code}, 409)
    assert inc is not None
    return _json(
        {"id": iid, "status": inc["status"], "outcome": outcome},
        201 if outcome == "opened" else 200,
    )


_FIELD_OF = {
    "bad_assignee": "assignee",
    "bad_step": "step",
    "needs_note": "note",
    "needs_photo": "photo_ref",
    "needs_resolution": "text",
    "needs_reason": "text",
    "needs_comment": "text",
    "too_long": "text",
}


def _act(
    conn: Connection, incident_id: int, action: str, body: dict[str, Any], who: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """Do ``action`` in the connection's transaction: (HTTP status, JSON answer). A refusal
    (404, 400, 409) undoes whatever the action wrote (a savepoint) and is answered, not raised."""
    cfg = state().cfg
    now = dt.datetime.now(dt.UTC)
    with conn.cursor() as cur:
        cur.execute("SAVEPOINT incident_action")
    try:
        if core.get(conn, incident_id) is None:
            return 404, {"error": f"no incident {incident_id}"}
        if action == "acknowledge":
            core.acknowledge(conn, incident_id, now=now, **who)
        elif action == "assign":
            core.assign(conn, cfg, incident_id, str(body.get("assignee") or ""), now=now, **who)
        elif action == "start":
            core.start(conn, incident_id, now=now, **who)
        elif action == "step":
            core.tick_step(
                conn, cfg, incident_id, str(body.get("step") or ""),
                note=body.get("note"), photo_ref=body.get("photo_ref"), now=now, **who,
            )  # fmt: skip
        elif action == "comment":
            core.comment(conn, incident_id, str(body.get("text") or ""), now=now, **who)
        elif action == "resolve":
            core.resolve(conn, cfg, incident_id, str(body.get("text") or ""), now=now, **who)
        elif action == "close":
            core.close(conn, incident_id, now=now, **who)
        else:
            core.reject(conn, incident_id, str(body.get("text") or ""), now=now, **who)
        inc = core.get(conn, incident_id)
    except core.IncidentError as exc:
        with conn.cursor() as cur:
            cur.execute("ROLLBACK TO SAVEPOINT incident_action")
        field = _FIELD_OF.get(exc.code)
        if field is not None:
            return 400, {"error": f"{field}: {exc}"}
        return 409, {"error": f"state: {exc}", "code": exc.code}
    assert inc is not None
    return 200, {"id": incident_id, "status": inc["status"]}


def _idempotency_key() -> str | Response | None:
    """The request's ``Idempotency-Key`` (None without one), or its 400."""
    key = flask.request.headers.get(idempotency.HEADER)
    if key is None or idempotency.valid_key(key):
        return key
    return _json({"error": f"{idempotency.HEADER}: 1 to 200 printable ASCII characters"}, 400)


def post_action(incident_id: int) -> Response:
    """``POST /api/v1/incidents/{id}/actions``. With an ``Idempotency-Key`` (per token) the
    first request acts and stores its answer in the same transaction; a repeat with the same
    body answers the stored status and body with ``Idempotent-Replayed: true`` and does nothing,
    one with another body (or incident) 422. A repeat sent while the first is under way waits
    for it, then replays (or acts, if the first was rolled back)."""
    name = _token()
    if isinstance(name, Response):
        return name
    key = _idempotency_key()
    if isinstance(key, Response):
        return key
    body = _body()
    if isinstance(body, Response):
        return body
    action = body.get("action")
    if action not in ACTIONS:
        return _json({"error": f"action: one of {', '.join(ACTIONS)}"}, 400)
    for field in ("actor", "assignee", "step", "note", "photo_ref", "text"):
        if field in body and body[field] is not None and not isinstance(body[field], str):
            return _json({"error": f"{field}: a string is needed"}, 400)
    actor = str(body.get("actor") or "").strip()[:64]
    if not actor:
        return _json({"error": "actor: who does it is required"}, 400)
    who: dict[str, Any] = {"actor": f"{name}/{actor}", "source": "api"}
    digest = idempotency.body_hash(body)
    with state().pool.conn() as conn:
        if key is not None:
            stored = idempotency.claim(conn, name, key, incident_id, str(action), digest)
            if stored is not None:
                if not stored.same_request(incident_id, digest):
                    return _json(
                        {"error": f"{idempotency.HEADER}: {key!r} was used for another request"},
                        422,
                    )
                return _raw(stored.response, stored.status, **{idempotency.REPLAYED_HEADER: "true"})
        status, answer = _act(conn, incident_id, str(action), body, who)
        text = json.dumps(answer, ensure_ascii=False, default=str)
        if key is not None:
            idempotency.record(conn, name, key, status, text)
    return _raw(text, status)
