"""Alerts: rules from ``config/alerts.yaml`` on readings, KPIs, camera health and devices.

* ``evaluate(conn, cfg, now=...)`` observes every rule's subjects and moves alerts along
  open → (acknowledged) → resolved. A condition opens an alert only after holding ``for_s``
  seconds (pending conditions live in ``alert_pending``); an open alert resolves only once the
  value is past ``clear`` (hysteresis), so a noisy value does not flap. One alert that is not
  resolved per rule × subject (unique index ``alerts_one_active``).
* ``acknowledge`` / ``resolve`` record who and when (called by the dashboard).
* ``detect_offline`` marks devices and cameras silent for N × their expected interval offline
  (and back online when data resumes); ``device`` / ``camera`` rules then raise the alerts.
* ``MqttPublisher`` publishes transitions to ``{prefix}/alerts/{ward}`` (QoS 1) when
  ``publish_mqtt: true``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import operator
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from ioc.config import AlertRule, Config
from ioc.db import Connection
from ioc.incidents.core import on_alert_opened
from ioc.kpi import periods
from ioc.notify import outbox as notify_outbox

log = logging.getLogger("ioc.alerts")

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


@dataclass(frozen=True)
class Observation:
    """The state of one subject of a rule at one evaluation.

    ``value`` None = no data (nothing changes). For condition rules (camera, device)
    ``value`` is 1 when the condition holds, 0 when not, and ``since`` when it began.
    """

    subject: str
    ward_code: str | None
    value: float | None
    since: dt.datetime | None = None


@dataclass
class Transition:
    alert_id: int
    rule_id: str
    subject: str
    ward_code: str | None
    severity: str
    state: str
    title: str
    value: float | None
    ts: dt.datetime
    link: str | None = None  # the object's page (ward, camera, device), relative to the site

    def payload(self) -> dict[str, Any]:
        return {
            "link": self.link,
            "id": self.alert_id,
            "rule": self.rule_id,
            "subject": self.subject,
            "ward": self.ward_code,
            "severity": self.severity,
            "state": self.state,
            "title": self.title,
            "value": self.value,
            "ts": self.ts.isoformat(),
        }


@dataclass
class EvalResult:
    opened: int = 0
    resolved: int = 0
    pending: int = 0
    transitions: list[Transition] = field(default_factory=list)


def _rows(conn: Connection, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())


# --------------------------------------------------------------------------- observations


def observe(conn: Connection, cfg: Config, rule: AlertRule, now: dt.datetime) -> list[Observation]:
    """Current observations of a rule's subjects."""
    if rule.kind == "reading":
        rows = _rows(
            conn,
            """
            SELECT DISTINCT ON (r.device_id) r.device_id, r.ward_code, r.value
            FROM readings r
            WHERE r.metric = %(metric)s AND r.ts > %(since)s AND r.ts <= %(now)s
              AND (%(dtype)s::text IS NULL OR EXISTS (SELECT 1 FROM devices d
                   WHERE d.device_id = r.device_id AND d.device_type = %(dtype)s))
            ORDER BY r.device_id, r.ts DESC
            """,
            {
                "metric": rule.metric,
                "since": now - dt.timedelta(seconds=rule.window_s),
                "now": now,
                "dtype": rule.device_type,
            },
        )
        return [Observation(d, w, float(v)) for d, w, v in rows]
    if rule.kind == "kpi":
        tz = ZoneInfo(cfg.system.timezone)
        start = periods.floor(now, rule.period, tz)
        rows = _rows(
            conn,
            "SELECT ward_code, value FROM kpi_values WHERE kpi = %(kpi)s AND period = %(p)s"
            " AND period_start = %(start)s",
            {"kpi": rule.kpi, "p": rule.period, "start": start},
        )
        out = []
        for ward, value in rows:
            if ward == "city" and not rule.city:
                continue
            out.append(
                Observation(
                    ward, None if ward == "city" else ward, None if value is None else float(value)
                )
            )
        return out
    if rule.kind == "camera":
        rows = _rows(
            conn,
            """
            SELECT c.camera_id, c.ward_code,
                   (SELECT min(e.started_at) FROM camera_events e
                    WHERE e.camera_id = c.camera_id AND e.kind = %(event)s
                      AND e.started_at <= %(now)s AND e.ended_at IS NULL),
                   CASE WHEN %(event)s = 'offline' AND c.status = 'offline'
                        THEN c.updated_at END
            FROM cameras c
            """,
            {"event": rule.event, "now": now},
        )
        out = []
        for cam, ward, ev_since, st_since in rows:
            since = min([s for s in (ev_since, st_since) if s is not None], default=None)
            out.append(Observation(cam, ward, 1.0 if since else 0.0, since))
        return out
    # device: offline
    rows = _rows(
        conn,
        """
        SELECT device_id, ward_code, status = 'offline', COALESCE(status_changed_at, first_seen)
        FROM devices WHERE %(dtype)s::text IS NULL OR device_type = %(dtype)s
        """,
        {"dtype": rule.device_type},
    )
    return [
        Observation(d, w, 1.0 if off else 0.0, since if off else None) for d, w, off, since in rows
    ]


