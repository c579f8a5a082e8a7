"""The one notion of a missing value: ``None``, a float NaN, pandas' ``NaT`` and ``NA``.

Rows come from SQL (``None``) and from pandas frames (NaN for a missing number, NaT for a
missing time, ``pd.NA`` in nullable columns); every formatter, status rule and figure asks
:func:`is_missing` instead of writing its own ``x != x``.
"""

from __future__ import annotations


def is_missing(value: object) -> bool:
    """True for ``None``, NaN, ``NaT`` and ``pd.NA``; False for every real value."""
    if value is None:
        return True
    try:
        # NaN and NaT are the values unequal to themselves; pd.NA compares to NA, whose
        # truth value raises
        return bool(value != value)
    except TypeError:
        return True
    except ValueError:  # an array: not one missing value
        return False
