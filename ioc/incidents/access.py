"""Who may see and do what with an incident (checked on the server for every request).

* operators and admins: every incident, every action;
* ward leaders: only incidents of their wards; they work them (acknowledge, assign to one of
  their wards or a city department, start, SOP steps, comments, resolve, reject, reopen, link,
  merge and split among their wards' incidents) but do not close them (the operations centre
  checks the result) and see no city-wide incident;
* analysts (and every other role holding ``view``): read only;
* the kiosk: the wall's incidents view only (no page, no action).
"""

from __future__ import annotations

from ioc.auth import User

ACTING_ROLES = frozenset({"admin", "operator", "ward_leader"})
CENTRE_ROLES = frozenset({"admin", "operator"})


def may_view(user: User, ward_code: str | None) -> bool:
    if not user.can("view"):
        return False
    if ward_code is None:
        return not user.ward_scoped
    return user.may_see_ward(ward_code)


def may_act(user: User, ward_code: str | None) -> bool:
    """May work this incident (every action but closing)."""
    return user.role in ACTING_ROLES and may_view(user, ward_code)


def may_close(user: User, ward_code: str | None) -> bool:
    return user.role in CENTRE_ROLES and may_view(user, ward_code)


def may_assign_to(user: User, assignee: str, kind: str) -> bool:
    """Ward leaders hand over to one of their wards or a city department, not another ward."""
    if user.role in CENTRE_ROLES:
        return True
    if user.role != "ward_leader":
        return False
    return kind == "department" or assignee in user.wards


def may_create(user: User, ward_code: str | None) -> bool:
    return may_act(user, ward_code)