def triggered(rule: AlertRule, value: float) -> bool:
    if rule.kind in ("camera", "device"):
        return value > 0
    assert rule.threshold is not None
    return OPS[rule.op](value, rule.threshold)


def cleared(rule: AlertRule, value: float) -> bool:
    """True once the value is past the clear level (hysteresis) — or past the threshold
    when the rule has no ``clear``."""
    if rule.kind in ("camera", "device"):
        return value <= 0
    level = rule.clear if rule.clear is not None else rule.threshold
    assert level is not None
    return not OPS[rule.op](value, level)


def _title(rule: AlertRule, subject: str) -> str:
    return f"{rule.label_vi}: {subject}"


# --------------------------------------------------------------------------- naming things


def _num(value: float | None, decimals: int, lang: str) -> str:
    """1.234,5 (vi) or 1,234.5 (en)."""
    if value is None:
        return "—"
    text = f"{value:,.{decimals}f}"
    if lang == "vi":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


def _unit_decimals(cfg: Config, rule: AlertRule) -> tuple[str, int]:
    if rule.kind == "kpi" and rule.kpi in cfg.kpis.kpis:
        k = cfg.kpis.kpis[rule.kpi]
        return k.unit, k.decimals
    if rule.kind == "reading":
        for dtype in cfg.sensors.device_types.values():
            m = dtype.metric(rule.metric or "")
            if m is not None:
                return m.unit, 0 if m.unit in ("%", "cm") else 1
    return "", 0


def describe(
    conn: Connection, cfg: Config, rule: AlertRule, subject: str, ward_code: str | None
) -> dict[str, Any]:
    """What an alert is about, named: the ward's name, the camera's or device's name and kind,
    the unit of its value and a link to the object's page. Kept in the alert's ``details``
    (``object_vi``/``object_en``, ``unit``, ``decimals``, ``link``); :func:`title` builds the
    stored (Vietnamese) title from it."""
    wards = {w.code: w.name for w in cfg.wards}
    ward_vi = wards.get(ward_code or "", ward_code or "Toàn thành phố")
    ward_en = wards.get(ward_code or "", ward_code or "Whole city")
    unit, decimals = _unit_decimals(cfg, rule)
    out: dict[str, Any] = {"unit": unit, "decimals": decimals, "ward_name": ward_vi}
    if rule.kind == "kpi":
        out.update(
            object_vi=ward_vi,
            object_en=ward_en,
            link=f"/ward/{ward_code}" if ward_code else "/",
        )
    elif rule.kind == "camera":
        rows = _rows(conn, "SELECT name FROM cameras WHERE camera_id = %(c)s", {"c": subject})
        name = rows[0][0] if rows and rows[0][0] else None
        if name is None:
            name = next((c.name for c in cfg.cameras.cameras if c.id == subject and c.name), None)
        shown = f"{name} ({subject})" if name else subject
        out.update(
            object_vi=f"{shown}, {ward_vi}",
            object_en=f"{shown}, {ward_en}",
            camera_name=name or subject,
            link=f"/cameras?camera={subject}",
        )
    else:  # a device: reading or offline
        rows = _rows(
            conn, "SELECT device_type FROM devices WHERE device_id = %(d)s", {"d": subject}
        )
        dtype = cfg.sensors.device_types.get(rows[0][0]) if rows else None
        kind_vi = dtype.label_vi if dtype else "thiết bị"
        kind_en = dtype.label_en if dtype else "device"
        out.update(
            object_vi=f"{ward_vi}, {kind_vi} {subject}",
            object_en=f"{ward_en}, {kind_en} {subject}",
            link=f"/devices/{subject}",
        )
    return out


