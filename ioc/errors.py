"""Errors shown to the user as one readable line (no traceback unless --debug)."""

from __future__ import annotations


class IOCError(Exception):
    """An error the user can act on; its message is one human-readable line."""

    exit_code = 1


class UsageError(IOCError):
    """A bad command-line argument."""

    exit_code = 2


class NotAvailableYet(IOCError):
    """A command whose capability has not been built yet."""

    exit_code = 2
