"""Incidents: what operators work on (reports, alerts or by hand → SOP → closed on time).

``core`` holds the lifecycle, links (merge, split), SOP steps, comments and the audit trail;
``sla`` the clocks, warnings, breaches and escalation run by the scheduler; ``access`` who may
see and do what; ``queries`` the read side for pages, the wall and KPIs.
"""
