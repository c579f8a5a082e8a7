"""Handling units (đơn vị xử lý) and who sees a reporter's contact (Decree 13/2023).

A report's handling unit is its ``reports.unit`` text: the sender's ``unit``, else the
category's default unit (``{ward}`` filled in with the ward's name). A user belongs to zero or
more units (``users.units``: ids of ``units`` in ``categories.yaml``). The contact of a report is
shown in full to admins and to the members of its handling unit who may see its ward; everyone
else sees it masked (``09*****56``), and every download masks it.

Matching is by text, so that it works for units a sender names its own way: a unit matches a
report when the report's unit, compared ignoring case and runs of spaces, is the unit's id, its
name or an alias; a ``{ward}`` unit (a ward's People's Committee) matches the name filled in
with the report's ward (so the members of ``ubnd_phuong`` granted ward A are the handling unit
of "UBND Phường A", not of "UBND Phường B").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ioc.config.categories import CategoriesFile, fold_unit
from ioc.errors import UsageError

if TYPE_CHECKING:
    from ioc.auth import User


def check_units(units: Iterable[str], known: Iterable[str] | None) -> list[str]:
    """``units`` sorted without repeats; UsageError naming the first unknown id."""
    out = sorted({u.strip() for u in units if u and u.strip()})
    if known is not None:
        known = list(known)
        for unit in out:
            if unit not in known:
                raise UsageError(
                    f"unknown handling unit {unit!r} (known: {', '.join(known) or 'none'})"
                )
    return out


def unit_keys(
    categories: CategoriesFile,
    unit_ids: Iterable[str],
    wards: Mapping[str, str],
    scope: Iterable[str] | None,
) -> list[tuple[str | None, str]]:
    """(ward code or None for any ward, folded unit text) pairs a user of ``unit_ids`` handles.

    ``wards``: code -> name of every ward; ``scope``: the wards the user may see (None: all).
    """
    out: set[tuple[str | None, str]] = set()
    codes = list(wards) if scope is None else [c for c in scope if c in wards]
    for uid in unit_ids:
        unit = categories.units.get(uid)
        if unit is None:
            continue  # a unit removed from the configuration: no longer anybody's
        texts = [unit.name, *unit.aliases]
        if any("{ward}" in t for t in texts):
            for code in codes:
                for t in texts:
                    out.add((code, fold_unit(t.replace("{ward}", wards[code]))))
            out.add((None, uid))
        else:
            out.update((None, fold_unit(t)) for t in (uid, *texts))
    return sorted(out, key=lambda p: (p[0] or "", p[1]))


class Revealer:
    """Decides, row by row, whether ``user`` sees a report's contact (see :func:`handles`);
    built once per request (the user's unit texts computed once)."""

    def __init__(self, user: User, categories: CategoriesFile, wards: Mapping[str, str]) -> None:
        self.user = user
        self.admin = user.can("admin")
        # a User cached (pickled in Redis) by an older version has no units: none
        units: frozenset[str] = getattr(user, "units", frozenset())
        self.pairs = set(unit_keys(categories, units, wards, user.allowed_wards()))

    @property
    def anyone(self) -> bool:
        """Whether any report's contact may be revealed to this user at all."""
        return self.admin or bool(self.pairs)

    def __call__(self, ward_code: str, unit_text: str | None) -> bool:
        if not self.user.may_see_ward(ward_code):
            return False
        if self.admin:
            return True
        if not unit_text:
            return False
        key = fold_unit(unit_text)
        return (None, key) in self.pairs or (ward_code, key) in self.pairs


def handles(
    user: User,
    categories: CategoriesFile,
    wards: Mapping[str, str],
    ward_code: str,
    unit_text: str | None,
) -> bool:
    """Whether ``user`` may see the contact of a report of ``ward_code`` handled by
    ``unit_text`` (admins: always; others: a member of that unit who may see the ward)."""
    return Revealer(user, categories, wards)(ward_code, unit_text)
