"""Deeper checks for ``ioc config check``, beyond what every ``load_config`` does.

``load_config`` stays light (the ingesters load it on start). ``ioc config check`` also checks
what needs heavier imports: each KPI's ``query`` names a query function that exists, its
``params`` are keys that function reads (``QUERY_PARAMS``), and the simulator's optional
``config/simulator.yaml`` is valid (it is otherwise read only when ``ioc simulate`` starts).
"""

from __future__ import annotations

from pathlib import Path

from ioc.config import Config, ConfigError
from ioc.config.loader import ConfigIssue, load_yaml


def _kpi_issues(cfg: Config) -> list[ConfigIssue]:
    from ioc.kpi.queries import QUERIES, QUERY_PARAMS

    path = cfg.dir / "kpis.yaml"
    if not path.exists():
        return []
    doc = load_yaml(path)
    issues: list[ConfigIssue] = []
    for name, kpi in cfg.kpis.kpis.items():
        fn = QUERIES.get(kpi.query)
        if fn is None:
            known = ", ".join(sorted(QUERIES))
            issues.append(
                doc.issue(
                    ("kpis", name, "query"),
                    f"unknown query function {kpi.query!r} (known: {known})",
                )
            )
            continue
        accepted = QUERY_PARAMS.get(kpi.query, frozenset())
        for key in kpi.params:
            if key not in accepted:
                issues.append(
                    doc.issue(
                        ("kpis", name, "params", key),
                        f"query {kpi.query!r} takes no parameter {key!r}"
                        f" (it takes: {', '.join(sorted(accepted)) or 'none'})",
                    )
                )
    return issues


def _simulator_issues(config_dir: Path) -> list[ConfigIssue]:
    if not (config_dir / "simulator.yaml").exists():
        return []
    from ioc.config.simulator import load_simulator_settings

    try:
        load_simulator_settings(config_dir)
    except ConfigError as exc:
        return list(exc.issues)
    return []


def _notification_issues(cfg: Config) -> list[ConfigIssue]:
    """Report subscriptions naming a report that kpis.yaml does not define (they would
    never send anything)."""
    path = cfg.dir / "notifications.yaml"
    if not path.exists():
        return []
    doc = load_yaml(path)
    known = {r.name for r in cfg.kpis.reports}
    return [
        doc.issue(("reports", i, "report"), f"unknown report {sub.report!r} (kpis.yaml reports)")
        for i, sub in enumerate(cfg.notifications.reports)
        if sub.report not in known
    ]


def deep_check(cfg: Config) -> list[ConfigIssue]:
    """Every issue the deeper checks find (empty when the configuration is sound)."""
    return [*_kpi_issues(cfg), *_simulator_issues(cfg.dir), *_notification_issues(cfg)]