def title(
    rule: AlertRule,
    about: dict[str, Any],
    value: float | None,
    lang: str = "vi",
    label: str | None = None,
) -> str:
    """'Nhiều hồ sơ quá hạn — Phường Hải Châu: 20 hồ sơ (ngưỡng ≥ 10 hồ sơ)': the rule, the
    named object, the value and the threshold with their unit."""
    label = label or (rule.label_en if lang == "en" else rule.label_vi)
    obj = about.get(f"object_{lang}") or about.get("object_vi") or ""
    text = f"{label} — {obj}" if obj else label
    if rule.kind in ("reading", "kpi") and rule.threshold is not None:
        unit = str(about.get("unit") or "")
        if lang == "en":
            unit = _UNIT_EN.get(unit, unit)
        dec = int(about.get("decimals") or 0)
        sp = f" {unit}" if unit else ""
        word = "threshold" if lang == "en" else "ngưỡng"
        shown = f"{_num(value, dec, lang)}{sp}" if value is not None else "—"
        op = {">=": "≥", "<=": "≤"}.get(rule.op, rule.op)
        text += f": {shown} ({word} {op} {_num(rule.threshold, dec, lang)}{sp})"
    return text


_UNIT_EN = {"hồ sơ": "applications", "ngày làm việc": "working days", "cảnh báo": "alerts"}


# --------------------------------------------------------------------------- evaluation


def evaluate(
    conn: Connection,
    cfg: Config,
    *,
    now: dt.datetime | None = None,
    rules: Sequence[AlertRule] | None = None,
) -> EvalResult:
    """Evaluate every rule once; idempotent; one transaction, serialised by an advisory lock."""
    now = now or dt.datetime.now(dt.UTC)
    res = EvalResult()
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('ioc.alerts.evaluate'))")
    try:
        for rule in rules if rules is not None else cfg.alerts.rules:
            _evaluate_rule(conn, cfg, rule, now, res)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return res


def _evaluate_rule(
    conn: Connection, cfg: Config, rule: AlertRule, now: dt.datetime, res: EvalResult
) -> None:
    obs = {o.subject: o for o in observe(conn, cfg, rule, now)}
    active = {
        subject: (aid, state)
        for aid, subject, state in _rows(
            conn,
            "SELECT id, subject, state FROM alerts WHERE rule_id = %(r)s AND state <> 'resolved'",
            {"r": rule.id},
        )
    }
    pending = {
        subject: since
        for subject, since in _rows(
            conn, "SELECT subject, since FROM alert_pending WHERE rule_id = %(r)s", {"r": rule.id}
        )
    }
    with conn.cursor() as cur:
        for subject in set(obs) | set(active) | set(pending):
            o = obs.get(subject)
            if o is None or o.value is None:
                # no data: keep an open alert as it is; a pending condition must hold unbroken
                if subject in pending and subject not in active:
                    _drop_pending(cur, rule.id, subject)
                continue
            if subject in active:
                aid, _state = active[subject]
                if cleared(rule, o.value):
                    about = describe(conn, cfg, rule, subject, o.ward_code)
                    cur.execute(
                        "UPDATE alerts SET state = 'resolved', resolved_at = %s,"
                        " resolved_by = 'system', value = %s, updated_at = now()"
                        " WHERE id = %s AND state <> 'resolved'",
                        (now, o.value, aid),
                    )
                    res.resolved += 1
                    res.transitions.append(
                        Transition(
                            aid,
                            rule.id,
                            subject,
                            o.ward_code,
                            rule.severity,
                            "resolved",
                            title(rule, about, o.value),
                            o.value,
                            now,
                            link=about.get("link"),
                        )
                    )
                else:
                    cur.execute(
                        "UPDATE alerts SET value = %s, updated_at = now()"
                        " WHERE id = %s AND value IS DISTINCT FROM %s",
                        (o.value, aid, o.value),
                    )
                if subject in pending:
                    _drop_pending(cur, rule.id, subject)
                continue
            if not triggered(rule, o.value):
                if subject in pending:
                    _drop_pending(cur, rule.id, subject)
                continue
            since = o.since or pending.get(subject)
            if since is None:
                since = now
                cur.execute(
                    "INSERT INTO alert_pending (rule_id, subject, ward_code, since, value)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (rule_id, subject) DO NOTHING",
                    (rule.id, subject, o.ward_code, since, o.value),
                )
            if (now - since).total_seconds() + 1e-6 < rule.for_s:
                res.pending += 1
                continue
            about = describe(conn, cfg, rule, subject, o.ward_code)
            cur.execute(
                """
                INSERT INTO alerts (rule_id, subject, ward_code, severity, state, title, value,
                                    opened_at, details)
                VALUES (%s, %s, %s, %s, 'open', %s, %s, %s, %s)
                ON CONFLICT (rule_id, subject) WHERE state <> 'resolved' DO NOTHING
                RETURNING id
                """,
                (
                    rule.id,
                    subject,
                    o.ward_code,
                    rule.severity,
                    title(rule, about, o.value),
                    o.value,
                    now,
                    json.dumps(
                        {
                            **about,
                            "kind": rule.kind,
                            "label_en": rule.label_en,
                            "label_vi": rule.label_vi,
                            "metric": rule.metric,
                            "kpi": rule.kpi,
                            "event": rule.event,
                            "op": rule.op,
                            "threshold": rule.threshold,
                            "clear": rule.clear,
                            "since": since.isoformat(),
                        }
                    ),
                ),
            )
            row = cur.fetchone()
            _drop_pending(cur, rule.id, subject)
            if row:
                # notifications: written in this transaction (outbox), sent by `ioc notify`
                notify_outbox.alert_opened(
                    cur, cfg, rule, alert_id=row[0], subject=subject, ward_code=o.ward_code,
                    value=o.value, opened_at=now,
                )  # fmt: skip
                res.opened += 1
                res.transitions.append(
                    Transition(
                        row[0],
                        rule.id,
                        subject,
                        o.ward_code,
                        rule.severity,
                        "open",
                        title(rule, about, o.value),
                        o.value,
                        now,
                        link=about.get("link"),
                    )
                )
                # incidents.yaml auto_open: one incident per ward while open (ioc/incidents)
                on_alert_opened(
                    conn,
                    cfg,
                    alert_id=row[0],
                    rule_id=rule.id,
                    severity=rule.severity,
                    ward_code=o.ward_code,
                    title=_title(rule, subject),
                    now=now,
                )


