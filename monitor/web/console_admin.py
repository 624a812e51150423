"""The console's pages for maintenance, push checks, tokens, accounts and the audit log."""

from __future__ import annotations

from .console_base import Handler

__all__ = ["console_admin_routes"]


def console_admin_routes() -> list[tuple[str, Handler, list[str]]]:
    return []
