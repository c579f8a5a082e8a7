"""The one upsert of ``service_status``: each running service (ingesters, cameras, scheduler)
records its state and a JSON summary under (service, instance); ``/healthz`` reads them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

SQL = """
INSERT INTO service_status (service, instance, status, updated_at, details)
VALUES (%s, %s, %s, now(), %s)
ON CONFLICT (service, instance) DO UPDATE
SET status = EXCLUDED.status, updated_at = now(), details = EXCLUDED.details
"""


def record_service_status(
    cur: Any, service: str, instance: str, status: str, details: Mapping[str, Any] | None = None
) -> None:
    """Upsert one service instance's status (``updated_at`` = the database's now()); the
    caller commits. ``details`` is stored as JSON (values it cannot encode, as text)."""
    cur.execute(SQL, (service, instance, status, json.dumps(dict(details or {}), default=str)))