def _drop_pending(cur: Any, rule_id: str, subject: str) -> None:
    cur.execute("DELETE FROM alert_pending WHERE rule_id = %s AND subject = %s", (rule_id, subject))


# --------------------------------------------------------------------------- user actions


def acknowledge(conn: Connection, alert_id: int, user: str) -> bool:
    """open → acknowledged, recording who and when. False if it was not open."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE alerts SET state = 'acknowledged', acknowledged_at = now(),"
            " acknowledged_by = %s, updated_at = now() WHERE id = %s AND state = 'open'",
            (user, alert_id),
        )
        changed = cur.rowcount == 1
    conn.commit()
    return changed


def resolve(conn: Connection, alert_id: int, user: str) -> bool:
    """open/acknowledged → resolved, recording who and when. False if already resolved."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE alerts SET state = 'resolved', resolved_at = now(), resolved_by = %s,"
            " updated_at = now() WHERE id = %s AND state <> 'resolved'",
            (user, alert_id),
        )
        changed = cur.rowcount == 1
    conn.commit()
    return changed


# --------------------------------------------------------------------------- offline detection


@dataclass
class OfflineResult:
    devices_offline: list[str] = field(default_factory=list)
    devices_online: list[str] = field(default_factory=list)
    cameras_offline: list[str] = field(default_factory=list)
    cameras_online: list[str] = field(default_factory=list)


