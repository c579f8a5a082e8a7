"""Scheduled reports e-mailed to their subscribers (``reports:`` in notifications.yaml).

``prepare`` (after the report's file is written) groups the subscribers: users who see every
ward get the city-wide file; a ward leader gets a file of their own wards only, written beside
it (one per distinct set of wards). ``enqueue`` then writes the messages in the transaction
that records the report. A file up to ``delivery.attach_max_bytes`` is attached; a bigger one
goes as a signed, expiring download link for that recipient.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ioc.config import Config
from ioc.config.kpis import ReportDef
from ioc.config.notifications import Recipients
from ioc.db import Connection
from ioc.notify.escalation import merge
from ioc.notify.outbox import enqueue, load_users


@dataclass
class Delivery:
    report: str
    path: Path
    wards: list[str] | None  # None: every ward
    users: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)


def subscribers(cfg: Config, name: str) -> Recipients | None:
    subs = [s.to for s in cfg.notifications.reports if s.report == name]
    return merge(subs) if subs else None


def ward_file(path: Path, wards: list[str]) -> Path:
    tag = (
        "-".join(wards)
        if len(wards) <= 3
        else hashlib.sha1("-".join(wards).encode()).hexdigest()[:10]
    )
    return path.with_name(f"{path.stem}_wards-{tag}{path.suffix}")


def prepare(
    conn: Connection,
    cfg: Config,
    rep: ReportDef,
    *,
    path: Path,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
) -> list[Delivery]:
    """Who gets which file; writes the ward leaders' own files. Ends its transaction."""
    from ioc.reports.export import make_request, write_request

    spec = subscribers(cfg, rep.name)
    if spec is None:
        return []
    with conn.cursor() as cur:
        users = load_users(cur, roles=spec.roles, names=spec.users)
    conn.commit()
    city = Delivery(rep.name, path, None, emails=list(spec.emails))
    by_wards: dict[tuple[str, ...], Delivery] = {}
    for u in users:
        if u.role == "kiosk" or not u.email:
            continue
        if u.role == "ward_leader":
            wards = tuple(sorted(u.wards & set(cfg.ward_codes)))
            if not wards:
                continue
            if wards not in by_wards:
                by_wards[wards] = Delivery(rep.name, ward_file(path, list(wards)), list(wards))
            by_wards[wards].users.append(u.name)
        else:
            city.users.append(u.name)
    for wards, d in by_wards.items():
        req = make_request(
            cfg,
            kpis=rep.kpis,
            wards=list(wards),
            start=start,
            end=end - dt.timedelta(microseconds=1),
            every=rep.every,
            fmt=rep.format,
            lang=rep.lang,
        )
        fd, tmp = tempfile.mkstemp(prefix=".report-", suffix="." + rep.format, dir=path.parent)
        os.close(fd)
        try:
            write_request(conn, cfg, req, out=tmp, now=now)
            os.replace(tmp, d.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    out = [city] if city.users or city.emails else []
    return out + list(by_wards.values())


def enqueue_reports(
    cur: Any,
    cfg: Config,
    deliveries: list[Delivery],
    *,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
) -> int:
    """The messages, in the caller's transaction (the one recording the report)."""
    n = 0
    limit = cfg.notifications.delivery.attach_max_bytes
    schedules = {r.name: r.schedule for r in cfg.kpis.reports}
    for d in deliveries:
        attach = d.path.stat().st_size <= limit
        names = [(w.name if (w := cfg.ward(c)) else c) for c in d.wards or []]
        params: dict[str, Any] = {
            "report": d.report,
            "schedule": schedules.get(d.report),
            "ward_names": names,
            "period_from": start.isoformat(),
            "period_to": end.isoformat(),
            "wards": d.wards,
            "attach": attach,
            "file": d.path.name,
            "path": str(d.path.resolve()),
            "attachments": [str(d.path)] if attach else [],
        }
        n += enqueue(
            cur,
            "scheduled_report",
            ward_code=None,
            severity=None,
            ref_kind="report_file",
            ref_id=f"{d.report}:{start.isoformat()}:{d.path.name}",
            params=params,
            cfg=cfg,
            recipients=[Recipients(users=d.users, emails=d.emails)],
            now=now,
            ward_filter=False,  # the grouping above gave each user only their wards' file
        )
    return n
