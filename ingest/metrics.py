"""The MQTT ingester's counters and gauges.

The hot path only bumps plain integers on :class:`IngestStats` (no locks, no label lookups per
message); a Prometheus collector reads them at scrape time, and :meth:`IngestStats.summary` is
what goes into ``service_status.details`` for ``/healthz``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from ingest.writer import WriterStats

BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class IngestStats:
    """Updated by the MQTT network thread and the writer thread (each field by one of them)."""

    received: Counter[str] = field(default_factory=Counter)  # by kind
    rejects: Counter[str] = field(default_factory=Counter)  # by reason code
    readings: int = 0  # readings parsed and handed to the writer
    acked: int = 0
    redelivered: int = 0  # PUBLISH packets with the DUP flag (sent to us before, unacked)
    dropped: int = 0  # not acked on purpose (stopping, stale connection): broker redelivers
    broker_connected: bool = False
    connects: int = 0
    last_lag_s: float = 0.0  # receive → commit of the last committed message
    newest_reading_ts: float = 0.0
    started_at: float = field(default_factory=time.time)
    batch_counts: list[int] = field(default_factory=lambda: [0] * (len(BATCH_BUCKETS) + 1))
    batch_sum: float = 0.0

    def observe_batch(self, seconds: float) -> None:
        for i, bound in enumerate(BATCH_BUCKETS):
            if seconds <= bound:
                self.batch_counts[i] += 1
                break
        else:
            self.batch_counts[-1] += 1
        self.batch_sum += seconds

    @property
    def received_total(self) -> int:
        return sum(self.received.values())

    def inflight(self) -> int:
        return max(0, self.received_total - self.acked - self.dropped)

    def summary(self, writer: WriterStats) -> dict[str, Any]:
        """Small JSON for service_status.details (no payloads, no secrets)."""
        return {
            "received": self.received_total,
            "received_by_kind": dict(self.received),
            "rows_written": writer.rows_inserted,
            "rejected": sum(self.rejects.values()),
            "rejected_by_reason": dict(self.rejects),
            "acked": self.acked,
            "redelivered": self.redelivered,
            "inflight": self.inflight(),
            "lag_s": round(self.last_lag_s, 3),
            "newest_reading_at": self.newest_reading_ts or None,
            "batches": writer.batches,
            "last_batch_s": round(writer.last_batch_s, 4),
            "last_commit_at": writer.last_commit_at or None,
            "broker_connected": self.broker_connected,
            "db_connected": writer.connected,
            "db_errors": writer.db_errors,
            "uptime_s": round(time.time() - self.started_at, 1),
        }


class IngestCollector(Collector):
    """Exposes :class:`IngestStats` and the writer's stats as ``ioc_ingest_*`` metrics."""

    def __init__(
        self,
        stats: IngestStats,
        writer: WriterStats,
        instance: str,
        queue_len: Callable[[], int] = lambda: 0,
    ) -> None:
        self.stats = stats
        self.writer = writer
        self.instance = instance
        self.queue_len = queue_len

    def collect(self) -> Iterator[Any]:
        s, w, inst = self.stats, self.writer, [self.instance]
        c = CounterMetricFamily(
            "ioc_ingest_messages_received", "MQTT messages received", labels=["instance", "kind"]
        )
        for kind, n in sorted(s.received.items()):
            c.add_metric([self.instance, kind], n)
        yield c
        c = CounterMetricFamily(
            "ioc_ingest_rejects",
            "Rejected messages/readings by reason",
            labels=["instance", "reason"],
        )
        for reason, n in sorted(s.rejects.items()):
            c.add_metric([self.instance, reason], n)
        yield c
        for name, doc, value in (
            ("ioc_ingest_readings_parsed", "Readings parsed and queued for writing", s.readings),
            ("ioc_ingest_rows_written", "Rows inserted (duplicates excluded)", w.rows_inserted),
            ("ioc_ingest_messages_acked", "Messages acknowledged after commit", s.acked),
            (
                "ioc_ingest_messages_redelivered",
                "Messages the broker sent again (DUP flag: sent before, not acknowledged)",
                s.redelivered,
            ),
            ("ioc_ingest_db_errors", "Database errors (connection lost, refused)", w.db_errors),
            ("ioc_ingest_broker_connects", "Successful broker connections", s.connects),
        ):
            c = CounterMetricFamily(name, doc, labels=["instance"])
            c.add_metric(inst, value)
            yield c
        for name, doc, gvalue in (
            ("ioc_ingest_inflight_messages", "Received, not yet acknowledged", s.inflight()),
            ("ioc_ingest_writer_queue", "Units waiting for the writer", self.queue_len()),
            ("ioc_ingest_lag_seconds", "Receive to commit, last message", s.last_lag_s),
            ("ioc_ingest_broker_connected", "1 when connected to the broker", s.broker_connected),
            ("ioc_ingest_db_connected", "1 when the writer has a connection", w.connected),
            ("ioc_ingest_last_commit_timestamp", "Unix time of the last commit", w.last_commit_at),
        ):
            g = GaugeMetricFamily(name, doc, labels=["instance"])
            g.add_metric(inst, float(gvalue))
            yield g
        h = HistogramMetricFamily(
            "ioc_ingest_batch_seconds", "Writer batch duration (COPY + commit)", labels=["instance"]
        )
        cumulative, buckets = 0, []
        for bound, n in zip((*BATCH_BUCKETS, float("inf")), s.batch_counts, strict=True):
            cumulative += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        h.add_metric(inst, buckets, s.batch_sum)
        yield h


def make_registry(
    stats: IngestStats, writer: WriterStats, instance: str, queue_len: Callable[[], int]
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(IngestCollector(stats, writer, instance, queue_len))
    return registry