def detect_offline(
    conn: Connection, cfg: Config, *, now: dt.datetime | None = None
) -> OfflineResult:
    """Devices/cameras with no data for N × their expected interval → status offline.

    A device is silent when its ``last_seen`` (or, never seen, its ``first_seen``) is older than
    ``offline_factor`` × its type's ``interval_s``; a device marked offline (by us or by its
    last will) whose data arrived after that comes back online. Cameras use their latest
    ``online`` metric > 0 in ``camera_metrics`` (or ``last_seen``) and ``camera_interval_s``.
    """
    now = now or dt.datetime.now(dt.UTC)
    sched = cfg.kpis.scheduler
    types = list(cfg.sensors.device_types)
    windows = [sched.offline_factor * cfg.sensors.device_types[t].interval_s for t in types]
    default_win = sched.offline_factor * 300.0
    res = OfflineResult()
    with conn.cursor() as cur:
        cur.execute(
            """
            WITH w AS (SELECT * FROM unnest(%(types)s::text[], %(wins)s::float8[]) AS w(t, win))
            UPDATE devices d SET status = 'offline', status_changed_at = %(now)s
            FROM devices d2 LEFT JOIN w ON w.t = d2.device_type
            WHERE d.device_id = d2.device_id AND d.status <> 'offline'
              AND COALESCE(d.last_seen, d.first_seen)
                  < %(now)s - make_interval(secs => COALESCE(w.win, %(dwin)s))
            RETURNING d.device_id
            """,
            {"types": types, "wins": windows, "dwin": default_win, "now": now},
        )
        res.devices_offline = [r[0] for r in cur.fetchall()]
        cur.execute(
            """
            WITH w AS (SELECT * FROM unnest(%(types)s::text[], %(wins)s::float8[]) AS w(t, win))
            UPDATE devices d SET status = 'online', status_changed_at = %(now)s
            FROM devices d2 LEFT JOIN w ON w.t = d2.device_type
            WHERE d.device_id = d2.device_id AND d.status = 'offline'
              AND d.last_seen > COALESCE(d.status_changed_at, d.first_seen)
              AND d.last_seen >= %(now)s - make_interval(secs => COALESCE(w.win, %(dwin)s))
            RETURNING d.device_id
            """,
            {"types": types, "wins": windows, "dwin": default_win, "now": now},
        )
        res.devices_online = [r[0] for r in cur.fetchall()]
        cam_win = dt.timedelta(seconds=sched.offline_factor * sched.camera_interval_s)
        cur.execute(
            """
            WITH recent AS (
                SELECT camera_id, max(ts) AS ts FROM camera_metrics
                WHERE ts > %(since)s AND ts <= %(now)s AND metric = 'online' AND value > 0
                GROUP BY camera_id
            ),
            seen AS (
                SELECT c.camera_id, GREATEST(c.last_seen, r.ts) AS seen
                FROM cameras c LEFT JOIN recent r USING (camera_id)
            )
            UPDATE cameras c SET status = CASE WHEN s.seen >= %(since)s THEN 'online'
                                               ELSE 'offline' END,
                   updated_at = %(now)s
            FROM seen s
            WHERE s.camera_id = c.camera_id
              AND c.status IS DISTINCT FROM CASE WHEN s.seen >= %(since)s THEN 'online'
                                                 ELSE 'offline' END
            RETURNING c.camera_id, c.status
            """,
            {"since": now - cam_win, "now": now},
        )
        for cam, status in cur.fetchall():
            (res.cameras_online if status == "online" else res.cameras_offline).append(cam)
    conn.commit()
    return res


# --------------------------------------------------------------------------- MQTT


class MqttPublisher:
    """Publishes alert transitions to ``{prefix}/alerts/{ward}`` with QoS 1 (paho 2.x)."""

    def __init__(self, cfg: Config, target: Any, *, client_id: str | None = None) -> None:
        import paho.mqtt.client as mqtt

        self.prefix = cfg.topic_prefix
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or "",
            protocol=mqtt.MQTTv311,
        )
        if getattr(target, "username", None):
            self.client.username_pw_set(target.username, target.password)
        if getattr(target, "tls", False):
            self.client.tls_set()
        self.client.connect_async(target.host, target.port, keepalive=30)
        self.client.loop_start()

    def topic(self, ward: str | None) -> str:
        return f"{self.prefix}/alerts/{ward or 'city'}"

    def publish(self, transitions: Sequence[Transition], timeout: float = 5.0) -> int:
        sent = 0
        with self._lock:
            infos = [
                self.client.publish(
                    self.topic(t.ward_code), json.dumps(t.payload(), ensure_ascii=False), qos=1
                )
                for t in transitions
            ]
            for info in infos:
                try:
                    info.wait_for_publish(timeout)
                    sent += int(info.is_published())
                except (RuntimeError, ValueError) as exc:
                    log.warning("alert not published: %s", exc)
        return sent

    def publish_json(self, topic: str, payload: Any, timeout: float = 5.0) -> bool:
        """One JSON message at QoS 1 (used by the notifications' MQTT channel); True once
        the broker acknowledged it."""
        with self._lock:
            info = self.client.publish(topic, json.dumps(payload, ensure_ascii=False), qos=1)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:
                log.warning("not published to %s: %s", topic, exc)
                return False
            return bool(info.is_published())

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
